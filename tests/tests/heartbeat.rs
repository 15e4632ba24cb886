//! The heartbeat before V8's first byte, through a real balancer with a short idle timeout, on a
//! compressed answer: nginx cuts a response whose bytes pause for 2 s, the snapshot takes longer
//! than that to start, and only the proxy's compressed heartbeat blocks keep it alive.
//!
//! Without node or nginx these tests print a loud SKIPPED notice; under CI=true they fail.

use heapgate_tests::{
    Nginx, NodeApp, ProxyProc, RequestOptions, assert_valid_snapshot, http_request, nginx_or_skip,
    node_or_skip,
};

const SECRET: &str = "heartbeat-secret-0123456789abcdef";

#[test]
fn compressed_heartbeat_outlasts_a_balancer_idle_timeout() {
    let test = "heartbeat::compressed_heartbeat_outlasts_a_balancer_idle_timeout";
    let (Some(node), Some(nginx)) = (node_or_skip(test), nginx_or_skip(test)) else {
        return;
    };
    // Big enough that V8 builds for several seconds before its first byte.
    let app = NodeApp::start(&node, &[("LEAK_AT_START", "700000")]);
    let take = |heartbeat: &str| {
        let proxy = ProxyProc::in_front_of(
            &app,
            SECRET,
            &["--min-interval", "0s", "--keepalive", heartbeat],
        );
        let balancer = Nginx::start_with_read_timeout(&nginx, &[proxy.listen], "2s");
        let options = RequestOptions {
            headers: &[("Accept-Encoding", "zstd")],
            ..RequestOptions::default()
        };
        let target = format!("/heapdump?hash={}", heapgate_tests::token_now(SECRET));
        let started = std::time::Instant::now();
        let response = http_request(balancer.addr, &target, &options).unwrap();
        (response, started.elapsed())
    };

    let (response, took) = take("500ms");
    eprintln!(
        "heartbeat 500ms: status {} complete={} after {took:?}",
        response.status, response.complete
    );
    assert_eq!(response.status, 200);
    assert!(response.complete, "cut despite the compressed heartbeat");
    assert_eq!(response.header("content-encoding"), Some("zstd"));
    let plain = zstd::decode_all(&response.body[..]).unwrap();
    assert!(
        plain.starts_with(b" "),
        "heartbeat spaces lead the decoded JSON"
    );
    assert_valid_snapshot(&serde_json::from_slice(&plain).unwrap());

    // Control (after the first snapshot ended: V8 takes one at a time): heartbeat slower than
    // the idle timeout, and nginx cuts the same answer.
    let (cut, took) = take("60s");
    eprintln!(
        "heartbeat 60s: status {} complete={} after {took:?}",
        cut.status, cut.complete
    );
    assert_eq!(cut.status, 200, "the head is sent at once");
    assert!(
        !cut.complete,
        "the snapshot must take longer than the 2 s idle timeout to start for this test to mean \
         anything (took {took:?})"
    );
}
