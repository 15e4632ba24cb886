//! `--source upstream`: the app's own snapshot endpoint, for apps that already have one (the
//! hand-made `/heapdump?hash=` route this product replaces) or cannot run with `--inspect`.
//!
//! The verified request's query is forwarded unchanged, since such an endpoint checks the token
//! itself. Such endpoints usually write the whole file before answering, so the response head can
//! take as long as the snapshot; the source waits briefly for it and otherwise lets the handler
//! commit to a 200 (and heartbeat bytes) while it keeps waiting — an error that arrives later
//! aborts the transfer.
//!
//! The app is asked for `identity` (the proxy compresses for the client). An app that encodes its
//! answer anyway has it passed through untouched, `Content-Encoding` and all, when its head comes
//! in time; one that arrives encoded after the proxy committed to a plain 200 aborts the transfer,
//! since it could not be passed off as what was announced.

use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::{FutureExt, StreamExt, TryStreamExt};
use http::{HeaderValue, Request, Response, StatusCode, Uri, header};
use http_body_util::{BodyDataStream, Empty};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::source::{Capture, ChunkStream, Source, SourceError};

/// How long `take` waits for the app's response head before answering 200 regardless: long
/// enough that an app which writes its snapshot before its head (most do) is passed through as
/// it answers, encoding included, on a busy box too; well under a balancer's idle timeout (ALB:
/// 60 s), after which the heartbeat keeps the connection open.
const HEAD_WAIT: Duration = Duration::from_secs(10);

/// Snapshots from `GET <upstream><path>?<query>`.
#[derive(Debug, Clone)]
pub(crate) struct UpstreamSource {
    client: Client<HttpConnector, Empty<Bytes>>,
    base: Uri,
    path: String,
}

impl UpstreamSource {
    /// `base` is the app (`--upstream`), `path` its snapshot endpoint (`--upstream-path`).
    pub(crate) fn new(base: Uri, path: String) -> UpstreamSource {
        UpstreamSource {
            client: Client::builder(TokioExecutor::new()).build_http(),
            base,
            path,
        }
    }

    fn uri(&self, query: &str) -> Result<Uri, SourceError> {
        snapshot_uri(&self.base, &self.path, query)
            .ok_or_else(|| SourceError::Unreachable("bad upstream snapshot URL".to_owned()))
    }

    async fn start(&self, query: &str) -> Result<Capture, SourceError> {
        let request = Request::get(self.uri(query)?)
            .header(header::ACCEPT_ENCODING, "identity")
            .body(Empty::new())
            .map_err(|e| SourceError::Unreachable(e.to_string()))?;
        let mut pending = self.client.request(request).boxed();
        match tokio::time::timeout(HEAD_WAIT, &mut pending).await {
            // The app's own headers are never taken as the proxy's: it has no inspector session,
            // so it cannot vouch for a series (`X-Heapgate-*` from the app is dropped).
            Ok(Ok(response)) => {
                let content_encoding = encoded(&response).cloned();
                Ok(Capture {
                    session: None,
                    body: body_stream(response).map_err(SourceError::Unreachable)?,
                    content_encoding,
                })
            }
            Ok(Err(e)) => Err(SourceError::Unreachable(e.to_string())),
            // Still building: commit now, and abort later if the app then fails.
            Err(_) => Ok(Capture {
                session: None,
                body: pending
                    .map(|result| {
                        result
                            .map_err(|e| e.to_string())
                            .and_then(|response| match encoded(&response) {
                                Some(coding) => Err(format!(
                                    "the app's late answer is encoded ({}); a plain 200 was already sent",
                                    String::from_utf8_lossy(coding.as_bytes())
                                )),
                                None => body_stream(response),
                            })
                            .map_err(SourceError::Failed)
                    })
                    .into_stream()
                    .map(|body| match body {
                        Ok(stream) => stream,
                        Err(e) => futures_util::stream::once(async move { Err(e) }).boxed(),
                    })
                    .flatten()
                    .boxed(),
                content_encoding: None,
            }),
        }
    }
}

/// The app's `Content-Encoding`, unless absent or `identity`.
fn encoded(response: &Response<Incoming>) -> Option<&HeaderValue> {
    response
        .headers()
        .get(header::CONTENT_ENCODING)
        .filter(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity"))
}

/// The body of a 200, or why there is none.
fn body_stream(response: Response<Incoming>) -> Result<ChunkStream, String> {
    if response.status() != StatusCode::OK {
        return Err(format!(
            "the app's snapshot endpoint answered {}",
            response.status()
        ));
    }
    Ok(BodyDataStream::new(response.into_body())
        .map_err(|e| SourceError::Failed(e.to_string()))
        .boxed())
}

impl Source for UpstreamSource {
    fn take<'a>(&'a self, query: &'a str) -> BoxFuture<'a, Result<Capture, SourceError>> {
        self.start(query).boxed()
    }
}

/// `base` (an `http://host:port[/prefix]` upstream) joined with `path` and `query`: the URL a
/// source or the gateway sends a snapshot request to. `None` if the pieces do not form a URI.
pub(crate) fn snapshot_uri(base: &Uri, path: &str, query: &str) -> Option<Uri> {
    let authority = base
        .authority()
        .map(http::uri::Authority::as_str)
        .unwrap_or_default();
    let prefix = base.path().trim_end_matches('/');
    let separator = if query.is_empty() { "" } else { "?" };
    format!("http://{authority}{prefix}{path}{separator}{query}")
        .parse()
        .ok()
}
