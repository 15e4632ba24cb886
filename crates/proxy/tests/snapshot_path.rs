//! Every answer of the public service — the one the workers run, `Connection::handle` — driven
//! in-process, with a stub snapshot source that counts how often it is asked.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use futures_util::{FutureExt, StreamExt};
use heapgate_token::{Key, Keys, mint};
use http_body_util::BodyExt;
use tokio::sync::mpsc;

mod internals;
use internals::{Capture, Config, InProcess, Metrics, Source, SourceError, TaskId, app};

const SECRET: &[u8] = b"stub-secret-0123456789";

fn fixed_now() -> DateTime<Utc> {
    "2021-06-01T10:15:00Z".parse().unwrap_or_default()
}

fn token() -> String {
    mint(&Key::new(SECRET).unwrap(), "heapdump", fixed_now()).to_string()
}

/// What the stub does when asked for a snapshot.
#[derive(Clone, Copy)]
enum Behaviour {
    /// Streams `{"snapshot":{}}` in two chunks.
    Complete,
    /// Never produces a byte until the test sends some through `feed`.
    Fed,
    /// Cannot be reached.
    Unreachable,
    /// Sends one chunk, then fails.
    FailsMidway,
}

struct Stub {
    behaviour: Behaviour,
    takes: AtomicUsize,
    feed: std::sync::Mutex<Option<mpsc::Receiver<Result<Bytes, SourceError>>>>,
}

impl Source for Stub {
    fn take<'a>(&'a self, _query: &'a str) -> BoxFuture<'a, Result<Capture, SourceError>> {
        self.takes.fetch_add(1, Ordering::SeqCst);
        let chunks: Vec<Result<Bytes, SourceError>> = match self.behaviour {
            Behaviour::Unreachable => {
                return async { Err(SourceError::Unreachable("stub".into())) }.boxed();
            }
            Behaviour::Fed => {
                let rx = self
                    .feed
                    .lock()
                    .unwrap()
                    .take()
                    .expect("one fed snapshot per stub");
                let body = futures_util::stream::unfold(rx, |mut rx| async move {
                    rx.recv().await.map(|item| (item, rx))
                });
                return async {
                    Ok(Capture {
                        session: Some("s1".into()),
                        body: body.boxed(),
                        content_encoding: None,
                    })
                }
                .boxed();
            }
            Behaviour::Complete => vec![
                Ok(Bytes::from_static(b"{\"snapshot\":")),
                Ok(Bytes::from_static(b"{}}")),
            ],
            Behaviour::FailsMidway => {
                vec![
                    Ok(Bytes::from_static(b"{\"snapshot\":")),
                    Err(SourceError::Failed("socket closed".into())),
                ]
            }
        };
        async move {
            Ok(Capture {
                session: Some("s1".into()),
                body: futures_util::stream::iter(chunks).boxed(),
                content_encoding: None,
            })
        }
        .boxed()
    }
}

struct Harness {
    public: InProcess,
    metrics: Arc<Metrics>,
    stub: Arc<Stub>,
    feed: Option<mpsc::Sender<Result<Bytes, SourceError>>>,
}

fn harness(behaviour: Behaviour, min_interval: Duration) -> Harness {
    let (tx, rx) = mpsc::channel(16);
    let stub = Arc::new(Stub {
        behaviour,
        takes: AtomicUsize::new(0),
        feed: std::sync::Mutex::new(Some(rx)),
    });
    let keys = Keys::new(vec![Key::new(SECRET).unwrap()]).unwrap();
    // Nothing listens on port 1: pass-through answers 502.
    let config = Config::builder("http://127.0.0.1:1", keys)
        .min_interval(min_interval)
        .heartbeat(Duration::from_millis(20))
        .health_path("/health")
        .build()
        .unwrap();
    let (public, metrics) = app(
        &config,
        &TaskId::new("task-a").unwrap(),
        stub.clone(),
        fixed_now,
    );
    Harness {
        public,
        metrics,
        stub,
        feed: Some(tx),
    }
}

impl Harness {
    async fn send(&self, method: &str, uri: &str) -> Response {
        // As a client's HTTP/1.1 request: with its one `Host`.
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .header("host", "heapgate")
            .body(Body::empty())
            .unwrap();
        self.public.send(request).await
    }

    async fn get(&self, uri: &str) -> Response {
        self.send("GET", uri).await
    }

    fn takes(&self) -> usize {
        self.stub.takes.load(Ordering::SeqCst)
    }

    fn metric(&self, line_start: &str) -> String {
        let text = self.metrics.encode();
        text.lines()
            .find(|l| l.starts_with(line_start))
            .unwrap_or_default()
            .to_owned()
    }
}

async fn text(response: Response) -> String {
    String::from_utf8(
        response
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap()
}

fn header<'a>(response: &'a Response, name: &str) -> Option<&'a str> {
    response.headers().get(name).map(|v| v.to_str().unwrap())
}

#[tokio::test]
async fn missing_malformed_or_repeated_hash_is_400() {
    let h = harness(Behaviour::Complete, Duration::ZERO);
    let t = token();
    for uri in [
        "/heapdump".to_owned(),
        "/heapdump?hash=".to_owned(),
        format!("/heapdump?hash={}", &t[..63]),
        format!("/heapdump?hash={t}0"),
        format!("/heapdump?hash={}zz", &t[..62]),
        format!("/heapdump?hash={t}&hash={t}"),
        "/heapdump?hash=%00%0d%0a".to_owned(),
    ] {
        let response = h.get(&uri).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{uri}");
        assert_eq!(header(&response, "x-heapgate-task"), None, "{uri}");
    }
    assert_eq!(h.takes(), 0);
    assert_eq!(
        h.metric("heapgate_token_rejections_total{reason=\"missing\"}"),
        "heapgate_token_rejections_total{reason=\"missing\"} 1"
    );
}

#[tokio::test]
async fn invalid_token_is_403_and_reveals_nothing() {
    let h = harness(Behaviour::Complete, Duration::ZERO);
    let wrong = mint(
        &Key::new(b"another-secret-0000").unwrap(),
        "heapdump",
        fixed_now(),
    )
    .to_string();
    let response = h.get(&format!("/heapdump?hash={wrong}&task=task-a")).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(header(&response, "x-heapgate-task"), None);
    assert_eq!(text(response).await, "forbidden\n");
    let expired = mint(
        &Key::new(SECRET).unwrap(),
        "heapdump",
        "2021-06-01T08:59:00Z".parse().unwrap(),
    )
    .to_string();
    assert_eq!(
        h.get(&format!("/heapdump?hash={expired}")).await.status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(h.takes(), 0);
    assert!(
        h.metric("heapgate_token_rejections_total{reason=\"no_match\"}")
            .ends_with(" 2")
    );
}

#[tokio::test]
async fn only_get_is_allowed() {
    let h = harness(Behaviour::Complete, Duration::ZERO);
    for method in ["POST", "PUT", "DELETE", "HEAD", "OPTIONS"] {
        let response = h.send(method, &format!("/heapdump?hash={}", token())).await;
        assert_eq!(
            response.status(),
            StatusCode::METHOD_NOT_ALLOWED,
            "{method}"
        );
        assert_eq!(header(&response, "allow"), Some("GET"));
    }
    assert_eq!(h.takes(), 0);
}

#[tokio::test]
async fn another_task_is_421_with_our_id() {
    let h = harness(Behaviour::Complete, Duration::ZERO);
    let response = h
        .get(&format!("/heapdump?hash={}&task=task-b", token()))
        .await;
    assert_eq!(response.status(), StatusCode::MISDIRECTED_REQUEST);
    assert_eq!(header(&response, "x-heapgate-task"), Some("task-a"));
    assert_eq!(h.takes(), 0);
}

#[tokio::test]
async fn probe_is_204_without_a_snapshot() {
    let h = harness(Behaviour::Complete, Duration::ZERO);
    for uri in [
        format!("/heapdump?hash={}&probe=1", token()),
        format!("/heapdump?probe=1&task=task-a&hash={}", token()),
    ] {
        let response = h.get(&uri).await;
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
        assert_eq!(header(&response, "x-heapgate-task"), Some("task-a"));
    }
    assert_eq!(h.takes(), 0);
}

#[tokio::test]
async fn valid_token_streams_the_snapshot() {
    let h = harness(Behaviour::Complete, Duration::ZERO);
    let response = h
        .get(&format!(
            "/heapdump?hash={}&task=task-a",
            token().to_uppercase()
        ))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, "content-type"), Some("application/json"));
    assert_eq!(
        header(&response, "content-disposition"),
        Some("attachment; filename=\"task-a-20210601T101500Z.heapsnapshot\"")
    );
    assert_eq!(header(&response, "x-heapgate-task"), Some("task-a"));
    assert_eq!(header(&response, "x-heapgate-session"), Some("s1"));
    // The header's name until 0.1, sent too for one release.
    assert_eq!(header(&response, "x-heapgate-series"), Some("s1"));
    assert_eq!(text(response).await, "{\"snapshot\":{}}");
    assert_eq!(h.takes(), 1);
    assert!(
        h.metric("heapgate_snapshots_total{outcome=\"ok\"}")
            .ends_with(" 1")
    );
    assert_eq!(
        h.metric("heapgate_snapshot_bytes_total"),
        "heapgate_snapshot_bytes_total 15"
    );
}

#[tokio::test]
async fn one_at_a_time_then_min_interval() {
    let mut h = harness(Behaviour::Fed, Duration::from_secs(3600));
    let uri = format!("/heapdump?hash={}", token());
    let first = h.get(&uri).await;
    assert_eq!(first.status(), StatusCode::OK);

    let busy = h.get(&uri).await;
    assert_eq!(busy.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&busy, "retry-after"), Some("3600"));
    assert_eq!(header(&busy, "x-heapgate-task"), Some("task-a"));
    assert_eq!(h.takes(), 1);

    let feed = h.feed.take().unwrap();
    feed.send(Ok(Bytes::from_static(b"{}"))).await.unwrap();
    drop(feed);
    assert_eq!(text(first).await.trim_start(), "{}");

    let too_soon = h.get(&uri).await;
    assert_eq!(too_soon.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = header(&too_soon, "retry-after").unwrap().parse().unwrap();
    assert!((3590..=3600).contains(&retry), "{retry}");
    assert_eq!(h.takes(), 1);
}

#[tokio::test]
async fn heartbeat_spaces_precede_a_late_first_chunk() {
    let mut h = harness(Behaviour::Fed, Duration::ZERO);
    let response = h.get(&format!("/heapdump?hash={}", token())).await;
    let feed = h.feed.take().unwrap();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(120)).await;
        feed.send(Ok(Bytes::from_static(b"{\"snapshot\":{}}")))
            .await
            .unwrap();
    });
    let body = text(response).await;
    assert!(body.starts_with(' '), "{body:?}");
    let parsed: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(parsed.get("snapshot").is_some());
}

#[tokio::test]
async fn unreachable_source_is_502_and_costs_no_interval() {
    let h = harness(Behaviour::Unreachable, Duration::from_secs(3600));
    let uri = format!("/heapdump?hash={}", token());
    let response = h.get(&uri).await;
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(header(&response, "x-heapgate-task"), Some("task-a"));
    assert_eq!(text(response).await, "snapshot source unreachable\n");
    assert_eq!(
        h.get(&uri).await.status(),
        StatusCode::BAD_GATEWAY,
        "not 429: nothing was taken"
    );
    assert_eq!(h.takes(), 2);
}

#[tokio::test]
async fn failure_midway_aborts_the_body() {
    let h = harness(Behaviour::FailsMidway, Duration::ZERO);
    let response = h.get(&format!("/heapdump?hash={}", token())).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.into_body().collect().await.is_err(),
        "a truncated snapshot must not end cleanly"
    );
    assert!(
        h.metric("heapgate_snapshots_total{outcome=\"failed\"}")
            .ends_with(" 1")
    );
}

#[tokio::test]
async fn health_paths_are_answered_only_during_a_snapshot() {
    let mut h = harness(Behaviour::Fed, Duration::ZERO);
    assert_eq!(
        h.get("/health").await.status(),
        StatusCode::BAD_GATEWAY,
        "passed through to the (down) app"
    );
    let snapshot = h.get(&format!("/heapdump?hash={}", token())).await;
    let during = h.get("/health").await;
    assert_eq!(during.status(), StatusCode::OK);
    assert_eq!(h.get("/other").await.status(), StatusCode::BAD_GATEWAY);
    drop(h.feed.take());
    let _ = text(snapshot).await;
    assert_eq!(h.get("/health").await.status(), StatusCode::BAD_GATEWAY);
}

#[tokio::test]
async fn client_leaving_midway_releases_the_gate() {
    let mut h = harness(Behaviour::Fed, Duration::ZERO);
    let uri = format!("/heapdump?hash={}", token());
    let response = h.get(&uri).await;
    assert!(h.metric("heapgate_snapshot_in_progress ").ends_with(" 1"));
    drop(response);
    assert!(h.metric("heapgate_snapshot_in_progress ").ends_with(" 0"));
    assert!(
        h.metric("heapgate_snapshots_total{outcome=\"client_gone\"}")
            .ends_with(" 1")
    );
    drop(h.feed.take());
}

#[tokio::test]
async fn other_paths_pass_through() {
    let h = harness(Behaviour::Complete, Duration::ZERO);
    let response = h.get(&format!("/heapdumps?hash={}", token())).await;
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(h.takes(), 0);
    // Below the snapshot path is the proxy's too (an app may mount a handler on the prefix).
    let response = h.get(&format!("/heapdump/extra?hash={}", token())).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(h.takes(), 0);
    assert!(
        h.metric("heapgate_requests_total{route=\"passthrough\",status=\"502\"}")
            .ends_with(" 1")
    );
}

impl Harness {
    async fn get_accepting(&self, uri: &str, accept_encoding: &str) -> Response {
        let request = Request::builder()
            .uri(uri)
            .header("host", "heapgate")
            .header("accept-encoding", accept_encoding)
            .body(Body::empty())
            .unwrap();
        self.public.send(request).await
    }
}

fn decode(coding: &str, wire: &[u8]) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut out = Vec::new();
    match coding {
        "zstd" => zstd::stream::read::Decoder::new(wire)?.read_to_end(&mut out),
        "gzip" => flate2::read::GzDecoder::new(wire).read_to_end(&mut out),
        other => panic!("unexpected coding {other}"),
    }?;
    Ok(out)
}

#[tokio::test]
async fn accept_encoding_picks_the_coding_and_no_header_gets_plain_json() {
    for (accept, coding) in [
        (None, None),
        (Some("identity"), None),
        (Some("gzip, zstd"), Some("zstd")),
        (Some("zstd;q=0.5, gzip"), Some("gzip")),
        (Some("br"), None),
    ] {
        let h = harness(Behaviour::Complete, Duration::ZERO);
        let uri = format!("/heapdump?hash={}", token());
        let response = match accept {
            Some(accept) => h.get_accepting(&uri, accept).await,
            None => h.get(&uri).await,
        };
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(header(&response, "vary"), Some("accept-encoding"));
        assert_eq!(header(&response, "content-encoding"), coding, "{accept:?}");
        let wire = response.into_body().collect().await.unwrap().to_bytes();
        let plain = match coding {
            Some(coding) => decode(coding, &wire).unwrap(),
            None => wire.to_vec(),
        };
        assert_eq!(plain, b"{\"snapshot\":{}}", "{accept:?}");
    }
}

/// The heartbeat spaces before V8's first byte must reach the client as compressed bytes it
/// can read at once, not sit in the encoder.
#[tokio::test]
async fn compressed_heartbeat_flows_before_the_first_chunk() {
    for coding in ["zstd", "gzip"] {
        let mut h = harness(Behaviour::Fed, Duration::ZERO);
        let response = h
            .get_accepting(&format!("/heapdump?hash={}", token()), coding)
            .await;
        assert_eq!(header(&response, "content-encoding"), Some(coding));
        let mut body = response.into_body();
        let mut early = Vec::new();
        // Nothing fed yet: whatever arrives now is heartbeat (20 ms ticks).
        while early.len() < 3 {
            let frame = tokio::time::timeout(Duration::from_secs(5), body.frame())
                .await
                .expect("a compressed heartbeat block within 5 s")
                .unwrap()
                .unwrap();
            early.push(frame.into_data().unwrap());
        }
        let early_wire: Vec<u8> = early.concat();
        // An unfinished stream: decoding runs out of input after the spaces.
        let mut partial = Vec::new();
        {
            use std::io::Read;
            let mut reader: Box<dyn Read> = match coding {
                "zstd" => Box::new(zstd::stream::read::Decoder::new(&early_wire[..]).unwrap()),
                _ => Box::new(flate2::read::GzDecoder::new(&early_wire[..])),
            };
            let _ = reader.read_to_end(&mut partial);
        }
        assert!(
            partial.len() >= 3 && partial.iter().all(|&b| b == b' '),
            "{coding}: {partial:?}"
        );
        let feed = h.feed.take().unwrap();
        feed.send(Ok(Bytes::from_static(b"{\"snapshot\":{}}")))
            .await
            .unwrap();
        drop(feed);
        let rest = body.collect().await.unwrap().to_bytes();
        let plain = decode(coding, &[early_wire, rest.to_vec()].concat()).unwrap();
        let parsed: serde_json::Value = serde_json::from_slice(&plain).unwrap();
        assert!(parsed.get("snapshot").is_some());
        assert!(plain.starts_with(b"   "));
    }
}

#[tokio::test]
async fn a_failed_source_aborts_the_compressed_body() {
    let h = harness(Behaviour::FailsMidway, Duration::ZERO);
    let response = h
        .get_accepting(&format!("/heapdump?hash={}", token()), "zstd")
        .await;
    assert_eq!(header(&response, "content-encoding"), Some("zstd"));
    assert!(
        response.into_body().collect().await.is_err(),
        "a truncated snapshot must not end cleanly, compressed or not"
    );
}
