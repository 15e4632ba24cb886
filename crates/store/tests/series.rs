//! A store read back as series: what `heapgate list` shows, from the objects the leak watch
//! writes.

use heapgate_store::{MANIFEST, Manifest, Store, StoreLocation, layout};
use object_store::PutPayload;

/// A manifest as a sidecar of the first release wrote it: snapshots only, no profile fields.
const OLD_MANIFEST: &str = r#"{
  "task": "t1", "series": "20261203T031500Z-s1", "session": "s1",
  "heapgate_version": "0.1.0", "started_at": "2026-12-03T03:15:00+00:00",
  "trigger": {"reason": "grew", "floor_from_bytes": 1, "floor_to_bytes": 9, "over_seconds": 60},
  "captures": [{"file": "20261203T031600Z.heapsnapshot.zst", "at": "2026-12-03T03:16:00+00:00",
    "heap_used_bytes": 5, "heap_total_bytes": 6, "rss_bytes": null, "stored_bytes": 7}],
  "ended": null
}"#;

async fn put(store: &Store, relative: &str, bytes: &[u8]) {
    store
        .objects()
        .put(&store.path(relative), PutPayload::from(bytes.to_vec()))
        .await
        .unwrap();
}

#[tokio::test]
async fn series_are_folders_with_a_manifest_and_their_evidence_in_time_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&StoreLocation::Dir(dir.path().join("store"))).unwrap();
    let good = "t1/20261203T031500Z-s1";
    // Written out of order: the listing sorts by the names' stamps.
    put(
        &store,
        &format!("{good}/20261203T031700Z.heapsnapshot.zst"),
        b"b",
    )
    .await;
    put(
        &store,
        &format!("{good}/20261203T031600Z.heapprofile"),
        b"a",
    )
    .await;
    put(
        &store,
        &format!("{good}/{MANIFEST}"),
        OLD_MANIFEST.as_bytes(),
    )
    .await;
    put(&store, &format!("{good}/notes.txt"), b"not evidence").await;
    put(&store, "t1/20261203T040000Z-s2/manifest.json", b"{not json").await;
    put(&store, "t2/no-manifest/20261203T031600Z.heapprofile", b"x").await;

    let series = store.series().await.unwrap();
    let folders: Vec<String> = series.iter().map(|s| s.folder.to_string()).collect();
    assert_eq!(folders, [good, "t1/20261203T040000Z-s2"]);

    let manifest: &Manifest = series[0].manifest.as_ref().unwrap();
    assert_eq!(manifest.session, "s1");
    assert_eq!(manifest.evidence().snapshots, 1);
    assert_eq!(manifest.evidence().profiles, 0);
    let evidence: Vec<String> = series[0]
        .evidence
        .iter()
        .map(|p| p.filename().unwrap().to_owned())
        .collect();
    assert_eq!(
        evidence,
        [
            "20261203T031600Z.heapprofile",
            "20261203T031700Z.heapsnapshot.zst"
        ]
    );
    assert!(
        evidence.iter().all(|name| layout::is_evidence(name)),
        "{evidence:?}"
    );
    assert_eq!(
        store.display(&series[0].folder),
        dir.path().join("store").join(good).display().to_string()
    );

    let unreadable = series[1].manifest.as_ref().unwrap_err();
    assert!(unreadable.starts_with("manifest.json: "), "{unreadable}");
}

#[tokio::test]
async fn an_empty_store_has_no_series() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&StoreLocation::Dir(dir.path().to_owned())).unwrap();
    assert!(store.series().await.unwrap().is_empty());
}
