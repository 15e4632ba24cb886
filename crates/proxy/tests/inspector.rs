//! Integration tests of `InspectorSource` against a real Node.js process (tests/data/leaky-app.js).
//!
//! Without `node` on PATH these tests print "SKIPPED" and pass, except under CI=true where a
//! missing node is a failure.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use heapgate_tests::{Answer, LEAKED_CLASS, NodeApp, StubApp, assert_valid_snapshot, object_ids};
use serde_json::Value;

mod internals;
use internals::{ChunkStream, DEFAULT_SPILL_MEM_LIMIT, InspectorSource, SourceError};

/// Node, or a loud skip (a failure under CI=true).
fn node() -> Option<PathBuf> {
    heapgate_tests::node_or_skip("heapgate-proxy inspector tests")
}

fn source_for(app: &NodeApp) -> InspectorSource {
    InspectorSource::new(app.inspector, DEFAULT_SPILL_MEM_LIMIT)
}

async fn collect(mut body: ChunkStream) -> Result<Vec<u8>, SourceError> {
    let mut out = Vec::new();
    while let Some(chunk) = body.next().await {
        out.extend_from_slice(&chunk?);
    }
    Ok(out)
}

async fn take_full(source: &InspectorSource) -> (String, Value) {
    let snapshot = source.take().await.expect("take");
    let bytes = collect(snapshot.body).await.expect("complete body");
    let json = serde_json::from_slice(&bytes).expect("snapshot is JSON");
    let session = snapshot
        .session
        .expect("an inspector snapshot has a session");
    (session, json)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_snapshot_is_complete_json() {
    let Some(node) = node() else { return };
    let app = NodeApp::start(&node, &[]);
    let source = source_for(&app);
    assert_eq!(source.session(), None);
    let (session, snapshot) = take_full(&source).await;
    assert_valid_snapshot(&snapshot);
    assert_eq!(session.len(), 16);
    assert_eq!(source.session(), Some(session));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_in_one_session_share_session_and_object_ids() {
    let Some(node) = node() else { return };
    let app = NodeApp::start(&node, &[]);
    let source = source_for(&app);
    let (first_session, first) = take_full(&source).await;
    assert!(app.get("/leak?n=50").contains("\"leaked\":150"));
    let (second_session, second) = take_full(&source).await;

    assert_eq!(first_session, second_session);
    let before = object_ids(&first, LEAKED_CLASS);
    let after = object_ids(&second, LEAKED_CLASS);
    assert_eq!(before.len(), 100, "leaked at startup");
    assert_eq!(after.len(), 150, "after /leak?n=50");
    assert!(
        before.is_subset(&after),
        "object ids changed between snapshots"
    );

    let attached = app.proc.output().matches("Debugger attached").count();
    assert_eq!(attached, 1, "one long-lived session, not one per snapshot");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_killed_mid_snapshot_fails_the_body() {
    let Some(node) = node() else { return };
    // A heap big enough that chunks keep coming for a while (~0.5 s here) after the first.
    let mut app = NodeApp::start(&node, &[("LEAK_AT_START", "50000")]);
    let source = source_for(&app);
    let mut snapshot = source.take().await.expect("take");
    let first = snapshot.body.next().await.expect("a first chunk");
    assert!(first.is_ok_and(|chunk| chunk.starts_with(b"{\"snapshot\"")));
    app.proc.kill();
    let result = tokio::time::timeout(Duration::from_secs(10), collect(snapshot.body))
        .await
        .expect("body ends after the app dies");
    assert!(
        matches!(result, Err(SourceError::Failed(_))),
        "a truncated snapshot must end in an error, got {:?}",
        result.map(|b| b.len())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_body_leaves_session_usable() {
    let Some(node) = node() else { return };
    let app = NodeApp::start(&node, &[]);
    let source = source_for(&app);
    let mut abandoned = source.take().await.expect("take");
    abandoned
        .body
        .next()
        .await
        .expect("a first chunk")
        .expect("ok chunk");
    drop(abandoned.body);
    let (session, snapshot) = take_full(&source).await;
    assert_eq!(Some(session), abandoned.session);
    assert_valid_snapshot(&snapshot);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_takes_are_queued_not_mixed() {
    let Some(node) = node() else { return };
    let app = NodeApp::start(&node, &[]);
    let source = source_for(&app);
    let (a, b) = tokio::join!(take_full(&source), take_full(&source));
    assert_eq!(a.0, b.0, "both in the one session");
    assert_valid_snapshot(&a.1);
    assert_valid_snapshot(&b.1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_app_gets_a_new_session() {
    let Some(node) = node() else { return };
    let mut app = NodeApp::start(&node, &[]);
    let inspect_port = app.inspector.port();
    let source = source_for(&app);
    let (first_session, _) = take_full(&source).await;
    app.proc.kill();
    let deadline = Instant::now() + Duration::from_secs(5);
    while source.session().is_some() {
        assert!(
            Instant::now() < deadline,
            "the dropped session went unnoticed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(matches!(
        source.take().await,
        Err(SourceError::Unreachable(_))
    ));

    let _restarted = NodeApp::start_on(&node, inspect_port, &[]);
    let (second_session, snapshot) = take_full(&source).await;
    assert_ne!(first_session, second_session);
    assert_valid_snapshot(&snapshot);
}

#[tokio::test]
async fn nothing_listening_is_unreachable() {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], heapgate_tests::free_port()));
    let source = InspectorSource::new(addr, DEFAULT_SPILL_MEM_LIMIT);
    match source.take().await {
        Err(SourceError::Unreachable(_)) => {}
        Err(other) => panic!("expected Unreachable, got {other}"),
        Ok(_) => panic!("expected Unreachable, got a snapshot"),
    }
}

#[tokio::test]
async fn server_without_node_target_is_unreachable() {
    // An HTTP server at the inspector's address that lists no Node target.
    for (status, body) in [(200, "[]"), (400, ""), (200, "<html>")] {
        let app = StubApp::start(move |_| Answer::new(status, body));
        let source = InspectorSource::new(app.addr(), DEFAULT_SPILL_MEM_LIMIT);
        let result = source.take().await;
        assert!(
            matches!(result, Err(SourceError::Unreachable(_))),
            "{status} {body:?} should be Unreachable"
        );
        assert!(app.hits() >= 1, "the target list was asked for");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_client_gets_complete_snapshot_through_the_spill_file() {
    let Some(node) = node() else { return };
    let app = NodeApp::start(&node, &[]);
    let source = InspectorSource::new(app.inspector, 64 << 10);
    let snapshot = source.take().await.expect("take");
    // Read nothing for a while: V8 keeps sending, the actor keeps reading, the excess spills.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let bytes = collect(snapshot.body).await.expect("complete body");
    let json: Value = serde_json::from_slice(&bytes).expect("snapshot is JSON");
    assert_valid_snapshot(&json);
}
