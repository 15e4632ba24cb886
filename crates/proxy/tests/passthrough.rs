//! Pass-through over real sockets: a backend on 127.0.0.1, the proxy mounted as an axum fallback
//! in front of it, and clients speaking HTTP/1.1 (hyper, or raw bytes where the exact wire
//! matters).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream;
use heapgate_proxy::testing::{ForwardError, Upstream, UpstreamUrlError};
use http::{HeaderMap, StatusCode, Uri};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Mutex, oneshot};

/// Fails the test instead of hanging it.
async fn within<T>(fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(5), fut)
        .await
        .expect("test step timed out")
}

async fn spawn_axum(router: Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .expect("serve");
    });
    addr
}

async fn proxy_handler(
    State(upstream): State<Upstream>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    req: Request,
) -> Response {
    upstream.forward(req, Some(client)).await
}

/// The proxy in front of `upstream_base`, the way the binary mounts it.
async fn spawn_proxy(upstream_base: &str, head_timeout: Option<Duration>) -> SocketAddr {
    let base: Uri = upstream_base.parse().expect("upstream URL");
    let upstream = Upstream::new(base, head_timeout).expect("valid upstream");
    spawn_axum(Router::new().fallback(proxy_handler).with_state(upstream)).await
}

async fn spawn_proxy_to(backend: SocketAddr) -> SocketAddr {
    spawn_proxy(&format!("http://{backend}"), None).await
}

/// Echoes what the backend received as JSON, and answers with hop-by-hop headers of its own.
async fn echo_request(req: Request) -> Response {
    let headers: Vec<Value> = req
        .headers()
        .iter()
        .map(|(name, value)| json!([name.as_str(), String::from_utf8_lossy(value.as_bytes())]))
        .collect();
    let body = json!({
        "method": req.method().as_str(),
        "path": req.uri().path(),
        "query": req.uri().query(),
        "headers": headers,
    });
    (
        [
            ("connection", "X-Backend-Hop"),
            ("x-backend-hop", "1"),
            ("keep-alive", "timeout=5"),
            ("x-backend-kept", "1"),
            ("content-type", "application/json"),
        ],
        body.to_string(),
    )
        .into_response()
}

async fn spawn_echo_backend() -> SocketAddr {
    spawn_axum(Router::new().fallback(echo_request)).await
}

/// Sends raw request bytes on a fresh connection and reads until the server closes it.
async fn raw_exchange(addr: SocketAddr, request: &str) -> (String, Vec<u8>) {
    let mut stream = within(TcpStream::connect(addr)).await.expect("connect");
    within(stream.write_all(request.as_bytes()))
        .await
        .expect("write");
    let mut received = Vec::new();
    within(stream.read_to_end(&mut received))
        .await
        .expect("read");
    let split = received
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("complete response head");
    let head = String::from_utf8(received[..split].to_vec()).expect("ASCII head");
    (head, received[split + 4..].to_vec())
}

fn status_of(head: &str) -> &str {
    head.split(' ').nth(1).expect("status line")
}

/// The value of `name` in a raw response head (names compared case-insensitively).
fn head_header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.eq_ignore_ascii_case(name).then(|| value.trim())
    })
}

/// All values of `name` the echo backend reported.
fn echoed_headers<'a>(echo: &'a Value, name: &str) -> Vec<&'a str> {
    echo["headers"]
        .as_array()
        .expect("headers array")
        .iter()
        .filter(|pair| pair[0] == name)
        .map(|pair| pair[1].as_str().expect("string value"))
        .collect()
}

fn http_client() -> Client<HttpConnector, Body> {
    Client::builder(TokioExecutor::new()).build_http()
}

#[tokio::test]
async fn method_path_and_query_are_preserved() {
    let proxy = spawn_proxy_to(spawn_echo_backend().await).await;
    let (head, body) = raw_exchange(
        proxy,
        "PATCH /a/b%20c/?x=1&y=%2F&z HTTP/1.1\r\nHost: app.example\r\nContent-Length: 0\r\n\
         Connection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status_of(&head), "200", "{head}");
    let echo: Value = serde_json::from_slice(&body).expect("JSON echo");
    assert_eq!(echo["method"], "PATCH");
    assert_eq!(echo["path"], "/a/b%20c/");
    assert_eq!(echo["query"], "x=1&y=%2F&z");
}

#[tokio::test]
async fn path_prefix_of_the_upstream_url_is_prepended() {
    let backend = spawn_echo_backend().await;
    let proxy = spawn_proxy(&format!("http://{backend}/base/"), None).await;
    let (head, body) = raw_exchange(
        proxy,
        "GET /users?id=7 HTTP/1.1\r\nHost: app.example\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status_of(&head), "200", "{head}");
    let echo: Value = serde_json::from_slice(&body).expect("JSON echo");
    assert_eq!(echo["path"], "/base/users");
    assert_eq!(echo["query"], "id=7");
}

#[test]
fn unusable_upstream_urls_are_rejected() {
    let upstream = |url: &str| Upstream::new(url.parse().expect("parses as a URI"), None);
    assert!(matches!(
        upstream("https://127.0.0.1:3000"),
        Err(UpstreamUrlError::UnsupportedScheme(_))
    ));
    assert!(matches!(
        upstream("127.0.0.1:3000"),
        Err(UpstreamUrlError::UnsupportedScheme(_))
    ));
    assert!(matches!(
        upstream("http://127.0.0.1:3000/?debug=1"),
        Err(UpstreamUrlError::HasQuery(_))
    ));
    assert!(upstream("http://127.0.0.1:3000").is_ok());
    assert!(upstream("http://localhost:3000/prefix").is_ok());
}

#[tokio::test]
async fn hop_by_hop_headers_are_stripped_and_forwarded_headers_set() {
    let proxy = spawn_proxy_to(spawn_echo_backend().await).await;
    let (head, body) = raw_exchange(
        proxy,
        "GET /h HTTP/1.1\r\n\
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
    )
    .await;
    assert_eq!(status_of(&head), "200", "{head}");
    let echo: Value = serde_json::from_slice(&body).expect("JSON echo");

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
            echoed_headers(&echo, gone).is_empty(),
            "{gone} reached the upstream"
        );
    }
    assert_eq!(echoed_headers(&echo, "host"), ["app.example:8443"]);
    assert_eq!(
        echoed_headers(&echo, "proxy-authorization"),
        ["Basic Zm9vOmJhcg=="]
    );
    assert_eq!(echoed_headers(&echo, "x-custom"), ["kept"]);
    assert_eq!(
        echoed_headers(&echo, "x-forwarded-for"),
        ["203.0.113.9, 127.0.0.1"]
    );
    assert_eq!(echoed_headers(&echo, "x-forwarded-proto"), ["http"]);
    assert_eq!(
        echoed_headers(&echo, "x-forwarded-host"),
        ["app.example:8443"]
    );

    // The upstream's own hop-by-hop headers do not reach the client.
    assert_eq!(head_header(&head, "x-backend-hop"), None, "{head}");
    assert_eq!(head_header(&head, "keep-alive"), None, "{head}");
    assert_eq!(head_header(&head, "x-backend-kept"), Some("1"), "{head}");
}

#[tokio::test]
async fn forwarded_headers_from_a_balancer_are_kept() {
    let proxy = spawn_proxy_to(spawn_echo_backend().await).await;
    let (_head, body) = raw_exchange(
        proxy,
        "GET / HTTP/1.1\r\nHost: internal:8080\r\nX-Forwarded-Proto: https\r\n\
         X-Forwarded-Host: shop.example\r\nX-Forwarded-For: 198.51.100.1\r\n\
         X-Forwarded-For: 10.0.0.2\r\nConnection: close\r\n\r\n",
    )
    .await;
    let echo: Value = serde_json::from_slice(&body).expect("JSON echo");
    assert_eq!(echoed_headers(&echo, "x-forwarded-proto"), ["https"]);
    assert_eq!(echoed_headers(&echo, "x-forwarded-host"), ["shop.example"]);
    assert_eq!(
        echoed_headers(&echo, "x-forwarded-for"),
        ["198.51.100.1, 10.0.0.2, 127.0.0.1"]
    );
    assert_eq!(echoed_headers(&echo, "host"), ["internal:8080"]);
}

/// Answers with the request body itself, streamed, and says how it was framed upstream.
async fn echo_body(req: Request) -> Response {
    let framing = |headers: &HeaderMap, name| {
        headers.get(name).map_or_else(
            || "none".to_owned(),
            |v| String::from_utf8_lossy(v.as_bytes()).into_owned(),
        )
    };
    let content_length = framing(req.headers(), "content-length");
    let transfer_encoding = framing(req.headers(), "transfer-encoding");
    (
        [
            ("x-saw-content-length", content_length),
            ("x-saw-transfer-encoding", transfer_encoding),
        ],
        Response::new(req.into_body()),
    )
        .into_response()
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

#[tokio::test]
async fn streamed_upload_echoes_back_byte_identical() {
    let backend = spawn_axum(Router::new().fallback(echo_body)).await;
    let proxy = spawn_proxy_to(backend).await;
    let payload = Bytes::from(pseudo_random_bytes(4 * 1024 * 1024 + 123));

    // Chunked: the body is a stream of unknown length.
    let chunks: Vec<Result<Bytes, Infallible>> = payload
        .chunks(64 * 1024)
        .map(|chunk| Ok(payload.slice_ref(chunk)))
        .collect();
    let request = http::Request::post(format!("http://{proxy}/upload"))
        .body(Body::from_stream(stream::iter(chunks)))
        .expect("request");
    let response = within(http_client().request(request))
        .await
        .expect("response");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["x-saw-content-length"], "none");
    assert_eq!(response.headers()["x-saw-transfer-encoding"], "chunked");
    let echoed = within(response.into_body().collect())
        .await
        .expect("body")
        .to_bytes();
    assert_eq!(echoed.len(), payload.len());
    assert!(echoed == payload, "echoed body differs");

    // Fixed length: Content-Length goes through as sent.
    let request = http::Request::put(format!("http://{proxy}/upload"))
        .body(Body::from(payload.clone()))
        .expect("request");
    let response = within(http_client().request(request))
        .await
        .expect("response");
    assert_eq!(
        response.headers()["x-saw-content-length"],
        payload.len().to_string().as_str()
    );
    let echoed = within(response.into_body().collect())
        .await
        .expect("body")
        .to_bytes();
    assert!(echoed == payload, "echoed body differs");
}

#[tokio::test]
async fn slow_response_arrives_incrementally() {
    let (release_tx, release_rx) = oneshot::channel::<()>();
    let release = Arc::new(Mutex::new(Some(release_rx)));
    let backend = spawn_axum(
        Router::new()
            .fallback(
                |State(release): State<Arc<Mutex<Option<oneshot::Receiver<()>>>>>| async move {
                    let release = release.lock().await.take().expect("one request");
                    let first =
                        stream::once(async { Ok::<_, Infallible>(Bytes::from_static(b"first,")) });
                    let rest = stream::once(async move {
                        // The backend finishes only once the client has seen the first chunk.
                        let _ = release.await;
                        Ok(Bytes::from_static(b"second"))
                    });
                    Body::from_stream(first.chain(rest))
                },
            )
            .with_state(release),
    )
    .await;
    let proxy = spawn_proxy_to(backend).await;

    let request = http::Request::get(format!("http://{proxy}/events"))
        .body(Body::empty())
        .expect("request");
    let response = within(http_client().request(request))
        .await
        .expect("response");
    let mut body = response.into_body();
    let first = within(body.frame())
        .await
        .expect("a frame")
        .expect("no error")
        .into_data()
        .expect("data frame");
    assert_eq!(first, "first,");

    release_tx.send(()).expect("backend waiting");
    let rest = within(body.collect()).await.expect("rest").to_bytes();
    assert_eq!(rest, "second");
}

#[tokio::test]
async fn unreachable_upstream_is_502_without_details() {
    let closed = {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        listener.local_addr().expect("addr")
    };
    let proxy = spawn_proxy_to(closed).await;
    let (head, body) = raw_exchange(
        proxy,
        "GET /anything HTTP/1.1\r\nHost: app.example\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status_of(&head), "502", "{head}");
    assert_eq!(body, b"upstream unavailable\n");
    assert_eq!(
        head_header(&head, "content-type"),
        Some("text/plain; charset=utf-8")
    );
}

#[tokio::test]
async fn slow_response_head_is_504() {
    let backend = spawn_axum(Router::new().fallback(|| async {
        tokio::time::sleep(Duration::from_secs(30)).await;
        "too late"
    }))
    .await;
    let proxy = spawn_proxy(
        &format!("http://{backend}"),
        Some(Duration::from_millis(200)),
    )
    .await;
    let started = Instant::now();
    let (head, body) = raw_exchange(
        proxy,
        "GET /slow HTTP/1.1\r\nHost: app.example\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status_of(&head), "504", "{head}");
    assert_eq!(body, b"upstream timed out\n");
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn failing_client_body_is_blamed_on_the_client() {
    // The backend reads the whole body before answering, so the failure comes first.
    let backend =
        spawn_axum(Router::new().fallback(|body: Bytes| async move { body.len().to_string() }))
            .await;
    let upstream = Upstream::new(format!("http://{backend}").parse().expect("URL"), None)
        .expect("valid upstream");
    let body = stream::iter([
        Ok(Bytes::from_static(b"partial upload")),
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "client went away",
        )),
    ]);
    let request = http::Request::post("/upload")
        .header("host", "app.example")
        .body(Body::from_stream(body))
        .expect("request");
    let result = within(upstream.try_forward(request, None)).await;
    let err = result.expect_err("the upload failed");
    assert!(matches!(err, ForwardError::ClientBody(_)), "{err:?}");
    assert_eq!(err.status(), StatusCode::BAD_REQUEST);
}

/// A raw hyper backend (upgrades enabled) that counts accepted connections.
async fn spawn_hyper_backend<F, Fut>(handler: F) -> (SocketAddr, Arc<AtomicUsize>)
where
    F: Fn(hyper::Request<Incoming>) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<hyper::Response<Body>, Infallible>> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let connections = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&connections);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            counter.fetch_add(1, Ordering::SeqCst);
            let service = hyper::service::service_fn(handler.clone());
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .with_upgrades()
                    .await;
            });
        }
    });
    (addr, connections)
}

#[tokio::test]
async fn upstream_connections_are_reused() {
    let (backend, connections) =
        spawn_hyper_backend(|_req| async { Ok(hyper::Response::new(Body::from("ok"))) }).await;
    let proxy = spawn_proxy_to(backend).await;
    let client = http_client();
    for _ in 0..20 {
        let request = http::Request::get(format!("http://{proxy}/ping"))
            .body(Body::empty())
            .expect("request");
        let response = within(client.request(request)).await.expect("response");
        let body = within(response.into_body().collect()).await.expect("body");
        assert_eq!(body.to_bytes(), "ok");
    }
    let used = connections.load(Ordering::SeqCst);
    assert!(
        used <= 2,
        "20 sequential requests opened {used} upstream connections"
    );
}

/// Answers an upgrade with 101, greets, then echoes every byte on the upgraded connection.
async fn upgrade_echo(
    mut req: hyper::Request<Incoming>,
) -> Result<hyper::Response<Body>, Infallible> {
    let asked = req
        .headers()
        .get("upgrade")
        .is_some_and(|v| v == "websocket")
        && req
            .headers()
            .get("connection")
            .is_some_and(|v| v == "upgrade")
        && req.headers().contains_key("sec-websocket-key");
    if !asked {
        let mut refused = hyper::Response::new(Body::from("upgrade required"));
        *refused.status_mut() = StatusCode::UPGRADE_REQUIRED;
        return Ok(refused);
    }
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let mut io = TokioIo::new(upgraded);
        if io.write_all(b"hello\n").await.is_err() {
            return;
        }
        let mut buf = [0u8; 1024];
        while let Ok(n @ 1..) = io.read(&mut buf).await {
            if io.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    });
    let response = hyper::Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header("connection", "Upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
        .header("x-backend-path", req.uri().to_string())
        .body(Body::empty())
        .expect("101 response");
    Ok(response)
}

/// Reads a response head byte by byte, so nothing after it is consumed.
async fn read_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(within(stream.read_u8()).await.expect("head byte"));
    }
    String::from_utf8(head).expect("ASCII head")
}

async fn read_exact_len(stream: &mut TcpStream, len: usize) -> Vec<u8> {
    let mut buf = vec![0; len];
    within(stream.read_exact(&mut buf)).await.expect("read");
    buf
}

#[tokio::test]
async fn websocket_upgrade_is_tunnelled_both_ways() {
    let (backend, _) = spawn_hyper_backend(upgrade_echo).await;
    let proxy = spawn_proxy_to(backend).await;

    let mut stream = within(TcpStream::connect(proxy)).await.expect("connect");
    within(stream.write_all(
        b"GET /socket?room=1 HTTP/1.1\r\nHost: app.example\r\nConnection: keep-alive, Upgrade\r\n\
          Upgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
          Sec-WebSocket-Version: 13\r\n\r\n",
    ))
    .await
    .expect("write");
    let head = read_head(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    assert_eq!(head_header(&head, "upgrade"), Some("websocket"), "{head}");
    assert_eq!(head_header(&head, "connection"), Some("upgrade"), "{head}");
    assert_eq!(
        head_header(&head, "sec-websocket-accept"),
        Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
        "{head}"
    );
    assert_eq!(
        head_header(&head, "x-backend-path"),
        Some("/socket?room=1"),
        "{head}"
    );

    assert_eq!(read_exact_len(&mut stream, 6).await, b"hello\n");
    for message in [&b"ping-1"[..], b"a longer second message"] {
        within(stream.write_all(message)).await.expect("write");
        assert_eq!(read_exact_len(&mut stream, message.len()).await, message);
    }
}

#[tokio::test]
async fn refused_upgrade_is_an_ordinary_response() {
    let (backend, _) = spawn_hyper_backend(upgrade_echo).await;
    let proxy = spawn_proxy_to(backend).await;
    let (head, body) = raw_exchange(
        proxy,
        "GET /socket HTTP/1.1\r\nHost: app.example\r\nConnection: close, Upgrade\r\n\
         Upgrade: websocket\r\n\r\n",
    )
    .await;
    assert_eq!(status_of(&head), "426", "{head}");
    assert_eq!(body, b"upgrade required");
}
