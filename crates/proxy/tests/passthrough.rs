//! Pass-through over real sockets: the real `heapgate-proxy` binary in front of the harness's
//! stub app, and clients speaking raw HTTP/1.1 where the exact wire matters. The stub records
//! every request as it arrived, so what the app saw is checked directly.

use std::time::{Duration, Instant};

use heapgate_tests::http::{Conn, request};
use heapgate_tests::{
    Answer, Body, Cmd, Exchange, Part, ProxyProc, Release, StubApp, StubRequest, WAIT, exchange,
    free_port, http_get,
};

const SECRET: &str = "passthrough-secret-0123456789abcdef";

/// The proxy in front of `upstream` (a URL), with `extra` flags.
fn proxy_to(upstream: &str, extra: &[&str]) -> ProxyProc {
    let mut args = vec![
        "--source",
        "upstream",
        "--task-id",
        "t1",
        "--upstream",
        upstream,
    ];
    args.extend_from_slice(extra);
    ProxyProc::launch(&args, &[("HEAPGATE_SECRET", SECRET)])
}

/// An app answering "ok" to everything, and the proxy in front of it.
fn ok_app() -> (StubApp, ProxyProc) {
    let app = StubApp::start(|_| Answer::ok("ok"));
    let proxy = proxy_to(&app.url(), &[]);
    (app, proxy)
}

/// Sends `bytes` on a fresh connection; the one answer.
fn one_answer(proxy: &ProxyProc, bytes: &[u8]) -> heapgate_tests::HttpResponse {
    let Exchange {
        mut responses,
        ended,
        ..
    } = exchange(proxy.listen, bytes, 1);
    responses
        .pop()
        .unwrap_or_else(|| panic!("no answer: {ended:?}"))
}

/// The one request the app got.
fn only_request(app: &StubApp) -> StubRequest {
    let requests = app.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    requests
        .into_iter()
        .next()
        .unwrap_or_else(|| unreachable!())
}

#[test]
fn method_path_and_query_are_preserved() {
    let (app, proxy) = ok_app();
    let answer = one_answer(
        &proxy,
        b"PATCH /a/b%20c/?x=1&y=%2F&z HTTP/1.1\r\nHost: app.example\r\nContent-Length: 0\r\n\
          Connection: close\r\n\r\n",
    );
    assert_eq!(answer.status, 200, "{answer:?}");
    let seen = only_request(&app);
    assert_eq!(seen.method, "PATCH");
    assert_eq!(seen.path(), "/a/b%20c/");
    assert_eq!(seen.query(), "x=1&y=%2F&z");
}

#[test]
fn path_prefix_of_the_upstream_url_is_prepended() {
    let app = StubApp::start(|_| Answer::ok("ok"));
    let proxy = proxy_to(&format!("{}/base/", app.url()), &[]);
    let answer = one_answer(&proxy, &request("GET", "/users?id=7", ""));
    assert_eq!(answer.status, 200, "{answer:?}");
    let seen = only_request(&app);
    assert_eq!(seen.path(), "/base/users");
    assert_eq!(seen.query(), "id=7");
}

#[test]
fn unusable_upstream_urls_are_rejected() {
    let start = |url: &str| {
        Cmd::proxy()
            .args(["--source", "upstream", "--task-id", "t1", "--upstream", url])
            .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
            .env("HEAPGATE_SECRET", SECRET)
            .run()
    };
    for (url, reason) in [
        ("https://127.0.0.1:3000", "must be http://"),
        ("127.0.0.1:3000", "must be http://"),
        ("http://127.0.0.1:3000/?debug=1", "must not have a query"),
    ] {
        let run = start(url);
        assert_eq!(run.code, 2, "{url}: {}", run.stderr);
        assert_eq!(run.stderr.lines().count(), 1, "{url}: {}", run.stderr);
        assert!(run.stderr.contains(reason), "{url}: {}", run.stderr);
    }
    for url in ["http://127.0.0.1:3000", "http://localhost:3000/prefix"] {
        let proxy = proxy_to(url, &[]);
        let healthz = http_get(proxy.admin, "/healthz").unwrap();
        assert_eq!(healthz.status, 200, "{url}");
    }
}

/// Answers with hop-by-hop headers of its own.
fn hop_app() -> StubApp {
    StubApp::start(|_| {
        Answer::ok("ok")
            .header("Connection", "X-Backend-Hop")
            .header("X-Backend-Hop", "1")
            .header("Keep-Alive", "timeout=5")
            .header("X-Backend-Kept", "1")
    })
}

#[test]
fn hop_by_hop_headers_are_stripped_and_forwarded_headers_set() {
    let app = hop_app();
    let proxy = proxy_to(&app.url(), &[]);
    let answer = one_answer(
        &proxy,
        b"GET /h HTTP/1.1\r\n\
          Host: app.example:8443\r\n\
          Connection: close, X-Hop\r\n\
          X-Hop: secret\r\n\
          Keep-Alive: timeout=5\r\n\
          Proxy-Connection: keep-alive\r\n\
          TE: trailers\r\n\
          Trailer: X-Checksum\r\n\
          Upgrade: h2c\r\n\
          Proxy-Authorization: Basic Zm9vOmJhcg==\r\n\
          X-Forwarded-For: 203.0.113.9\r\n\
          X-Custom: kept\r\n\r\n",
    );
    assert_eq!(answer.status, 200, "{answer:?}");
    let seen = only_request(&app);
    for gone in [
        "connection",
        "x-hop",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "upgrade",
    ] {
        assert!(
            seen.header_values(gone).is_empty(),
            "{gone} reached the upstream"
        );
    }
    assert_eq!(seen.header_values("host"), ["app.example:8443"]);
    assert_eq!(
        seen.header_values("proxy-authorization"),
        ["Basic Zm9vOmJhcg=="]
    );
    assert_eq!(seen.header_values("x-custom"), ["kept"]);
    assert_eq!(
        seen.header_values("x-forwarded-for"),
        ["203.0.113.9, 127.0.0.1"]
    );
    assert_eq!(seen.header_values("x-forwarded-proto"), ["http"]);
    assert_eq!(seen.header_values("x-forwarded-host"), ["app.example:8443"]);

    // The upstream's own hop-by-hop headers do not reach the client.
    assert_eq!(answer.header("x-backend-hop"), None, "{answer:?}");
    assert_eq!(answer.header("keep-alive"), None, "{answer:?}");
    assert_eq!(answer.header("x-backend-kept"), Some("1"), "{answer:?}");
}

#[test]
fn forwarded_headers_from_a_balancer_are_kept() {
    let (app, proxy) = ok_app();
    one_answer(
        &proxy,
        b"GET / HTTP/1.1\r\nHost: internal:8080\r\nX-Forwarded-Proto: https\r\n\
          X-Forwarded-Host: shop.example\r\nX-Forwarded-For: 198.51.100.1\r\n\
          X-Forwarded-For: 10.0.0.2\r\nConnection: close\r\n\r\n",
    );
    let seen = only_request(&app);
    assert_eq!(seen.header_values("x-forwarded-proto"), ["https"]);
    assert_eq!(seen.header_values("x-forwarded-host"), ["shop.example"]);
    assert_eq!(
        seen.header_values("x-forwarded-for"),
        ["198.51.100.1, 10.0.0.2, 127.0.0.1"]
    );
    assert_eq!(seen.header_values("host"), ["internal:8080"]);
}

fn pseudo_random_bytes(len: usize) -> Vec<u8> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()[3]
        })
        .collect()
}

#[test]
fn streamed_upload_echoes_back_byte_identical() {
    // Answers with the request body itself, and says how it was framed upstream.
    let app = StubApp::start(|request| {
        let framing = |name| request.header(name).unwrap_or("none").to_owned();
        Answer::new(200, request.body.clone())
            .header("X-Saw-Content-Length", framing("content-length"))
            .header("X-Saw-Transfer-Encoding", framing("transfer-encoding"))
    });
    let proxy = proxy_to(&app.url(), &[]);
    let payload = pseudo_random_bytes(4 * 1024 * 1024 + 123);

    // Chunked: the body is a stream of unknown length.
    let mut chunked = request("POST", "/upload", "Transfer-Encoding: chunked\r\n");
    for chunk in payload.chunks(64 * 1024) {
        chunked.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        chunked.extend_from_slice(chunk);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let answer = one_answer(&proxy, &chunked);
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("x-saw-content-length"), Some("none"));
    assert_eq!(answer.header("x-saw-transfer-encoding"), Some("chunked"));
    assert_eq!(answer.body.len(), payload.len());
    assert!(answer.body == payload, "echoed body differs");

    // Fixed length: Content-Length goes through as sent.
    let mut fixed = request(
        "PUT",
        "/upload",
        &format!("Content-Length: {}\r\n", payload.len()),
    );
    fixed.extend_from_slice(&payload);
    let answer = one_answer(&proxy, &fixed);
    assert_eq!(
        answer.header("x-saw-content-length"),
        Some(payload.len().to_string().as_str())
    );
    assert!(answer.body == payload, "echoed body differs");
}

#[test]
fn slow_response_arrives_incrementally() {
    // The app finishes only once the client has seen the first chunk.
    let release = Release::new();
    let parts = vec![
        Part::Data(b"first,".to_vec()),
        Part::WaitFor(release.clone()),
        Part::Data(b"second".to_vec()),
    ];
    let app = StubApp::start(move |_| Answer::status(200).body(Body::Chunked(parts.clone())));
    let proxy = proxy_to(&app.url(), &[]);

    let mut conn = Conn::open(proxy.listen, WAIT).unwrap();
    conn.send(&request("GET", "/events", "")).unwrap();
    let head = conn.response(true).unwrap().unwrap();
    assert_eq!(head.status, 200);
    assert_eq!(head.header("transfer-encoding"), Some("chunked"));
    assert_eq!(conn.chunk().unwrap(), b"first,");

    release.fire();
    let mut rest = Vec::new();
    loop {
        let chunk = conn.chunk().unwrap();
        if chunk.is_empty() {
            break;
        }
        rest.extend_from_slice(&chunk);
    }
    assert_eq!(rest, b"second");
}

#[test]
fn unreachable_upstream_is_502_without_details() {
    // Nothing listens there.
    let proxy = proxy_to(&format!("http://127.0.0.1:{}", free_port()), &[]);
    let answer = one_answer(&proxy, &request("GET", "/anything", ""));
    assert_eq!(answer.status, 502, "{answer:?}");
    assert_eq!(answer.body, b"upstream unavailable\n");
    assert_eq!(
        answer.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
}

#[test]
fn slow_response_head_is_504() {
    let app = StubApp::start(|_| Answer::ok("too late").delay(Duration::from_secs(30)));
    let proxy = proxy_to(&app.url(), &["--request-timeout", "200ms"]);
    let started = Instant::now();
    let answer = one_answer(&proxy, &request("GET", "/slow", ""));
    assert_eq!(answer.status, 504, "{answer:?}");
    assert_eq!(answer.body, b"upstream timed out\n");
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[test]
fn failing_client_body_is_blamed_on_the_client() {
    // The app reads the whole body before answering, so the failure comes first: a chunked
    // upload whose framing breaks after some data.
    let (_app, proxy) = ok_app();
    let bytes = b"POST /upload HTTP/1.1\r\nHost: app.example\r\nTransfer-Encoding: chunked\r\n\
                  Connection: close\r\n\r\ne\r\npartial upload\r\nnot-a-chunk-size\r\n\r\n";
    let answer = one_answer(&proxy, bytes);
    assert_eq!(answer.status, 400, "{answer:?}");
}

#[test]
fn upstream_connections_are_reused() {
    let (app, proxy) = ok_app();
    for _ in 0..20 {
        let answer = http_get(proxy.listen, "/ping").unwrap();
        assert_eq!(answer.text(), "ok");
    }
    let used = app.connections();
    assert!(
        used <= 2,
        "20 sequential requests opened {used} upstream connections"
    );
}

/// Answers an upgrade with 101, greets, then echoes every byte on the upgraded connection.
fn upgrade_echo_app() -> StubApp {
    StubApp::start(|request| {
        let asked = request.header("upgrade") == Some("websocket")
            && request.header("connection") == Some("upgrade")
            && request.header("sec-websocket-key").is_some();
        if !asked {
            return Answer::new(426, "upgrade required");
        }
        Answer::upgrade("websocket", b"hello\n")
            .header("Sec-WebSocket-Accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
            .header("X-Backend-Path", request.target.clone())
    })
}

#[test]
fn websocket_upgrade_is_tunnelled_both_ways() {
    let app = upgrade_echo_app();
    let proxy = proxy_to(&app.url(), &[]);

    let mut conn = Conn::open(proxy.listen, WAIT).unwrap();
    conn.send(
        b"GET /socket?room=1 HTTP/1.1\r\nHost: app.example\r\nConnection: keep-alive, Upgrade\r\n\
          Upgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
          Sec-WebSocket-Version: 13\r\n\r\n",
    )
    .unwrap();
    let head = conn.response(false).unwrap().unwrap();
    assert_eq!(head.status, 101, "{head:?}");
    assert_eq!(head.header("upgrade"), Some("websocket"), "{head:?}");
    assert_eq!(head.header("connection"), Some("upgrade"), "{head:?}");
    assert_eq!(
        head.header("sec-websocket-accept"),
        Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
        "{head:?}"
    );
    assert_eq!(
        head.header("x-backend-path"),
        Some("/socket?room=1"),
        "{head:?}"
    );

    assert_eq!(conn.read_exact(6).unwrap(), b"hello\n");
    for message in [&b"ping-1"[..], b"a longer second message"] {
        conn.send(message).unwrap();
        assert_eq!(conn.read_exact(message.len()).unwrap(), message);
    }
}

#[test]
fn refused_upgrade_is_an_ordinary_response() {
    let app = upgrade_echo_app();
    let proxy = proxy_to(&app.url(), &[]);
    let answer = one_answer(
        &proxy,
        b"GET /socket HTTP/1.1\r\nHost: app.example\r\nConnection: close, Upgrade\r\n\
          Upgrade: websocket\r\n\r\n",
    );
    assert_eq!(answer.status, 426, "{answer:?}");
    assert_eq!(answer.body, b"upgrade required");
}
