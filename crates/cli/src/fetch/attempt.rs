//! One request: the HTTP client, what its answer says, and streaming a snapshot into a `.part`.

use std::error::Error as _;
use std::time::Duration;

use reqwest::header::{CONNECTION, CONTENT_DISPOSITION, HeaderName, RETRY_AFTER};
use reqwest::{Client, Response, StatusCode};

use super::policy::Head;
use super::progress::Progress;
use super::save::{Part, SNAPSHOT_PREFIX, disposition_filename, task_from_filename};
use crate::Error;

const TASK_HEADER: HeaderName = HeaderName::from_static("x-heapgate-task");
const SERIES_HEADER: HeaderName = HeaderName::from_static("x-heapgate-series");
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Finds dead peers during a long, quiet snapshot build; a slow but live server is never cut.
const TCP_KEEPALIVE: Duration = Duration::from_secs(30);

/// The client every attempt uses. It never keeps a connection for reuse, so every attempt opens a
/// new one and a load balancer picks a task afresh. HTTP/1.1 only (HTTP/2 would multiplex every
/// attempt onto one connection), no redirects (they would carry the token elsewhere), no
/// decompression.
pub(crate) fn client(https: bool) -> Result<Client, Error> {
    // reqwest is built without a crypto provider (aws-lc-rs is a slow C build); ring is ours.
    // An error means one is installed already, which is as good.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let builder = Client::builder()
        .user_agent(concat!("heapgate/", env!("CARGO_PKG_VERSION")))
        .http1_only()
        .pool_max_idle_per_host(0)
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_keepalive(TCP_KEEPALIVE);
    let builder = if https {
        // The system's CA certificates (SSL_CERT_FILE / SSL_CERT_DIR are honoured).
        builder
    } else {
        // Plain http never needs certificates: don't fail on machines that have none.
        let tls = rustls::ClientConfig::builder()
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        builder.tls_backend_preconfigured(tls)
    };
    builder
        .build()
        .map_err(|e| Error::Config(format!("cannot set up the HTTP client: {}", describe(e))))
}

/// Sends one GET on a new connection (`Connection: close` as well as no pooling, so the server
/// side closes too).
pub(crate) async fn send(client: &Client, url: &str) -> Result<Response, reqwest::Error> {
    client.get(url).header(CONNECTION, "close").send().await
}

/// What the response head says, beyond the decision.
#[derive(Debug, Default)]
pub(crate) struct Meta {
    /// `X-Heapgate-Series`.
    pub(crate) series: Option<String>,
    /// The `Content-Disposition` filename, unsanitised.
    pub(crate) filename: Option<String>,
}

pub(crate) fn head_of(response: &Response) -> (Head, Meta) {
    let header = |name: HeaderName| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    let filename = header(CONTENT_DISPOSITION).and_then(|v| disposition_filename(&v));
    // Only the snapshot path's own answers name a task, and only with a well-formed id; a
    // heapgate-proxy strips the header from everything its app says, so anything else did not
    // come from a sidecar.
    let status = response.status().as_u16();
    let task = header(TASK_HEADER)
        .filter(|_| matches!(status, 200 | 204 | 421 | 429 | 502))
        .filter(|task| is_task_id(task))
        .or_else(|| {
            filename
                .as_deref()
                .and_then(task_from_filename)
                .map(str::to_owned)
        });
    let head = Head {
        status: response.status().as_u16(),
        task,
        retry_after: header(RETRY_AFTER),
    };
    let meta = Meta {
        series: header(SERIES_HEADER),
        filename,
    };
    (head, meta)
}

/// The proxy's task-id syntax: 1–128 characters of `[A-Za-z0-9._-]`.
fn is_task_id(text: &str) -> bool {
    (1..=128).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// `421 Misdirected Request`.
pub(crate) fn status_text(status: u16) -> String {
    let reason = StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason());
    match reason {
        Some(reason) => format!("{status} {reason}"),
        None => status.to_string(),
    }
}

/// A reqwest error as one line: its causes joined, and never the URL (it carries the token).
pub(crate) fn describe(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut line = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        source = cause.source();
    }
    line
}

/// Whether the request failed because the server's certificate was refused (not a transient
/// failure, unlike a reset handshake).
pub(crate) fn is_certificate_error(error: &reqwest::Error) -> bool {
    let mut source = error.source();
    while let Some(cause) = source {
        if refused_certificate(cause) {
            return true;
        }
        source = cause.source();
    }
    false
}

fn refused_certificate(error: &(dyn std::error::Error + 'static)) -> bool {
    if let Some(e) = error.downcast_ref::<rustls::Error>() {
        return matches!(
            e,
            rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented
        );
    }
    // io::Error's source() skips its payload (often another io::Error): look inside.
    error
        .downcast_ref::<std::io::Error>()
        .and_then(std::io::Error::get_ref)
        .is_some_and(|inner| refused_certificate(inner))
}

/// Why a download did not produce a file.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Worth another attempt (the transfer was cut, or ended early).
    Retry(String),
    /// Not worth one (not a snapshot at all, or the disk refuses).
    Stop(String),
}

/// Streams the body into `part`, leaving out leading whitespace (the proxy's keep-alive while
/// the snapshot builds). Succeeds only when the body ended cleanly, starts with
/// `{"snapshot":` and ends with `}`; returns the bytes written.
pub(crate) async fn download(
    response: &mut Response,
    part: &mut Part,
    progress: &mut Progress<'_>,
) -> Result<u64, Failure> {
    let mut written = 0_u64;
    let mut prefix = Vec::with_capacity(SNAPSHOT_PREFIX.len());
    let mut last = None;
    loop {
        let chunk = match response.chunk().await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => break,
            Err(e) => {
                return Err(Failure::Retry(format!(
                    "transfer cut after {written} bytes: {}",
                    describe(e)
                )));
            }
        };
        let mut data = &chunk[..];
        if written == 0 {
            data = data.trim_ascii_start();
            if data.is_empty() {
                continue;
            }
            progress.receiving();
        }
        if prefix.len() < SNAPSHOT_PREFIX.len() {
            let take = (SNAPSHOT_PREFIX.len() - prefix.len()).min(data.len());
            prefix.extend_from_slice(&data[..take]);
            if !SNAPSHOT_PREFIX.starts_with(&prefix) {
                return Err(Failure::Stop(
                    "the answer is not a heap snapshot (it does not start with {\"snapshot\":); \
                     check BASE_URL and --path"
                        .to_owned(),
                ));
            }
        }
        if let Some(&byte) = data.trim_ascii_end().last() {
            last = Some(byte);
        }
        part.write_all(data)
            .map_err(|e| Failure::Stop(format!("cannot write {}: {e}", part.path().display())))?;
        written += data.len() as u64;
        progress.received(data.len() as u64);
    }
    if written == 0 {
        return Err(Failure::Retry("the answer was empty".to_owned()));
    }
    if prefix.len() < SNAPSHOT_PREFIX.len() || last != Some(b'}') {
        return Err(Failure::Retry(format!(
            "the snapshot ended early, after {written} bytes"
        )));
    }
    Ok(written)
}
