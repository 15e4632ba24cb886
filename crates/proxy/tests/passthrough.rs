//! Pass-through over real sockets: the real `heapgate-proxy` binary in front of the harness's
//! stub app, and clients speaking raw HTTP/1.1 where the exact wire matters. The stub records
//! every request as it arrived, so what the app saw is checked directly.

use std::time::{Duration, Instant};

use heapgate_tests::http::{Conn, kept, request};
use heapgate_tests::{
    Answer, Body, Cmd, Exchange, Part, ProxyProc, Release, StubApp, StubRequest, WAIT, exchange,
    free_port, http_get,
};

/// An app answering "ok" to everything, and the proxy in front of it.
fn ok_app() -> (StubApp, ProxyProc) {
    let app = StubApp::start(|_| Answer::ok("ok"));
    let proxy = ProxyProc::passing_to(&app.url(), &[]);
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

fn path_prefix_of_the_upstream_url_is_prepended() {
    let app = StubApp::start(|_| Answer::ok("ok"));
    let proxy = ProxyProc::passing_to(&format!("{}/base/", app.url()), &[]);
    let answer = one_answer(&proxy, &request("GET", "/users?id=7", ""));
    assert_eq!(answer.status, 200, "{answer:?}");
    let seen = only_request(&app);
    assert_eq!(seen.path(), "/base/users");
    assert_eq!(seen.query(), "id=7");
}

fn unusable_upstream_urls_are_rejected() {
    let start = |url: &str| {
        Cmd::proxy()
            .args(["--source", "upstream", "--task-id", "t1", "--upstream", url])
            .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
            .env("HEAPGATE_SECRET", heapgate_tests::PASSING_SECRET)
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
        let proxy = ProxyProc::passing_to(url, &[]);
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

fn hop_by_hop_headers_are_stripped_and_forwarded_headers_set() {
    let app = hop_app();
    let proxy = ProxyProc::passing_to(&app.url(), &[]);
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

fn streamed_upload_echoes_back_byte_identical() {
    // Answers with the request body itself, and says how it was framed upstream.
    let app = StubApp::start(|request| {
        let framing = |name| request.header(name).unwrap_or("none").to_owned();
        Answer::new(200, request.body.clone())
            .header("X-Saw-Content-Length", framing("content-length"))
            .header("X-Saw-Transfer-Encoding", framing("transfer-encoding"))
    });
    let proxy = ProxyProc::passing_to(&app.url(), &[]);
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

fn slow_response_arrives_incrementally() {
    // The app finishes only once the client has seen the first chunk.
    let release = Release::new();
    let parts = vec![
        Part::Data(b"first,".to_vec()),
        Part::WaitFor(release.clone()),
        Part::Data(b"second".to_vec()),
    ];
    let app = StubApp::start(move |_| Answer::status(200).body(Body::Chunked(parts.clone())));
    let proxy = ProxyProc::passing_to(&app.url(), &[]);

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

fn unreachable_upstream_is_502_without_details() {
    // Nothing listens there.
    let proxy = ProxyProc::passing_to(&format!("http://127.0.0.1:{}", free_port()), &[]);
    let answer = one_answer(&proxy, &request("GET", "/anything", ""));
    assert_eq!(answer.status, 502, "{answer:?}");
    assert_eq!(answer.body, b"upstream unavailable\n");
    assert_eq!(
        answer.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
}

fn slow_response_head_is_504() {
    let app = StubApp::start(|_| Answer::ok("too late").delay(Duration::from_secs(30)));
    let proxy = ProxyProc::passing_to(&app.url(), &["--request-timeout", "200ms"]);
    let started = Instant::now();
    let answer = one_answer(&proxy, &request("GET", "/slow", ""));
    assert_eq!(answer.status, 504, "{answer:?}");
    assert_eq!(answer.body, b"upstream timed out\n");
    assert!(started.elapsed() < Duration::from_secs(2));
}

fn failing_client_body_is_blamed_on_the_client() {
    // The app reads the whole body before answering, so the failure comes first: a chunked
    // upload whose framing breaks after some data.
    let (_app, proxy) = ok_app();
    let bytes = b"POST /upload HTTP/1.1\r\nHost: app.example\r\nTransfer-Encoding: chunked\r\n\
                  Connection: close\r\n\r\ne\r\npartial upload\r\nnot-a-chunk-size\r\n\r\n";
    let answer = one_answer(&proxy, bytes);
    assert_eq!(answer.status, 400, "{answer:?}");
}

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

fn websocket_upgrade_is_tunnelled_both_ways() {
    let app = upgrade_echo_app();
    let proxy = ProxyProc::passing_to(&app.url(), &[]);

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

fn refused_upgrade_is_an_ordinary_response() {
    let app = upgrade_echo_app();
    let proxy = ProxyProc::passing_to(&app.url(), &[]);
    let answer = one_answer(
        &proxy,
        b"GET /socket HTTP/1.1\r\nHost: app.example\r\nConnection: close, Upgrade\r\n\
          Upgrade: websocket\r\n\r\n",
    );
    assert_eq!(answer.status, 426, "{answer:?}");
    assert_eq!(answer.body, b"upgrade required");
}

// ---------------------------------------------------------------------------------------------
// Framing and connection handling, one client connection at a time: what a hand-written HTTP/1
// lane must keep doing exactly as the hyper path does. Each test checks what the client got, what
// the app got, and that both connections stay in step (the next request on the same client
// connection still gets its own answer).

/// A client connection to the proxy.
fn open(proxy: &ProxyProc) -> Conn {
    Conn::open(proxy.listen, WAIT).unwrap_or_else(|e| panic!("connect: {e}"))
}

/// Sends `bytes` on `conn` and reads the final answer (any 1xx before it skipped); `head` marks
/// a HEAD request.
fn ask(conn: &mut Conn, bytes: &[u8], head: bool) -> heapgate_tests::HttpResponse {
    conn.send(bytes).unwrap_or_else(|e| panic!("send: {e}"));
    final_answer(conn, head)
}

/// The next final answer on `conn`, skipping 1xx.
fn final_answer(conn: &mut Conn, head: bool) -> heapgate_tests::HttpResponse {
    loop {
        let answer = conn
            .response(head)
            .unwrap_or_else(|e| panic!("reading the answer: {e}"))
            .unwrap_or_else(|| panic!("closed before an answer"));
        if answer.status >= 200 {
            return answer;
        }
    }
}

/// Asserts a whole 200 with `body`, framed so that the connection can carry another answer
/// (a length or chunks, not the close).
fn assert_framed_ok(answer: &heapgate_tests::HttpResponse, body: &[u8]) {
    assert_eq!(answer.status, 200, "{answer:?}");
    assert!(answer.complete, "body cut short: {answer:?}");
    assert!(
        answer.body == body,
        "body differs: got {} bytes {:?}…, want {} bytes {:?}…",
        answer.body.len(),
        String::from_utf8_lossy(&answer.body[..answer.body.len().min(64)]),
        body.len(),
        String::from_utf8_lossy(&body[..body.len().min(64)]),
    );
    let chunked = answer
        .header("transfer-encoding")
        .is_some_and(|te| te.eq_ignore_ascii_case("chunked"));
    let length = answer.header("content-length") == Some(body.len().to_string().as_str());
    assert!(
        chunked || length,
        "neither chunked nor a Content-Length: {answer:?}"
    );
    assert_eq!(answer.header("connection"), None, "{answer:?}");
}

/// The paths the app got, in order, with the upstream connection each came on.
fn seen_paths(app: &StubApp) -> Vec<(String, usize)> {
    app.requests()
        .iter()
        .map(|r| (r.target.clone(), r.connection))
        .collect()
}

/// "next" for `/next`; everything else from `answer`.
fn app_with_next(answer: impl Fn(&StubRequest) -> Answer + Send + Sync + 'static) -> StubApp {
    StubApp::start(move |request| {
        if request.path() == "/next" {
            Answer::ok("next")
        } else {
            answer(request)
        }
    })
}

/// Chunks with extensions (one of them a quoted string) and a leading-zero size.
const CHUNKS: &str = "5;ext=1\r\nhello\r\n1;name=\"quoted; value\";flag\r\n \r\n0006\r\nworld!\r\n";

/// The app answers `/chunked` with `CHUNKS` and then `last` (the last chunk, trailers and
/// the end); the client asks for it and then `/next` on one connection. Returns the answer to
/// `/chunked` and what the app saw.
fn chunked_then_next(last: &'static str) -> (heapgate_tests::HttpResponse, Vec<(String, usize)>) {
    let app = app_with_next(move |_| {
        Answer::raw(format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\
             Trailer: X-Checksum\r\n\r\n{CHUNKS}{last}"
        ))
    });
    let proxy = ProxyProc::passing_to(&app.url(), &[]);
    let get = |target: &str| kept("GET", target, "");
    let mut conn = open(&proxy);
    let answer = ask(&mut conn, &get("/chunked"), false);
    assert_framed_ok(&answer, b"hello world!");
    assert_eq!(answer.header("content-type"), Some("text/plain"));
    let next = ask(&mut conn, &get("/next"), false);
    assert_framed_ok(&next, b"next");
    (answer, seen_paths(&app))
}

fn chunked_answers_keep_both_connections_whatever_their_ending() {
    for ending in [
        "0\r\n\r\n",
        "0;end=1\r\nX-Checksum: abc123\r\nX-Other: 2\r\n\r\n",
        "0\r\nX-Checksum: abc123\r\n\r\n",
    ] {
        let (_, seen) = chunked_then_next(ending);
        assert_eq!(
            seen,
            [("/chunked".to_owned(), 0), ("/next".to_owned(), 0)],
            "{ending:?}: the client connection and the upstream connection are both reused"
        );
    }
}

fn close_delimited_answers_are_reframed_and_the_client_connection_kept() {
    let app = app_with_next(|request| match request.path() {
        // No Content-Length, no Transfer-Encoding, no `Connection: close`: only the close ends it.
        "/raw" => Answer::raw("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the close")
            .close(),
        // The same in pieces, with `Connection: close`.
        _ => Answer::status(200).body(Body::Unframed(vec![
            Part::Data(b"streamed ".to_vec()),
            Part::Sleep(Duration::from_millis(50)),
            Part::Data(b"until the close".to_vec()),
        ])),
    });
    let proxy = ProxyProc::passing_to(&app.url(), &[]);
    let mut conn = open(&proxy);
    let raw = ask(&mut conn, &kept("GET", "/raw", ""), false);
    assert_framed_ok(&raw, b"until the close");
    let streamed = ask(&mut conn, &kept("GET", "/streamed", ""), false);
    assert_framed_ok(&streamed, b"streamed until the close");
    let next = ask(&mut conn, &kept("GET", "/next", ""), false);
    assert_framed_ok(&next, b"next");
    assert_eq!(
        seen_paths(&app),
        [
            ("/raw".to_owned(), 0),
            ("/streamed".to_owned(), 1),
            ("/next".to_owned(), 2)
        ],
        "a new upstream connection after each close"
    );
}

fn head_answer_with_a_content_length_has_no_body_and_no_desync() {
    let app = StubApp::start(|request| {
        if request.method == "HEAD" {
            // What the GET would carry, and no body.
            Answer::raw(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 1234\r\n\r\n",
            )
        } else {
            Answer::ok("the body of the GET")
        }
    });
    let proxy = ProxyProc::passing_to(&app.url(), &[]);
    let mut conn = open(&proxy);
    let head = ask(&mut conn, &kept("HEAD", "/doc", ""), true);
    assert_eq!(head.status, 200, "{head:?}");
    assert_eq!(head.header("content-length"), Some("1234"), "{head:?}");
    assert_eq!(head.header("content-type"), Some("text/plain"), "{head:?}");
    assert!(head.body.is_empty());

    let get = ask(&mut conn, &kept("GET", "/doc", ""), false);
    assert_framed_ok(&get, b"the body of the GET");
    let requests = app.requests();
    assert_eq!(
        requests
            .iter()
            .map(|r| (r.method.as_str(), r.connection))
            .collect::<Vec<_>>(),
        [("HEAD", 0), ("GET", 0)],
        "the upstream connection is reused after the HEAD"
    );
}

fn no_body_answers_keep_both_connections_in_step() {
    let app = app_with_next(|request| match request.path() {
        "/204" => Answer::raw("HTTP/1.1 204 No Content\r\nX-Kind: 204\r\n\r\n"),
        // A 304 may carry the length of the representation it stands for; it has no body.
        _ => {
            Answer::raw("HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\nContent-Length: 100\r\n\r\n")
        }
    });
    let proxy = ProxyProc::passing_to(&app.url(), &[]);
    let mut conn = open(&proxy);
    let no_content = ask(&mut conn, &kept("GET", "/204", ""), false);
    assert_eq!(no_content.status, 204, "{no_content:?}");
    assert_eq!(no_content.header("x-kind"), Some("204"), "{no_content:?}");
    let not_modified = ask(
        &mut conn,
        &kept("GET", "/304", "If-None-Match: \"v1\"\r\n"),
        false,
    );
    assert_eq!(not_modified.status, 304, "{not_modified:?}");
    assert_eq!(
        not_modified.header("etag"),
        Some("\"v1\""),
        "{not_modified:?}"
    );
    let next = ask(&mut conn, &kept("GET", "/next", ""), false);
    assert_framed_ok(&next, b"next");
    // Nothing was left over on the client connection either.
    conn.send(&request("GET", "/next", "")).unwrap();
    let last = final_answer(&mut conn, false);
    assert_eq!(last.text(), "next");
    assert!(
        conn.closed_by_server(),
        "the proxy closes after `Connection: close`"
    );
    assert_eq!(
        seen_paths(&app),
        [
            ("/204".to_owned(), 0),
            ("/304".to_owned(), 0),
            ("/next".to_owned(), 0),
            ("/next".to_owned(), 0)
        ],
        "the upstream connection is reused after 204 and 304"
    );
}

fn pipelined_pass_through_requests_are_answered_in_order() {
    let app = StubApp::start(|request| {
        let answer = match request.path() {
            // The first answer is the slowest, the second chunked.
            "/a" => Answer::ok("answer a").delay(Duration::from_millis(100)),
            "/b" => Answer::status(200).body(Body::Chunked(vec![
                Part::Data(b"answer ".to_vec()),
                Part::Data(b"b".to_vec()),
            ])),
            _ => Answer::ok(format!("answer {}", request.path().trim_start_matches('/'))),
        };
        answer.header("X-Path", request.path().to_owned())
    });
    let proxy = ProxyProc::passing_to(&app.url(), &[]);
    let mut bytes = kept("GET", "/a", "");
    bytes.extend_from_slice(&kept("GET", "/b", ""));
    bytes.extend_from_slice(&request("GET", "/c", ""));
    let Exchange {
        responses, ended, ..
    } = exchange(proxy.listen, &bytes, 3);
    assert_eq!(responses.len(), 3, "{ended:?}");
    for (answer, name) in responses.iter().zip(["a", "b", "c"]) {
        assert_eq!(answer.status, 200, "{answer:?}");
        assert_eq!(answer.text(), format!("answer {name}"), "{answer:?}");
        assert_eq!(
            answer.header("x-path"),
            Some(format!("/{name}").as_str()),
            "{answer:?}"
        );
    }
    let paths: Vec<String> = app.requests().iter().map(|r| r.target.clone()).collect();
    assert_eq!(paths, ["/a", "/b", "/c"]);
}

fn request_bodies_arrive_exact_however_they_are_written() {
    // Echoes the body and says how it was framed.
    let app = StubApp::start(|request| {
        let framing = |name| request.header(name).unwrap_or("none").to_owned();
        Answer::new(200, request.body.clone())
            .header("X-Saw-Content-Length", framing("content-length"))
            .header("X-Saw-Transfer-Encoding", framing("transfer-encoding"))
    });
    let proxy = ProxyProc::passing_to(&app.url(), &[]);
    let mut conn = open(&proxy);
    let length = |body: &[u8]| format!("Content-Length: {}\r\n", body.len());
    let check = |answer: &heapgate_tests::HttpResponse, body: &[u8]| {
        assert_framed_ok(answer, body);
        assert_eq!(
            answer.header("x-saw-content-length"),
            Some(body.len().to_string().as_str())
        );
        assert_eq!(answer.header("x-saw-transfer-encoding"), Some("none"));
    };

    // Head and body in one write.
    let same: &[u8] = b"name=heapgate&x=1";
    let mut bytes = kept("POST", "/same", &length(same));
    bytes.extend_from_slice(same);
    check(&ask(&mut conn, &bytes, false), same);

    // The body in two later writes.
    let later: &[u8] = b"{\"written\":\"later\",\"in\":\"two parts\"}";
    conn.send(&kept("POST", "/later", &length(later))).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    conn.send(&later[..10]).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    conn.send(&later[10..]).unwrap();
    check(&final_answer(&mut conn, false), later);

    // `Expect: 100-continue`: the body once a 100 came, or after a second without one (as curl
    // does); a final answer before the body would mean the app never got it.
    let expected: &[u8] = b"sent after the interim answer";
    let head = kept(
        "POST",
        "/expect",
        &format!("{}Expect: 100-continue\r\n", length(expected)),
    );
    conn.send(&head).unwrap();
    conn.stream()
        .set_read_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    match conn.response(false) {
        Ok(Some(interim)) => assert_eq!(interim.status, 100, "{interim:?}"),
        Ok(None) => panic!("closed before a 100 or an answer"),
        Err(e) => assert!(heapgate_tests::http::is_timeout(&e), "{e}"),
    }
    conn.stream().set_read_timeout(Some(WAIT)).unwrap();
    conn.send(expected).unwrap();
    check(&final_answer(&mut conn, false), expected);

    let requests = app.requests();
    let bodies: Vec<&[u8]> = requests.iter().map(|r| &r.body[..]).collect();
    assert_eq!(bodies, [same, later, expected]);
    for (request, body) in requests.iter().zip([same, later, expected]) {
        assert_eq!(request.method, "POST");
        assert_eq!(
            request.header_values("content-length"),
            [body.len().to_string()],
            "{request:?}"
        );
    }
}

fn client_connection_header_is_not_forwarded_and_close_closes() {
    let (app, proxy) = ok_app();
    let mut conn = open(&proxy);
    let kept_alive = ask(
        &mut conn,
        &kept("GET", "/one", "Connection: keep-alive\r\n"),
        false,
    );
    assert_framed_ok(&kept_alive, b"ok");
    let closing = ask(&mut conn, &request("GET", "/two", ""), false);
    assert_eq!((closing.status, closing.text().as_str()), (200, "ok"));
    assert!(closing.complete, "{closing:?}");
    assert_eq!(closing.header("connection"), Some("close"), "{closing:?}");
    assert!(
        conn.closed_by_server(),
        "the proxy closes after `Connection: close`"
    );

    let requests = app.requests();
    assert_eq!(requests.len(), 2);
    for request in &requests {
        assert_eq!(request.header("connection"), None, "{request:?}");
        assert_eq!(request.header("keep-alive"), None, "{request:?}");
        assert_eq!(request.version, "HTTP/1.1", "{request:?}");
    }
    assert_eq!(
        app.connections(),
        1,
        "the client's close is not the upstream connection's"
    );
}

fn http10_without_host_gets_the_upstreams_host_and_is_closed() {
    let (app, proxy) = ok_app();
    let mut conn = open(&proxy);
    let answer = ask(&mut conn, b"GET /old HTTP/1.0\r\n\r\n", false);
    assert_eq!((answer.status, answer.text().as_str()), (200, "ok"));
    assert!(answer.complete, "{answer:?}");
    assert!(
        conn.closed_by_server(),
        "no keep-alive for HTTP/1.0 unasked"
    );
    let seen = only_request(&app);
    assert_eq!(seen.header_values("host"), [app.addr().to_string()]);
    assert_eq!(seen.target, "/old");

    // Asked for, HTTP/1.0 keep-alive holds for the next request.
    let mut conn = open(&proxy);
    let keep = b"GET /old HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";
    let first = ask(&mut conn, keep, false);
    assert_eq!((first.status, first.text().as_str()), (200, "ok"));
    let second = ask(&mut conn, b"GET /again HTTP/1.0\r\n\r\n", false);
    assert_eq!((second.status, second.text().as_str()), (200, "ok"));
    assert!(conn.closed_by_server());
    assert_eq!(app.hits(), 3);
}

fn app_closing_after_an_answer_costs_the_client_nothing() {
    let app = app_with_next(|_| Answer::ok("closing").close());
    let proxy = ProxyProc::passing_to(&app.url(), &[]);
    let mut conn = open(&proxy);
    let closing = ask(&mut conn, &kept("GET", "/close", ""), false);
    assert_framed_ok(&closing, b"closing");
    let next = ask(&mut conn, &kept("GET", "/next", ""), false);
    assert_framed_ok(&next, b"next");
    assert_eq!(
        seen_paths(&app),
        [("/close".to_owned(), 0), ("/next".to_owned(), 1)],
        "the next request goes on a new upstream connection"
    );
}

fn early_hints_before_the_final_answer() {
    let app = app_with_next(|_| {
        Answer::raw(
            "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload; as=style\r\n\r\n\
             HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nfinal",
        )
    });
    let proxy = ProxyProc::passing_to(&app.url(), &[]);
    let mut conn = open(&proxy);
    conn.send(&kept("GET", "/hints", "")).unwrap();
    let mut informational = Vec::new();
    let answer = loop {
        let answer = conn.response(false).unwrap().unwrap();
        if answer.status >= 200 {
            break answer;
        }
        informational.push(answer.status);
    };
    assert!(
        informational.iter().all(|status| *status == 103),
        "{informational:?}"
    );
    assert_framed_ok(&answer, b"final");
    let next = ask(&mut conn, &kept("GET", "/next", ""), false);
    assert_framed_ok(&next, b"next");
    assert_eq!(
        seen_paths(&app),
        [("/hints".to_owned(), 0), ("/next".to_owned(), 0)]
    );
}

/// FNV-1a, to tell large bodies apart in a failure message.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn ten_mib_answers_arrive_byte_identical() {
    let payload = pseudo_random_bytes(10 << 20);
    let served = payload.clone();
    let app = StubApp::start(move |request| match request.path() {
        "/fixed" => Answer::new(200, served.clone()),
        _ => Answer::status(200).body(Body::Chunked(
            served
                .chunks(256 * 1024 + 7)
                .map(|chunk| Part::Data(chunk.to_vec()))
                .collect(),
        )),
    });
    let proxy = ProxyProc::passing_to(&app.url(), &[]);
    let mut conn = open(&proxy);
    for target in ["/fixed", "/chunked"] {
        let answer = ask(&mut conn, &kept("GET", target, ""), false);
        assert_eq!(answer.status, 200, "{target}");
        assert!(answer.complete, "{target}: cut short");
        assert!(
            answer.body == payload,
            "{target}: got {} bytes (FNV-1a {:x}), want {} (FNV-1a {:x})",
            answer.body.len(),
            fnv1a(&answer.body),
            payload.len(),
            fnv1a(&payload)
        );
    }
    let fixed_length = (10 << 20).to_string();
    let answer = ask(&mut conn, &request("GET", "/fixed", ""), false);
    assert_eq!(answer.header("content-length"), Some(fixed_length.as_str()));
    assert_eq!(app.connections(), 1);
}

fn an_upstream_connection_the_app_closed_while_idle_is_not_a_502() {
    // Keep-alive advertised, and the connection closed 300 ms after each answer (an app's
    // keep-alive timeout shorter than the proxy's pool timeout).
    let app = StubApp::start(|_| Answer::ok("fresh").idle_close(Duration::from_millis(300)));
    let proxy = ProxyProc::passing_to(&app.url(), &[]);
    let mut conn = open(&proxy);
    for round in 0..4 {
        let answer = ask(&mut conn, &kept("GET", &format!("/r{round}"), ""), false);
        assert_eq!(
            (answer.status, answer.text().as_str()),
            (200, "fresh"),
            "round {round}: {answer:?}"
        );
        std::thread::sleep(Duration::from_millis(600));
    }
    let connections: Vec<usize> = app.requests().iter().map(|r| r.connection).collect();
    assert_eq!(connections, [0, 1, 2, 3]);
}

fn contradictory_upstream_framing_is_502_or_a_close_never_a_desync() {
    // Each bad head, then a body and a whole second answer right behind it on the same upstream
    // connection: an answer a desynced reader would take for the next one.
    const SMUGGLED: &str = "HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsmuggled";
    let cases: &[(&str, &str)] = &[
        ("two lengths", "Content-Length: 5\r\nContent-Length: 6"),
        ("a list of two lengths", "Content-Length: 5, 6"),
        ("a non-numeric length", "Content-Length: five"),
        ("a negative length", "Content-Length: -1"),
        ("a signed length", "Content-Length: +6"),
        ("a length with a fraction", "Content-Length: 6.0"),
        // Not framing, but just as unreadable: an obsolete folded header line.
        (
            "a folded header line",
            "X-Folded: one\r\n two\r\nContent-Length: 6",
        ),
    ];
    let app = StubApp::start(move |request| {
        let Some(case) = request.param("case").and_then(|i| i.parse::<usize>().ok()) else {
            return Answer::ok("good");
        };
        let (_, framing) = cases[case];
        Answer::raw(format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n{framing}\r\n\r\nhello!{SMUGGLED}"
        ))
    });
    let proxy = ProxyProc::passing_to(&app.url(), &[]);
    for (i, (name, _)) in cases.iter().enumerate() {
        let mut conn = open(&proxy);
        conn.send(&kept("GET", &format!("/bad?case={i}"), ""))
            .unwrap();
        match conn.response(false) {
            Ok(Some(answer)) => {
                assert_eq!(answer.status, 502, "{name}: {answer:?}");
                assert_eq!(answer.body, b"upstream unavailable\n", "{name}");
                // Still in step: the next answer on this connection is its own.
                conn.send(&kept("GET", "/good", "")).unwrap();
                match conn.response(false) {
                    Ok(Some(next)) => assert_framed_ok(&next, b"good"),
                    Ok(None) => {}
                    Err(e) => assert!(!heapgate_tests::http::is_timeout(&e), "{name}: hung"),
                }
            }
            Ok(None) => {}
            Err(e) => assert!(!heapgate_tests::http::is_timeout(&e), "{name}: hung"),
        }
        // And on a new connection.
        let good = one_answer(&proxy, &request("GET", "/good", ""));
        assert_eq!((good.status, good.text().as_str()), (200, "good"), "{name}");
    }
    assert_eq!(
        app.hits_where(|r| r.path() == "/bad"),
        cases.len(),
        "each bad answer was asked for once"
    );
}

fn chunked_answer_with_a_content_length_loses_the_length_or_is_502() {
    // Transfer-Encoding overrides Content-Length; a proxy must drop the length when it forwards
    // (or refuse the answer). Body: "hello" in chunks.
    let app = app_with_next(|request| {
        let length = request.param("length").unwrap_or("0").to_owned();
        Answer::raw(format!(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: {length}\r\n\r\n\
             3\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n"
        ))
        .close()
    });
    let proxy = ProxyProc::passing_to(&app.url(), &[]);
    for length in ["3", "6"] {
        let mut conn = open(&proxy);
        conn.send(&kept("GET", &format!("/both?length={length}"), ""))
            .unwrap();
        let answer = conn.response(false);
        match &answer {
            Ok(Some(answer)) if answer.status == 502 => {}
            Ok(Some(answer)) => assert_framed_ok(answer, b"hello"),
            _ => panic!("length {length}: neither the body nor a 502: {answer:?}"),
        }
        let next = ask(&mut conn, &kept("GET", "/next", ""), false);
        assert_framed_ok(&next, b"next");
    }
}

fn unusual_but_valid_answer_heads_pass_through() {
    // (case, the app's head, whether the upstream connection may be reused after it)
    let cases: &[(&str, &str, bool)] = &[
        (
            "no reason phrase",
            "HTTP/1.1 200\r\nContent-Length: 5",
            true,
        ),
        (
            "bare LF line ends",
            "HTTP/1.1 200 OK\nX-Lf: 1\nContent-Length: 5",
            true,
        ),
        (
            "an HTTP/1.0 answer",
            "HTTP/1.0 200 OK\r\nContent-Length: 5",
            false,
        ),
        (
            "an HTTP/1.0 keep-alive answer",
            "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 5",
            true,
        ),
        (
            "a custom status and reason",
            "HTTP/1.1 599 Custom Reason\r\nContent-Length: 5",
            true,
        ),
        (
            "repeated headers",
            "HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nVary: Accept\r\nSet-Cookie: b=2; Path=/\r\n\
             Content-Length: 5",
            true,
        ),
    ];
    let app = app_with_next(move |request| {
        let case = request
            .param("case")
            .and_then(|i| i.parse::<usize>().ok())
            .unwrap_or(0);
        let (_, head, _) = cases[case];
        // A head with bare LFs ends with a bare LF too.
        let end = if head.contains("\r\n") {
            "\r\n\r\n"
        } else {
            "\n\n"
        };
        Answer::raw(format!("{head}{end}hello"))
    });
    let proxy = ProxyProc::passing_to(&app.url(), &[]);
    for (i, (name, head, reusable)) in cases.iter().enumerate() {
        let mut conn = open(&proxy);
        let answer = ask(
            &mut conn,
            &kept("GET", &format!("/odd?case={i}"), ""),
            false,
        );
        let status = if head.contains(" 599 ") { 599 } else { 200 };
        assert_eq!(answer.status, status, "{name}: {answer:?}");
        assert_eq!(answer.text(), "hello", "{name}: {answer:?}");
        assert!(answer.complete, "{name}: {answer:?}");
        if name == &"repeated headers" {
            assert_eq!(answer.header_values("set-cookie"), ["a=1", "b=2; Path=/"]);
            assert_eq!(answer.header_values("vary"), ["Accept"]);
        }
        if name == &"bare LF line ends" {
            assert_eq!(answer.header("x-lf"), Some("1"), "{name}");
        }
        let next = ask(&mut conn, &request("GET", "/next", ""), false);
        assert_eq!(next.text(), "next", "{name}");
        let requests = app.requests();
        let [.., odd, next] = &requests[..] else {
            panic!("{name}: {requests:?}");
        };
        assert_eq!(
            odd.connection == next.connection,
            *reusable,
            "{name}: upstream connection reused: {requests:?}"
        );
    }
}

fn an_answer_whose_connection_names_content_length_stays_framed() {
    // The app's `Connection` names its own `Content-Length`: dropping that header is fine only
    // if the proxy frames the body another way (chunks, or a length of its own).
    let app = app_with_next(|_| {
        Answer::raw(
            "HTTP/1.1 200 OK\r\nConnection: content-length\r\nContent-Length: 5\r\n\r\nhello",
        )
    });
    let proxy = ProxyProc::passing_to(&app.url(), &[]);
    // A short read timeout: an unframed body on a kept connection never ends.
    let mut conn = Conn::open(proxy.listen, Duration::from_secs(2)).unwrap();
    conn.send(&kept("GET", "/listed", "")).unwrap();
    let answer = conn.response(false);
    match &answer {
        Ok(Some(answer)) => assert_framed_ok(answer, b"hello"),
        _ => panic!("no framed answer: {answer:?}"),
    }
    let next = ask(&mut conn, &kept("GET", "/next", ""), false);
    assert_framed_ok(&next, b"next");
}

fn trailer_fields_from_the_app_do_not_speak_for_the_proxy() {
    // Trailers are header fields too: the app's `X-Heapgate-*` and hop-by-hop fields must not
    // reach the client there either (the general path drops the trailer section whole).
    let app = StubApp::start(|_| {
        Answer::raw(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Heapgate-Task\r\n\r\n\
             5\r\nhello\r\n0\r\nX-Heapgate-Task: forged\r\nConnection: close\r\n\
             X-Heapgate-Series: forged\r\n\r\n",
        )
    });
    let proxy = ProxyProc::passing_to(&app.url(), &[]);
    let mut conn = open(&proxy);
    conn.send(&request("GET", "/trailer", "TE: trailers\r\n"))
        .unwrap();
    let mut raw = Vec::new();
    loop {
        match conn.read_some() {
            Ok(bytes) if bytes.is_empty() => break,
            Ok(bytes) => raw.extend_from_slice(&bytes),
            Err(e) => panic!("no close after the answer: {e}; so far {raw:?}"),
        }
    }
    let text = String::from_utf8_lossy(&raw).to_ascii_lowercase();
    assert!(text.contains("hello"), "{text:?}");
    assert!(
        !text.contains("x-heapgate-"),
        "forged fields reached the client: {text:?}"
    );
    // The request asked to close, so the head may say so; the trailer section may not.
    let (_, body) = text.split_once("\r\n\r\n").expect("a whole head");
    assert!(
        !body.contains("connection"),
        "a hop-by-hop trailer reached the client: {text:?}"
    );
}

fn an_answer_with_an_impossible_status_is_502() {
    let app = app_with_next(|_| Answer::raw("HTTP/1.1 000 Zero\r\nContent-Length: 5\r\n\r\nhello"));
    let proxy = ProxyProc::passing_to(&app.url(), &[]);
    let mut conn = open(&proxy);
    let answer = conn
        .send(&kept("GET", "/zero", ""))
        .and_then(|()| conn.response(false));
    match answer {
        Ok(Some(answer)) => {
            assert_eq!(answer.status, 502, "{answer:?}");
            let next = ask(&mut conn, &kept("GET", "/next", ""), false);
            assert_framed_ok(&next, b"next");
        }
        // A parser that refuses the status line: the proxy sent it on.
        other => panic!("not a 502: {other:?}"),
    }
}

fn a_slow_small_request_body_is_not_cut_by_the_header_timeout() {
    // The head arrives at once; the 20-byte body over ~2 s, with a 1 s header timeout. The
    // same upload sent chunked (the general path) is answered: bodies have no timeout.
    let (app, _) = ok_app();
    let proxy = ProxyProc::passing_to(&app.url(), &["--header-timeout", "1s"]);
    let mut conn = Conn::open(proxy.listen, Duration::from_secs(4)).unwrap();
    conn.send(&kept("POST", "/upload", "Content-Length: 20\r\n"))
        .unwrap();
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(100));
        if let Err(e) = conn.send(b"x") {
            panic!("the connection was cut mid-body: {e}");
        }
    }
    let answer = conn.response(false);
    match &answer {
        Ok(Some(answer)) => assert_eq!((answer.status, answer.text().as_str()), (200, "ok")),
        _ => panic!("no answer to a slow 20-byte upload: {answer:?}"),
    }
    assert_eq!(only_request(&app).body, b"xxxxxxxxxxxxxxxxxxxx");
}

fn shutdown_closes_a_kept_connection_with_a_partial_head_at_once() {
    let (_app, proxy) = {
        let app = StubApp::start(|_| Answer::ok("ok"));
        let proxy = ProxyProc::passing_to(&app.url(), &["--shutdown-timeout", "20s"]);
        (app, proxy)
    };
    let mut conn = Conn::open(proxy.listen, Duration::from_secs(3)).unwrap();
    let first = ask(&mut conn, &kept("GET", "/first", ""), false);
    assert_framed_ok(&first, b"ok");
    // The start of the next request, then nothing: no request is in flight.
    conn.send(b"GET /second HTTP/1.1\r\nHo").unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let asked = Instant::now();
    proxy.proc.signal("TERM");
    assert!(
        conn.closed_by_server(),
        "still open {:?} after SIGTERM with nothing in flight",
        asked.elapsed()
    );
}

/// CPU time (user + system) `pid` has used, in clock ticks (Linux: 100 a second).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // After `pid (comm)`: state is field 3, utime 14 and stime 15.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// Sends a POST with `header_bytes` of extra headers (95 lines) and a `body`-byte body, one
/// byte per TCP segment; the proxy CPU ticks the body cost.
fn dribble_cost(proxy: &ProxyProc, header_bytes: usize, body: usize) -> u64 {
    let headers: String = (0..95)
        .map(|i| format!("X-H{i:02}: {}\r\n", "v".repeat(header_bytes / 95)))
        .collect();
    let mut conn = Conn::open(proxy.listen, WAIT).unwrap();
    conn.stream().set_nodelay(true).unwrap();
    conn.send(&kept(
        "POST",
        "/dribble",
        &format!("{headers}Content-Length: {body}\r\n"),
    ))
    .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let before = cpu_ticks(proxy.proc.pid());
    for _ in 0..body {
        conn.send(b"x").unwrap();
        std::thread::sleep(Duration::from_micros(50));
    }
    let answer = final_answer(&mut conn, false);
    assert_eq!(answer.status, 200);
    cpu_ticks(proxy.proc.pid()) - before
}

/// The lane's promise (it parses a head once while the body trickles in); on the general path
/// the head sits in hyper's buffer and the CPU comparison measures hyper, noisily, so this runs
/// on the lane only.
#[test]
fn a_body_sent_a_byte_at_a_time_does_not_reparse_the_head() {
    // The same 10 000-byte body, one byte a segment, behind a 100-byte head and a 240 KiB one.
    // Without re-parsing, the head's size does not matter; with it, the big head costs the
    // proxy a 240 KiB parse per byte (an attacker's amplification).
    let app = StubApp::start(|_| Answer::ok("ok"));
    let proxy = ProxyProc::passing_to(&app.url(), &["--max-header-bytes", "262144"]);
    const BODY: usize = 10_000;
    let small = dribble_cost(&proxy, 100, BODY);
    let big = dribble_cost(&proxy, 240 * 1024, BODY);
    assert_eq!(app.hits(), 2);
    assert!(
        app.requests().iter().all(|r| r.body.len() == BODY),
        "bodies arrived whole"
    );
    assert!(
        big <= 2 * small + 10,
        "proxy CPU for the body: {big} ticks behind a 240 KiB head, {small} behind a small one"
    );
}

fn shutdown_mid_request_answers_with_connection_close() {
    // The general path (hyper's graceful shutdown) answers the request in flight with
    // `Connection: close` and closes cleanly: the client knows the next request was not taken.
    let app = StubApp::start(|request| {
        if request.path() == "/slow" {
            Answer::ok("slow").delay(Duration::from_millis(500))
        } else {
            Answer::ok("ok")
        }
    });
    let proxy = ProxyProc::passing_to(&app.url(), &["--shutdown-timeout", "5s"]);
    let mut conn = Conn::open(proxy.listen, Duration::from_secs(3)).unwrap();
    conn.send(&kept("GET", "/slow", "")).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    proxy.proc.signal("TERM");
    std::thread::sleep(Duration::from_millis(100));
    // Pipelined behind the request in flight.
    conn.send(&kept("POST", "/next", "Content-Length: 0\r\n"))
        .unwrap();
    let answer = conn.response(false);
    let answer = match answer {
        Ok(Some(answer)) => answer,
        other => panic!("the request in flight was not answered: {other:?}"),
    };
    assert_eq!(answer.text(), "slow");
    assert_eq!(
        answer.header("connection"),
        Some("close"),
        "the last answer before shutdown: {answer:?}"
    );
    match conn.read_some() {
        Ok(rest) => assert!(rest.is_empty(), "more after the last answer: {rest:?}"),
        Err(e) => panic!("not a clean close after the last answer: {e}"),
    }
    assert_eq!(app.hits_where(|r| r.path() == "/next"), 0);
}

fn a_300_kib_answer_head_passes() {
    let app = app_with_next(|_| {
        Answer::raw(format!(
            "HTTP/1.1 200 OK\r\nX-Big: {}\r\nContent-Length: 5\r\n\r\nhello",
            "a".repeat(300 * 1024)
        ))
    });
    let proxy = ProxyProc::passing_to(&app.url(), &[]);
    let mut conn = open(&proxy);
    let answer = ask(&mut conn, &kept("GET", "/big-head", ""), false);
    assert_eq!(answer.status, 200, "{:?}", answer.text());
    assert_eq!(answer.text(), "hello");
}

/// An app that answers `/slow` after `delay`, and the proxy in front of it.
fn slow_app(delay: Duration) -> (StubApp, ProxyProc) {
    let app = StubApp::start(move |request| {
        if request.path() == "/slow" {
            Answer::ok("slow").delay(delay)
        } else {
            Answer::ok("ok")
        }
    });
    let proxy = ProxyProc::passing_to(&app.url(), &[]);
    (app, proxy)
}

/// Sends `bytes` on a new connection, waits until the app has the request, then closes.
fn leave_after_sending(proxy: &ProxyProc, app: &StubApp, bytes: &[u8]) {
    let mut conn = open(proxy);
    conn.send(bytes).unwrap();
    let deadline = Instant::now() + WAIT;
    while app.hits_where(|r| r.path() == "/slow") == 0 {
        assert!(
            Instant::now() < deadline,
            "the request never reached the app"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(conn);
}

fn in_flight_returns_to_zero_when_a_client_leaves_a_slow_answer() {
    // On the general path, `Connection::handle` counts the request in flight before awaiting
    // the app, but only the answer's body takes it off again: hyper drops the handler when the
    // client leaves first.
    let (app, proxy) = slow_app(Duration::from_millis(500));
    leave_after_sending(
        &proxy,
        &app,
        &kept("POST", "/slow", "Content-Length: 0\r\n"),
    );
    assert!(
        proxy
            .metric_reaches("heapgate_in_flight_requests 0", Duration::from_secs(3))
            .is_ok(),
        "the gauge is stuck"
    );
}

fn a_request_whose_client_left_is_given_up() {
    // The general path drops the upstream exchange as soon as the client has gone (hyper
    // notices the close); the lane keeps the upstream connection and the request in flight.
    let (app, proxy) = slow_app(Duration::from_secs(4));
    leave_after_sending(&proxy, &app, &kept("GET", "/slow", ""));
    assert!(
        proxy
            .metric_reaches("heapgate_in_flight_requests 0", Duration::from_millis(1500))
            .is_ok(),
        "still in flight 1.5 s after the client left"
    );
}

fn every_header_an_answers_connection_names_is_dropped() {
    let names: Vec<String> = (1..=10).map(|i| format!("X-Hop{i}")).collect();
    let head = format!(
        "HTTP/1.1 200 OK\r\nConnection: {}\r\n{}Content-Length: 5\r\n\r\nhello",
        names.join(", "),
        names
            .iter()
            .map(|name| format!("{name}: x\r\n"))
            .collect::<String>()
    );
    let app = app_with_next(move |_| Answer::raw(head.clone()));
    let proxy = ProxyProc::passing_to(&app.url(), &[]);
    let mut conn = open(&proxy);
    let answer = ask(&mut conn, &kept("GET", "/hops", ""), false);
    assert_framed_ok(&answer, b"hello");
    let leaked: Vec<&(String, String)> = answer
        .headers
        .iter()
        .filter(|(name, _)| name.starts_with("x-hop"))
        .collect();
    assert!(
        leaked.is_empty(),
        "hop-by-hop headers reached the client: {leaked:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// An app that writes more than it framed

/// A real Node app that announces `Content-Length: 5`, writes `hello`, and 200 ms later
/// `res.end(<a whole forged answer>)` (Node 20 does not enforce the length); every other path
/// answers `real <path>`.
const LATE_BYTES_APP: &str = r#"
const http = require('node:http');
const server = http.createServer((req, res) => {
  if (req.url.startsWith('/late')) {
    res.setHeader('Content-Length', '5');
    res.write('hello');
    setTimeout(() => res.end('HTTP/1.1 200 OK\r\nContent-Length: 6\r\nX-Forged: 1\r\n\r\nforged'), 200);
  } else {
    res.end('real ' + req.url);
  }
});
server.keepAliveTimeout = 60000;
server.listen(0, '127.0.0.1', () => console.log(`port ${server.address().port}`));
"#;

/// Issue 21, item 3: bytes the app sends after its answer's end never become the next client's
/// answer: the pooled connection they arrived on is retired before reuse (and counted), on the
/// lane and on the general path (the file runs on both). Before: the next request on that connection got `forged`.
fn late_bytes_from_the_app_never_answer_the_next_client() {
    let Some(node) = heapgate_tests::node_or_skip("passthrough::late_bytes") else {
        return;
    };
    let app =
        heapgate_tests::Proc::spawn(std::process::Command::new(node).args(["-e", LATE_BYTES_APP]));
    let port: u16 = app.wait_for("the app's port", |line| {
        line.strip_prefix("out port ")
            .and_then(|port| port.trim().parse().ok())
    });
    let proxy = ProxyProc::passing_to(&format!("http://127.0.0.1:{port}"), &["--threads", "1"]);
    let request = |target: &str| kept("GET", target, "");
    let name = format!("{:?}", heapgate_tests::PassthroughPath::current());
    {
        for round in 0..3 {
            let late = one_answer(&proxy, &request("/late"));
            assert_eq!(
                late.text(),
                "hello",
                "{name} {round}: the app's framed answer; proxy log:\n{}",
                proxy.proc.output()
            );
            // The late bytes reach the pooled connection.
            std::thread::sleep(Duration::from_millis(600));
            let victim = format!("/victim-{name}-{round}");
            let answer = one_answer(&proxy, &request(&victim));
            assert_eq!(
                (answer.status, answer.text()),
                (200, format!("real {victim}")),
                "{name} {round}: the next client got the app's late bytes as its answer"
            );
            assert_eq!(answer.header("x-forged"), None, "{name} {round}");
        }
    }
    proxy
        .metric_reaches("heapgate_upstream_oversent_total 3", WAIT)
        .unwrap_or_else(|metrics| panic!("each over-sent connection counted:\n{metrics}"));
}

// ---------------------------------------------------------------------------------------------
// Which upgrades are tunnelled

/// Answers any request asking for an upgrade with `101` to `h2c` (whatever it asked for), then
/// greets and echoes; every other request `ok <path>`.
fn h2c_app() -> StubApp {
    StubApp::start(|request| {
        if request.header("upgrade").is_some() {
            Answer::upgrade("h2c", b"h2c-greeting\n")
        } else {
            Answer::ok(format!("ok {}", request.path()))
        }
    })
}

const H2C_REQUEST: &[u8] = b"GET /x HTTP/1.1\r\nHost: app.example\r\n\
    Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n";

/// Issue 21, item 5: only WebSocket upgrades (and those allowed with `--allow-upgrade`) are
/// passed on. An `Upgrade: h2c` request reaches the app as an ordinary request (no `Upgrade`, no
/// `HTTP2-Settings`), so the connection stays HTTP/1.1 and the proxy keeps reading it: a
/// `GET /heapdump` after it is the proxy's own snapshot route, not bytes tunnelled to the app.
fn an_upgrade_to_a_protocol_not_allowed_is_an_ordinary_request() {
    let app = h2c_app();
    let proxy = ProxyProc::passing_to(&app.url(), &[]);
    let mut conn = open(&proxy);
    let answer = ask(&mut conn, H2C_REQUEST, false);
    assert_eq!((answer.status, answer.text()), (200, "ok /x".to_owned()));
    let seen = app.requests();
    assert_eq!(seen.len(), 1, "{seen:?}");
    for gone in ["upgrade", "http2-settings", "connection"] {
        assert!(
            seen[0].header_values(gone).is_empty(),
            "{gone} reached the app"
        );
    }
    // Still HTTP/1.1 between client and proxy: the snapshot path is the proxy's.
    let snapshot = ask(&mut conn, &kept("GET", "/heapdump", ""), false);
    assert_eq!(snapshot.status, 400, "{snapshot:?}");
    assert_eq!(app.hits(), 1, "the snapshot path reached the app");
}

/// Issue 21, item 5: a `101` must switch to a protocol the client asked for: the app answering
/// `h2c` to a WebSocket request is a 502, never a tunnel.
fn a_switch_to_another_protocol_than_asked_is_502() {
    let app = h2c_app();
    let proxy = ProxyProc::passing_to(&app.url(), &[]);
    let answer = one_answer(
        &proxy,
        b"GET /socket HTTP/1.1\r\nHost: app.example\r\nConnection: Upgrade\r\n\
          Upgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
          Sec-WebSocket-Version: 13\r\n\r\n",
    );
    assert_eq!(answer.status, 502, "{answer:?}");
    assert_eq!(answer.text(), "upstream unavailable\n");
}

/// With `--allow-upgrade h2c` (here `HEAPGATE_ALLOW_UPGRADE`), the same request is tunnelled.
fn an_allowed_upgrade_is_tunnelled() {
    let app = h2c_app();
    let upstream = app.url();
    let proxy = ProxyProc::launch(
        &[
            "--source",
            "upstream",
            "--task-id",
            "t1",
            "--upstream",
            &upstream,
        ],
        &[
            ("HEAPGATE_SECRET", heapgate_tests::PASSING_SECRET),
            ("HEAPGATE_ALLOW_UPGRADE", "h2c"),
        ],
    );
    let mut conn = open(&proxy);
    conn.send(H2C_REQUEST).unwrap();
    let head = conn.response(true).unwrap().expect("an answer");
    assert_eq!(head.status, 101, "{head:?}");
    assert_eq!(head.header("upgrade"), Some("h2c"), "{head:?}");
    assert_eq!(conn.read_exact(13).unwrap(), b"h2c-greeting\n");
    conn.send(b"ping").unwrap();
    assert_eq!(conn.read_exact(4).unwrap(), b"ping");
}

// Every test above, once on the lane and once on the general path (`--lane off`).
heapgate_tests::on_both_paths!(
    method_path_and_query_are_preserved,
    path_prefix_of_the_upstream_url_is_prepended,
    unusable_upstream_urls_are_rejected,
    hop_by_hop_headers_are_stripped_and_forwarded_headers_set,
    forwarded_headers_from_a_balancer_are_kept,
    streamed_upload_echoes_back_byte_identical,
    slow_response_arrives_incrementally,
    unreachable_upstream_is_502_without_details,
    slow_response_head_is_504,
    failing_client_body_is_blamed_on_the_client,
    upstream_connections_are_reused,
    websocket_upgrade_is_tunnelled_both_ways,
    refused_upgrade_is_an_ordinary_response,
    chunked_answers_keep_both_connections_whatever_their_ending,
    close_delimited_answers_are_reframed_and_the_client_connection_kept,
    head_answer_with_a_content_length_has_no_body_and_no_desync,
    no_body_answers_keep_both_connections_in_step,
    pipelined_pass_through_requests_are_answered_in_order,
    request_bodies_arrive_exact_however_they_are_written,
    client_connection_header_is_not_forwarded_and_close_closes,
    http10_without_host_gets_the_upstreams_host_and_is_closed,
    app_closing_after_an_answer_costs_the_client_nothing,
    early_hints_before_the_final_answer,
    ten_mib_answers_arrive_byte_identical,
    an_upstream_connection_the_app_closed_while_idle_is_not_a_502,
    contradictory_upstream_framing_is_502_or_a_close_never_a_desync,
    chunked_answer_with_a_content_length_loses_the_length_or_is_502,
    unusual_but_valid_answer_heads_pass_through,
    an_answer_whose_connection_names_content_length_stays_framed,
    trailer_fields_from_the_app_do_not_speak_for_the_proxy,
    an_answer_with_an_impossible_status_is_502,
    a_slow_small_request_body_is_not_cut_by_the_header_timeout,
    shutdown_closes_a_kept_connection_with_a_partial_head_at_once,
    shutdown_mid_request_answers_with_connection_close,
    a_300_kib_answer_head_passes,
    in_flight_returns_to_zero_when_a_client_leaves_a_slow_answer,
    a_request_whose_client_left_is_given_up,
    every_header_an_answers_connection_names_is_dropped,
    late_bytes_from_the_app_never_answer_the_next_client,
    an_upgrade_to_a_protocol_not_allowed_is_an_ordinary_request,
    a_switch_to_another_protocol_than_asked_is_502,
    an_allowed_upgrade_is_tunnelled,
);
