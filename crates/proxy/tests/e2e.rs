//! The real `heapgate-proxy` binary in front of a real Node.js app: snapshots through the proxy,
//! series, concurrency, slow readers, a dying app, pass-through, task discovery, logs, shutdown.
//!
//! Without `node` these tests print a loud SKIPPED notice; under CI=true they fail instead.

use std::path::PathBuf;
use std::time::Duration;

use heapgate_tests::{
    Answer, Cmd, HttpResponse, LEAKED_CLASS, NodeApp, ProxyProc, RequestOptions, StubApp,
    assert_valid_snapshot, contains, http_get, http_request, node_or_skip, object_ids,
};
use heapgate_token::{Key, mint};

const SECRET: &str = "e2e-secret-0123456789abcdef";
fn token() -> String {
    heapgate_tests::token_now(SECRET)
}

fn node(test: &str) -> Option<PathBuf> {
    node_or_skip(&format!("e2e::{test}"))
}

/// The proxy in front of `app`, with the secret in the environment and `extra` flags.
fn proxy_for(app: &NodeApp, extra: &[&str]) -> ProxyProc {
    let mut args = vec!["--task-id", "task-a"];
    args.extend_from_slice(extra);
    ProxyProc::in_front_of(app, SECRET, &args)
}

/// The proxy in front of `app` with `--source upstream` (the app's own `/heapdump`), task
/// `task-u`, and `extra` flags.
fn upstream_source_proxy_for(app: &NodeApp, extra: &[&str]) -> ProxyProc {
    let upstream = format!("http://{}", app.addr());
    let mut args = vec![
        "--upstream",
        &upstream,
        "--source",
        "upstream",
        "--task-id",
        "task-u",
    ];
    args.extend_from_slice(extra);
    ProxyProc::launch(&args, &[("HEAPGATE_SECRET", SECRET)])
}

fn snapshot_target(extra: &str) -> String {
    format!("/heapdump?hash={}{extra}", token())
}

/// A client in its own thread asking `proxy` for a snapshot (with `Accept-Encoding: coding`,
/// if any) and reading it at `rate` bytes per second.
fn slow_snapshot_client(
    proxy: &ProxyProc,
    rate: u64,
    coding: Option<&'static str>,
) -> std::thread::JoinHandle<HttpResponse> {
    let request = slow_snapshot_request(proxy, rate, coding);
    std::thread::spawn(move || request.join().unwrap().unwrap())
}

/// [`slow_snapshot_client`], handing back the client's error too.
fn slow_snapshot_request(
    proxy: &ProxyProc,
    rate: u64,
    coding: Option<&'static str>,
) -> std::thread::JoinHandle<std::io::Result<HttpResponse>> {
    let (listen, target) = (proxy.listen, snapshot_target(""));
    std::thread::spawn(move || {
        let accept = coding.map(|coding| [("Accept-Encoding", coding)]);
        let options = RequestOptions {
            headers: accept.as_ref().map_or(&[][..], |h| &h[..]),
            read_rate: Some(rate),
            ..RequestOptions::default()
        };
        http_request(listen, &target, &options)
    })
}

/// Waits for the proxy to log that a snapshot started.
fn wait_for_snapshot_start(proxy: &ProxyProc) {
    proxy.proc.wait_for("snapshot started", |line| {
        line.contains("snapshot started").then_some(())
    });
}

fn parse(response: &HttpResponse) -> serde_json::Value {
    assert_eq!(response.status, 200, "{}", response.text());
    assert!(response.complete, "the snapshot stream ended early");
    serde_json::from_slice(&response.body).expect("the snapshot is JSON")
}

#[test]
fn snapshot_through_the_proxy_is_a_complete_heapsnapshot() {
    let Some(node) = node("snapshot_through_the_proxy") else {
        return;
    };
    let app = NodeApp::start(&node, &[]);
    let proxy = proxy_for(&app, &[]);
    let response = http_get(proxy.listen, &snapshot_target("")).unwrap();
    let snapshot = parse(&response);
    assert_valid_snapshot(&snapshot);
    assert_eq!(response.header("content-type"), Some("application/json"));
    assert_eq!(response.header("x-heapgate-task"), Some("task-a"));
    let disposition = response.header("content-disposition").unwrap();
    assert!(
        disposition.starts_with("attachment; filename=\"task-a-2"),
        "{disposition}"
    );
    assert!(disposition.ends_with("Z.heapsnapshot\""), "{disposition}");
    assert_eq!(
        response.header("x-heapgate-session").map(str::len),
        Some(16)
    );
    assert_eq!(
        response.header("x-heapgate-series"),
        response.header("x-heapgate-session"),
        "the legacy name carries the same session for one release"
    );
}

#[test]
fn two_snapshots_share_the_session_and_the_leaked_objects_ids() {
    let Some(node) = node("two_snapshots_share_the_session") else {
        return;
    };
    let app = NodeApp::start(&node, &[]);
    let proxy = proxy_for(&app, &["--min-interval", "0s"]);
    let first = http_get(proxy.listen, &snapshot_target("")).unwrap();
    assert!(app.get("/leak?n=25").contains("\"leaked\":125"));
    let second = http_get(proxy.listen, &snapshot_target("")).unwrap();
    assert_eq!(
        first.header("x-heapgate-session"),
        second.header("x-heapgate-session")
    );
    let before = object_ids(&parse(&first), LEAKED_CLASS);
    let after = object_ids(&parse(&second), LEAKED_CLASS);
    assert_eq!((before.len(), after.len()), (100, 125));
    assert!(
        before.is_subset(&after),
        "ids of leaked objects must persist between snapshots"
    );
}

#[test]
fn concurrent_requests_get_one_snapshot_and_429s() {
    let Some(node) = node("concurrent_requests") else {
        return;
    };
    let app = NodeApp::start(&node, &[("LEAK_AT_START", "20000")]);
    let proxy = proxy_for(&app, &[]);
    let listen = proxy.listen;
    let target = snapshot_target("");
    let handles: Vec<_> = (0..5)
        .map(|_| {
            let target = target.clone();
            std::thread::spawn(move || http_get(listen, &target).unwrap())
        })
        .collect();
    let responses: Vec<HttpResponse> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let mut statuses: Vec<u16> = responses.iter().map(|r| r.status).collect();
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 429, 429, 429, 429]);
    for busy in responses.iter().filter(|r| r.status == 429) {
        assert!(
            busy.header("retry-after")
                .is_some_and(|s| s.parse::<u64>().is_ok())
        );
    }
    let ok = responses.iter().find(|r| r.status == 200).unwrap();
    assert_valid_snapshot(&parse(ok));
}

#[test]
fn a_slow_reader_does_not_grow_the_proxy() {
    let Some(node) = node("a_slow_reader_does_not_grow_the_proxy") else {
        return;
    };
    // ~40 MB of snapshot, read at 8 MB/s: the proxy must spill rather than hold it.
    let app = NodeApp::start(&node, &[("LEAK_AT_START", "300000")]);
    let proxy = proxy_for(&app, &[]);
    let options = RequestOptions {
        read_rate: Some(8_000_000),
        ..RequestOptions::default()
    };
    let response = http_request(proxy.listen, &snapshot_target(""), &options).unwrap();
    let size = response.body.len() as u64;
    assert_valid_snapshot(&parse(&response));
    let peak = proxy.proc.peak_rss();
    eprintln!(
        "slow reader: snapshot {} MiB, proxy peak RSS {} MiB",
        size >> 20,
        peak >> 20
    );
    assert!(
        size > 30 << 20,
        "the snapshot must dwarf the bound to mean anything ({size} bytes)"
    );
    assert!(
        peak < 32 << 20,
        "proxy peak RSS {peak} bytes for a {size}-byte snapshot"
    );
}

#[test]
fn the_app_dying_mid_snapshot_aborts_the_transfer() {
    let Some(node) = node("the_app_dying_mid_snapshot") else {
        return;
    };
    let mut app = NodeApp::start(&node, &[("LEAK_AT_START", "200000")]);
    let proxy = proxy_for(&app, &[]);
    // Slow enough that the app is killed while the body is still flowing.
    let client = slow_snapshot_request(&proxy, 4_000_000, None);
    // Kill the app while V8 is still building the snapshot.
    wait_for_snapshot_start(&proxy);
    app.proc.kill();
    // Killed before the first byte, the transfer is aborted before its head could be flushed:
    // the client sees the connection close with no answer, which no client takes for a file.
    let response = match client.join().unwrap() {
        Ok(response) => response,
        Err(e) => {
            assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof, "{e}");
            return;
        }
    };
    assert_eq!(response.status, 200);
    assert!(
        !response.complete,
        "a truncated snapshot must not end cleanly ({} bytes)",
        response.body.len()
    );
    assert!(serde_json::from_slice::<serde_json::Value>(&response.body).is_err());
}

#[test]
fn normal_traffic_and_uploads_pass_through() {
    let Some(node) = node("normal_traffic_and_uploads_pass_through") else {
        return;
    };
    let app = NodeApp::start(&node, &[]);
    let proxy = proxy_for(&app, &[]);
    let root = http_get(proxy.listen, "/").unwrap();
    assert_eq!((root.status, root.text().as_str()), (200, "ok"));

    let headers = http_get(proxy.listen, "/headers?x=1").unwrap();
    let seen: serde_json::Value = serde_json::from_slice(&headers.body).unwrap();
    assert_eq!(seen["url"], "/headers?x=1");
    assert_eq!(seen["headers"]["x-forwarded-for"], "127.0.0.1");

    let upload: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let options = RequestOptions {
        method: "POST",
        body: &upload,
        ..RequestOptions::default()
    };
    let echoed = http_request(proxy.listen, "/echo", &options).unwrap();
    assert_eq!(echoed.status, 200);
    assert!(echoed.body == upload, "upload echoed back byte for byte");
}

/// A stand-in for the ECS task metadata endpoint v4: the task document at `/v4/abc/task`, a
/// 512 MiB task.
fn ecs_metadata_stub() -> StubApp {
    StubApp::start(|request| {
        if request.method == "GET" && request.target == "/v4/abc/task" {
            Answer::new(
                200,
                r#"{"Cluster":"default","TaskARN":"arn:aws:ecs:us-west-2:111122223333:task/default/8f03e41243824aea923aca126495f665","Limits":{"CPU":0.25,"Memory":512}}"#,
            )
        } else {
            Answer::status(404)
        }
    })
}

#[test]
fn task_id_comes_from_ecs_metadata() {
    let Some(node) = node("task_id_comes_from_ecs_metadata") else {
        return;
    };
    let app = NodeApp::start(&node, &[]);
    let metadata = ecs_metadata_stub();
    let upstream = format!("http://{}", app.addr());
    let uri = format!("{}/v4/abc", metadata.url());
    let proxy = ProxyProc::launch(
        &["--upstream", &upstream],
        &[
            ("HEAPGATE_SECRET", SECRET),
            ("ECS_CONTAINER_METADATA_URI_V4", &uri),
        ],
    );
    let probe = http_get(proxy.listen, &snapshot_target("&probe=1")).unwrap();
    assert_eq!(probe.status, 204);
    assert_eq!(
        probe.header("x-heapgate-task"),
        Some("8f03e41243824aea923aca126495f665")
    );
    assert_eq!(
        metadata.hits_where(|r| r.target == "/v4/abc/task"),
        1,
        "the task id and the memory limit were asked for once"
    );
    let logs = proxy.proc.output();
    assert!(
        logs.contains("EcsMetadata"),
        "the origin of the id is logged"
    );
    assert!(
        logs.contains(r#""limit":536870912,"from":"the ECS task's memory""#),
        "the task's memory limit is the headroom rule's, and logged:\n{logs}"
    );

    // With --task-id the document is still read once, for the memory limit alone.
    let metadata = ecs_metadata_stub();
    let uri = format!("{}/v4/abc", metadata.url());
    let proxy = ProxyProc::launch(
        &["--upstream", &upstream, "--task-id", "given"],
        &[
            ("HEAPGATE_SECRET", SECRET),
            ("ECS_CONTAINER_METADATA_URI_V4", &uri),
        ],
    );
    let probe = http_get(proxy.listen, &snapshot_target("&probe=1")).unwrap();
    assert_eq!(probe.header("x-heapgate-task"), Some("given"));
    assert_eq!(metadata.hits_where(|r| r.target == "/v4/abc/task"), 1);
    assert!(proxy.proc.output().contains("the ECS task's memory"));
}

#[test]
fn logs_contain_neither_the_secret_nor_the_hash() {
    let Some(node) = node("logs_contain_neither_the_secret_nor_the_hash") else {
        return;
    };
    let app = NodeApp::start(&node, &[("LEAK_AT_START", "10")]);
    let proxy = proxy_for(&app, &["--min-interval", "0s"]);
    let hash = token();
    let wrong = mint(
        &Key::new(b"another-secret-0000").unwrap(),
        "heapdump",
        chrono::Utc::now(),
    )
    .to_string();
    for target in [
        format!("/heapdump?hash={hash}"),
        format!("/heapdump?hash={hash}&task=other"),
        format!("/heapdump?hash={hash}&probe=1"),
        format!("/heapdump?hash={wrong}"),
        format!("/heapdump?hash={}", &hash[..40]),
        "/heapdump".to_owned(),
    ] {
        let _ = http_get(proxy.listen, &target).unwrap();
    }
    // The last request's line: everything before it has been written by then.
    proxy.proc.wait_for("the last request's log line", |line| {
        line.contains("without hash").then_some(())
    });
    let logs = proxy.proc.output();
    assert!(
        logs.contains("snapshot sent"),
        "the snapshot was logged:\n{logs}"
    );
    assert!(logs.contains("403"), "the rejection was logged");
    assert!(!logs.contains(SECRET), "the secret leaked into the logs");
    for secret_ish in [&hash[..], &wrong[..], &hash[..40]] {
        assert!(
            !logs.contains(secret_ish),
            "a token leaked into the logs:\n{logs}"
        );
    }
}

#[test]
fn sigterm_lets_a_running_snapshot_finish() {
    let Some(node) = node("sigterm_lets_a_running_snapshot_finish") else {
        return;
    };
    let app = NodeApp::start(&node, &[("LEAK_AT_START", "200000")]);
    let mut proxy = proxy_for(&app, &["--shutdown-timeout", "60s"]);
    let (listen, admin) = (proxy.listen, proxy.admin);
    assert_eq!(http_get(admin, "/readyz").unwrap().status, 200);
    let client = slow_snapshot_client(&proxy, 8_000_000, None);
    wait_for_snapshot_start(&proxy);
    proxy.proc.signal("TERM");
    let mut readyz = 0;
    for _ in 0..50 {
        if let Ok(response) = http_get(admin, "/readyz") {
            readyz = response.status;
            if readyz == 503 {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(readyz, 503, "readyz must fail while draining");
    assert!(
        http_get(listen, "/").is_err(),
        "no new connections while draining"
    );
    let response = client.join().unwrap();
    assert_valid_snapshot(&parse(&response));
    assert_eq!(proxy.proc.wait_exit(Duration::from_secs(10)), Some(0));
}

#[test]
fn upstream_source_streams_the_apps_own_endpoint() {
    let Some(node) = node("upstream_source_streams_the_apps_own_endpoint") else {
        return;
    };
    let app = NodeApp::start(&node, &[]);
    let proxy = upstream_source_proxy_for(&app, &[]);
    let response = http_get(proxy.listen, &snapshot_target("")).unwrap();
    assert_valid_snapshot(&parse(&response));
    assert_eq!(response.header("x-heapgate-task"), Some("task-u"));
    // The token is still checked by the proxy before anything reaches the app.
    assert_eq!(
        http_get(proxy.listen, "/heapdump?hash=00").unwrap().status,
        400
    );
}

#[test]
fn an_oversized_request_head_is_refused() {
    let Some(node) = node("an_oversized_request_head_is_refused") else {
        return;
    };
    let app = NodeApp::start(&node, &[]);
    let proxy = proxy_for(&app, &["--max-header-bytes", "16384"]);
    let big = "x".repeat(64 * 1024);
    let options = RequestOptions {
        headers: &[("X-Big", &big)],
        ..RequestOptions::default()
    };
    match http_request(proxy.listen, "/", &options) {
        Ok(response) => assert_eq!(response.status, 431),
        Err(e) => assert!(e.kind() != std::io::ErrorKind::TimedOut, "{e}"),
    }
    assert_eq!(
        http_get(proxy.listen, "/").unwrap().status,
        200,
        "still healthy"
    );
}

#[test]
fn configuration_errors_exit_2_with_one_line() {
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let run = Cmd::proxy().args(args).envs(env).run();
        (Some(run.code), run.stderr)
    };
    let secret = [("HEAPGATE_SECRET", SECRET)];
    for (args, env) in [
        (&["--upstream", "http://127.0.0.1:3000"][..], &[][..]),
        (
            &[
                "--upstream",
                "http://127.0.0.1:3000",
                "--inspector",
                "http://10.1.2.3:9229",
            ],
            &secret[..],
        ),
        (&["--upstream", "https://127.0.0.1:3000"], &secret[..]),
        (
            &[
                "--upstream",
                "http://127.0.0.1:3000",
                "--task-id",
                "a/b",
                "--listen",
                "127.0.0.1:0",
            ],
            &secret[..],
        ),
    ] {
        let (code, stderr) = run(args, env);
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        assert!(!stderr.contains(SECRET));
        assert!(!stderr.trim().is_empty(), "{args:?}: a reason is printed");
    }
    let (code, stderr) = run(&["--upstream", "http://127.0.0.1:3000"], &[]);
    assert_eq!(code, Some(2));
    assert_eq!(
        stderr,
        "heapgate-proxy: no secret: pass --secret-file PATH or set HEAPGATE_SECRET\n"
    );
}

/// `heapgate-proxy --version` names the revision it was built from, like `heapgate --version`.
#[test]
fn proxy_version_names_the_revision() {
    let run = Cmd::proxy().arg("--version").expect_success();
    let rev = std::process::Command::new("git")
        .args(["rev-parse", "--short=7", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    let expected = format!("heapgate-proxy {}", env!("CARGO_PKG_VERSION"));
    assert!(run.stdout.starts_with(&expected), "{}", run.stdout);
    if let Some(rev) = rev {
        assert!(
            run.stdout.contains(&format!("({rev}")),
            "{} lacks {rev}",
            run.stdout
        );
    }
}

#[test]
fn help_names_every_flag_and_its_environment_variable() {
    let help = Cmd::proxy().arg("--help").expect_success().stdout;
    for (flag, env) in [
        ("--listen", "HEAPGATE_LISTEN"),
        ("--upstream", "HEAPGATE_UPSTREAM"),
        ("--path", "HEAPGATE_PATH"),
        ("--secret-file", "HEAPGATE_SECRET_FILE"),
        ("--value", "HEAPGATE_VALUE"),
        ("--grace", "HEAPGATE_GRACE"),
        ("--skew", "HEAPGATE_SKEW"),
        ("--task-id", "HEAPGATE_TASK_ID"),
        ("--source", "HEAPGATE_SOURCE"),
        ("--inspector", "HEAPGATE_INSPECTOR"),
        (
            "--allow-remote-inspector",
            "HEAPGATE_ALLOW_REMOTE_INSPECTOR",
        ),
        ("--upstream-path", "HEAPGATE_UPSTREAM_PATH"),
        ("--min-interval", "HEAPGATE_MIN_INTERVAL"),
        ("--keepalive", "HEAPGATE_KEEPALIVE"),
        ("--health-path", "HEAPGATE_HEALTH_PATH"),
        ("--admin-listen", "HEAPGATE_ADMIN_LISTEN"),
        ("--shutdown-timeout", "HEAPGATE_SHUTDOWN_TIMEOUT"),
        ("--request-timeout", "HEAPGATE_REQUEST_TIMEOUT"),
        ("--header-timeout", "HEAPGATE_HEADER_TIMEOUT"),
        ("--max-header-bytes", "HEAPGATE_MAX_HEADER_BYTES"),
        ("--log-format", "HEAPGATE_LOG_FORMAT"),
        ("--pin-ttl", "HEAPGATE_PIN_TTL"),
        ("--max-attempts", "HEAPGATE_MAX_ATTEMPTS"),
        ("--compression", "HEAPGATE_COMPRESSION"),
        ("--redact", "HEAPGATE_REDACT"),
        ("--lane", "HEAPGATE_LANE"),
    ] {
        assert!(help.contains(flag), "{flag} missing from --help");
        assert!(help.contains(env), "{env} missing from --help");
        let readme = include_str!("../../../README.md");
        assert!(
            readme.contains(&format!("`{flag}")),
            "{flag} missing from the README"
        );
        assert!(readme.contains(env), "{env} missing from the README");
    }
    assert!(help.contains("HEAPGATE_SECRET"));
}

fn decode(coding: &str, wire: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    match coding {
        "zstd" => zstd::stream::read::Decoder::new(wire)
            .unwrap()
            .read_to_end(&mut out),
        "gzip" => flate2::read::GzDecoder::new(wire).read_to_end(&mut out),
        other => panic!("unexpected coding {other}"),
    }
    .unwrap();
    out
}

#[test]
fn compressed_snapshots_decode_to_valid_snapshots_at_a_fraction_of_the_bytes() {
    let Some(node) = node("compressed_snapshots") else {
        return;
    };
    // ~30 MB of snapshot: small ones compress less (a 4 MB one: gzip -1 4.0x, zstd -1 5.1x).
    let app = NodeApp::start(&node, &[("LEAK_AT_START", "200000")]);
    let proxy = proxy_for(&app, &["--min-interval", "0s"]);
    let plain = http_get(proxy.listen, &snapshot_target("")).unwrap();
    assert_eq!(plain.header("content-encoding"), None);
    assert_eq!(plain.header("vary"), Some("accept-encoding"));
    assert_valid_snapshot(&parse(&plain));
    for coding in ["zstd", "gzip"] {
        let options = RequestOptions {
            headers: &[("Accept-Encoding", coding)],
            ..RequestOptions::default()
        };
        let response = http_request(proxy.listen, &snapshot_target(""), &options).unwrap();
        assert_eq!(response.status, 200);
        assert!(response.complete);
        assert_eq!(response.header("content-encoding"), Some(coding));
        let decoded = decode(coding, &response.body);
        let snapshot: serde_json::Value = serde_json::from_slice(&decoded).unwrap();
        assert_valid_snapshot(&snapshot);
        let ratio = plain.body.len() as f64 / response.body.len() as f64;
        eprintln!(
            "{coding}: {} bytes on the wire for a {}-byte snapshot ({ratio:.1}x)",
            response.body.len(),
            decoded.len()
        );
        assert!(ratio >= 5.0, "{coding}: only {ratio:.1}x smaller");
    }
}

/// `--source upstream`: an app that encodes its own answer has it passed through untouched; an
/// app that answers plain gets compressed by the proxy.
#[test]
fn upstream_source_passes_an_encoded_answer_through_and_compresses_a_plain_one() {
    let Some(node) = node("upstream_source_encodings") else {
        return;
    };
    let app = NodeApp::start(&node, &[]);
    let proxy = upstream_source_proxy_for(&app, &["--min-interval", "0s"]);
    let options = RequestOptions {
        headers: &[("Accept-Encoding", "zstd")],
        ..RequestOptions::default()
    };
    for (extra, coding) in [("&gzip=1", "gzip"), ("", "zstd")] {
        let response = http_request(proxy.listen, &snapshot_target(extra), &options).unwrap();
        assert_eq!(response.status, 200);
        assert!(response.complete);
        assert_eq!(response.header("content-encoding"), Some(coding), "{extra}");
        let snapshot: serde_json::Value =
            serde_json::from_slice(&decode(coding, &response.body)).unwrap();
        assert_valid_snapshot(&snapshot);
    }
}

const PLANTED_SECRET: &str = "hunter2-TOPSECRET-7f3a9c";
const PLANTED_EMAIL: &str = "alice.planted@example.com";

/// `--redact strings`: planted secrets are in the app's own snapshot but not in the proxy's,
/// which is still a valid snapshot, compressed or not.
#[test]
fn redacted_snapshots_carry_no_planted_secrets() {
    let Some(node) = node("redacted_snapshots") else {
        return;
    };
    let app = NodeApp::start(&node, &[]);
    for text in [PLANTED_SECRET, PLANTED_EMAIL] {
        assert!(
            app.get(&format!("/remember?text={text}"))
                .contains("remembered")
        );
    }
    // The oracle: the app's own unredacted snapshot holds both.
    let own = http_get(app.addr(), "/heapdump").unwrap();
    assert_eq!(own.status, 200);
    assert!(contains(&own.body, PLANTED_SECRET) && contains(&own.body, PLANTED_EMAIL));

    let proxy = proxy_for(&app, &["--min-interval", "0s", "--redact", "strings"]);
    for coding in ["zstd", "identity"] {
        let options = RequestOptions {
            headers: &[("Accept-Encoding", coding)],
            ..RequestOptions::default()
        };
        let response = http_request(proxy.listen, &snapshot_target(""), &options).unwrap();
        assert_eq!(response.status, 200);
        assert!(response.complete);
        assert_eq!(response.header("x-heapgate-redacted"), Some("strings"));
        let plain = if coding == "identity" {
            assert_eq!(response.header("content-encoding"), None);
            response.body.clone()
        } else {
            assert_eq!(response.header("content-encoding"), Some(coding));
            decode(coding, &response.body)
        };
        assert!(
            !contains(&plain, PLANTED_SECRET),
            "{coding}: the secret leaked"
        );
        assert!(
            !contains(&plain, PLANTED_EMAIL),
            "{coding}: the e-mail leaked"
        );
        assert!(contains(&plain, "\"<redacted>\""));
        let snapshot: serde_json::Value = serde_json::from_slice(&plain).unwrap();
        assert_valid_snapshot(&snapshot);
        // Names survive: the leaked class is still there by name, with its objects.
        assert_eq!(object_ids(&snapshot, LEAKED_CLASS).len(), 100);
    }
}

/// A slow client of a compressed snapshot: the proxy compresses at the source's pace, holding
/// (and if need be spilling) compressed bytes for the client, and stays small.
#[test]
fn a_slow_compressed_reader_does_not_hold_back_the_source() {
    let Some(node) = node("a_slow_compressed_reader") else {
        return;
    };
    let app = NodeApp::start(&node, &[("LEAK_AT_START", "300000")]);
    let proxy = proxy_for(&app, &[]);
    let client = slow_snapshot_client(&proxy, 400_000, Some("zstd"));
    let compressed_line = || {
        proxy
            .proc
            .output()
            .lines()
            .find(|l| l.contains("snapshot compressed"))
            .map(str::to_owned)
    };
    // The whole snapshot is compressed while the client is still reading.
    let mut line = None;
    while line.is_none() && !client.is_finished() {
        std::thread::sleep(Duration::from_millis(100));
        line = compressed_line();
    }
    let line = line.expect("compression finished only after the slow client did");
    let response = client.join().unwrap();
    assert_eq!(response.status, 200);
    assert!(response.complete);
    let plain = decode("zstd", &response.body);
    assert_valid_snapshot(&serde_json::from_slice(&plain).unwrap());
    let json: serde_json::Value =
        serde_json::from_str(line.split_once(' ').map_or(&line[..], |(_, rest)| rest)).unwrap();
    let field = |name: &str| {
        json[name]
            .as_u64()
            .unwrap_or_else(|| panic!("{name} in {line}"))
    };
    let peak = proxy.proc.peak_rss();
    eprintln!(
        "slow compressed reader: {} bytes of JSON, {} compressed, {} spilled, proxy peak RSS {} MiB",
        field("raw_bytes"),
        field("compressed_bytes"),
        field("spilled_bytes"),
        peak >> 20
    );
    assert_eq!(field("compressed_bytes"), response.body.len() as u64);
    assert_eq!(field("raw_bytes"), plain.len() as u64);
    assert!(peak < 32 << 20, "proxy peak RSS {peak} bytes");
}
