//! The profile path end to end: a real Node app, the real proxy sampling over its inspector, and
//! a gateway in front. One token per instrument; the same task, probe, header, compression and
//! metrics contract as the snapshot path; a rate limit instead of the snapshot gate; every
//! spelling of the path guarded on the pass-through route.

use std::time::Duration;

use heapgate_tests::{
    NodeApp, ProxyProc, RequestOptions, http_get, http_request, node_or_skip, profile_token_now,
    token_now,
};

const SECRET: &str = "profile-secret-0123456789abcdef";

fn get(proxy: &ProxyProc, target: &str) -> heapgate_tests::HttpResponse {
    http_get(proxy.listen, target).unwrap()
}

/// The `.heapprofile` JSON's live bytes (self sizes over the tree) and its stack nodes.
fn totals(profile: &serde_json::Value) -> (u64, usize) {
    let (mut bytes, mut nodes, mut stack) = (0, 0, vec![&profile["head"]]);
    while let Some(node) = stack.pop() {
        nodes += 1;
        bytes += node["selfSize"].as_u64().unwrap();
        stack.extend(node["children"].as_array().unwrap());
    }
    (bytes, nodes)
}

#[test]
fn the_profile_path_keeps_the_snapshot_paths_contract_with_its_own_tokens() {
    let Some(node) = node_or_skip("profile_path::contract") else {
        return;
    };
    let app = NodeApp::start(
        &node,
        &[("LEAK_PER_SECOND", "20000"), ("LEAK_AT_START", "0")],
    );
    let proxy = ProxyProc::in_front_of(
        &app,
        SECRET,
        &["--task-id", "p1", "--profile-min-interval", "2s"],
    );
    proxy.proc.wait_for("the sampling session", |l| {
        l.contains("inspector session opened").then_some(())
    });
    std::thread::sleep(Duration::from_secs(1));
    let profile_token = profile_token_now(SECRET);
    let snapshot_token = token_now(SECRET);

    // A snapshot token never opens the profile, nor a profile token the snapshot.
    assert_eq!(
        get(&proxy, &format!("/heapprofile?hash={snapshot_token}")).status,
        403
    );
    assert_eq!(
        get(&proxy, &format!("/heapdump?hash={profile_token}")).status,
        403
    );
    // Another task: 421 naming this one; a probe: 204 naming it.
    let misdirected = get(
        &proxy,
        &format!("/heapprofile?hash={profile_token}&task=p2"),
    );
    assert_eq!(misdirected.status, 421);
    assert_eq!(misdirected.header("x-heapgate-task"), Some("p1"));
    let probe = get(
        &proxy,
        &format!("/heapprofile?hash={profile_token}&probe=1"),
    );
    assert_eq!(probe.status, 204);
    assert_eq!(probe.header("x-heapgate-task"), Some("p1"));
    // Bad queries: 400; `format` belongs to the profile path only.
    assert_eq!(
        get(
            &proxy,
            &format!("/heapprofile?hash={profile_token}&format=json")
        )
        .status,
        400
    );
    assert_eq!(
        get(
            &proxy,
            &format!("/heapprofile?hash={profile_token}&Format=pprof")
        )
        .status,
        400
    );
    assert_eq!(
        get(
            &proxy,
            &format!("/heapdump?hash={snapshot_token}&format=pprof")
        )
        .status,
        400
    );

    // The profile, compressed as asked.
    let answer = http_request(
        proxy.listen,
        &format!("/heapprofile?hash={profile_token}"),
        &RequestOptions {
            headers: &[("Accept-Encoding", "zstd")],
            ..RequestOptions::default()
        },
    )
    .unwrap();
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.header("content-encoding"), Some("zstd"));
    assert_eq!(answer.header("x-heapgate-task"), Some("p1"));
    assert_eq!(answer.header("x-heapgate-profile-restarts"), Some("0"));
    assert!(
        answer
            .header("x-heapgate-session")
            .is_some_and(|s| s.len() == 16)
    );
    assert!(
        answer
            .header("content-disposition")
            .is_some_and(|d| d.contains("p1-") && d.ends_with(".heapprofile\""))
    );
    let json = zstd::decode_all(&answer.body[..]).unwrap();
    let profile: serde_json::Value = serde_json::from_slice(&json).unwrap();
    let (bytes, nodes) = totals(&profile);
    assert!(bytes > 0 && nodes > 1, "{bytes} bytes in {nodes} nodes");
    assert!(profile["samples"].as_array().is_some_and(|s| !s.is_empty()));

    // Rate limited: the next one within --profile-min-interval is a 429 naming the task.
    let busy = get(&proxy, &format!("/heapprofile?hash={profile_token}"));
    assert_eq!(busy.status, 429);
    assert!(busy.header("retry-after").is_some());
    assert_eq!(busy.header("x-heapgate-task"), Some("p1"));

    // pprof: gzipped profile.proto as it is (never compressed again), read back by
    // heapgate-profile's decoder.
    std::thread::sleep(Duration::from_secs(2));
    let pprof = http_request(
        proxy.listen,
        &format!("/heapprofile?hash={profile_token}&format=pprof"),
        &RequestOptions {
            headers: &[("Accept-Encoding", "zstd, gzip")],
            ..RequestOptions::default()
        },
    )
    .unwrap();
    assert_eq!(pprof.status, 200, "{}", pprof.text());
    assert_eq!(pprof.header("content-encoding"), None);
    assert_eq!(
        pprof.header("content-type"),
        Some("application/octet-stream")
    );
    assert!(
        pprof
            .header("content-disposition")
            .is_some_and(|d| d.ends_with(".pb.gz\""))
    );
    assert_eq!(&pprof.body[..2], b"\x1f\x8b", "gzip magic");
    let decoded = heapgate_profile::pprof::decode(&pprof.body).unwrap();
    assert!(decoded.total_bytes() > 0 && decoded.total_objects() > 0);
    assert_eq!(decoded.interval, Some(512 << 10));

    // Spellings of the profile path never reach the app.
    for target in [
        "/HeapProfile",
        "/heapprofile/",
        "/x/../heapprofile",
        "/%68eapprofile",
    ] {
        let answer = get(&proxy, &format!("{target}?hash={profile_token}"));
        assert_eq!(answer.status, 404, "{target}");
    }
    proxy
        .metric_reaches(
            "heapgate_profiles_total{outcome=\"ok\"} 2",
            Duration::from_secs(5),
        )
        .unwrap();
    let metrics = http_get(proxy.admin, "/metrics").unwrap().text();
    assert!(metrics.contains("heapgate_requests_total{route=\"profile\",status=\"429\"} 1"));
    assert!(metrics.contains("heapgate_requests_total{route=\"profile\",status=\"200\"} 2"));

    // A gateway in front forwards the profile path too, to the same task.
    let gateway = ProxyProc::launch(
        &[
            "--source",
            "gateway",
            "--upstream",
            &format!("http://{}", proxy.listen),
            "--task-id",
            "gw",
        ],
        &[("HEAPGATE_SECRET", SECRET)],
    );
    std::thread::sleep(Duration::from_secs(2));
    let via = http_get(
        gateway.listen,
        &format!("/heapprofile?hash={profile_token}&task=p1"),
    )
    .unwrap();
    assert_eq!(via.status, 200, "{}\n{}", via.text(), gateway.proc.output());
    assert_eq!(via.header("x-heapgate-task"), Some("p1"));
    let profile: serde_json::Value = serde_json::from_slice(&via.body).unwrap();
    assert!(totals(&profile).0 > 0);
    assert_eq!(
        http_get(
            gateway.listen,
            &format!("/heapprofile?hash={snapshot_token}")
        )
        .unwrap()
        .status,
        403
    );
    drop(app);
}

/// Another client on the app stops V8's one sampler (closing its session disables its heap
/// profiler): the next profile is a clean 502, logged; sampling is started again, and the one
/// after is served again (counted as a restart).
#[test]
fn a_sampler_stopped_behind_the_proxys_back_is_a_502_then_restarted() {
    let Some(node) = node_or_skip("profile_path::a_sampler_stopped") else {
        return;
    };
    let app = NodeApp::start(
        &node,
        &[("LEAK_PER_SECOND", "20000"), ("LEAK_AT_START", "0")],
    );
    let opened = |proxy: &ProxyProc| {
        proxy.proc.wait_for("the sampling session", |l| {
            l.contains("inspector session opened").then_some(())
        });
    };
    let ours = ProxyProc::in_front_of(
        &app,
        SECRET,
        &["--task-id", "p1", "--profile-min-interval", "0s"],
    );
    opened(&ours);
    let other = ProxyProc::in_front_of(&app, SECRET, &["--task-id", "p2"]);
    opened(&other);
    drop(other);
    std::thread::sleep(Duration::from_millis(500));
    let token = profile_token_now(SECRET);
    let refused = get(&ours, &format!("/heapprofile?hash={token}"));
    assert_eq!(refused.status, 502, "{}", refused.text());
    assert_eq!(refused.text(), "sampling heap profile unavailable\n");
    assert_eq!(refused.header("x-heapgate-task"), Some("p1"));
    // Logged before the 502 is sent, but read from the proxy's stderr on another thread: wait.
    ours.proc.wait_for("the refusal logged", |l| {
        l.contains("sampling profile refused").then_some(())
    });
    std::thread::sleep(Duration::from_millis(500));
    let served = get(&ours, &format!("/heapprofile?hash={token}"));
    assert_eq!(served.status, 200, "{}", served.text());
    assert_eq!(served.header("x-heapgate-profile-restarts"), Some("1"));
    let profile: serde_json::Value = serde_json::from_slice(&served.body).unwrap();
    assert!(profile["head"].is_object());
    ours.metric_reaches(
        "heapgate_profiles_total{outcome=\"unreachable\"} 1",
        Duration::from_secs(5),
    )
    .unwrap();
    drop(app);
}
