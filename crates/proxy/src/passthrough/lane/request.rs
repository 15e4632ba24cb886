//! The lane's half of a request: the split — whether a request is plain enough for the lane,
//! or which reason sends it to the general path — and the upstream request written from the
//! received bytes by the rulebook's rules.

use std::mem::MaybeUninit;

use http::Method;

use super::buffers::{Spare, take_spare};
use super::{Lane, MAX_BUFFERED_BODY, MAX_HEADERS};
use crate::metrics::Metrics;
use crate::passthrough::rules::{
    Addressed, Listed, Name, RawHead, add_forwarded, classify, connection_tokens, header_line,
    is_host, parse_length,
};

/// Which path serves a request, and why: counted in `heapgate_passthrough_split_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Split {
    /// A plain request: the lane passes it by hand.
    Lane,
    /// The general path serves it, and the rest of its connection.
    General(Reason),
}

/// Why the general path serves a request. Every one is a case the lane does not handle itself
/// and the general path (hyper) handles completely, refusals included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reason {
    /// The lane is switched off (`--lane off`).
    LaneOff,
    /// Not HTTP/1.1 (HTTP/1.0 has other keep-alive and framing rules).
    Version,
    /// `CONNECT`.
    Connect,
    /// Not a plain origin-form target (absolute form, `*`, bytes the `http` crate would reject
    /// or rewrite).
    Target,
    /// A path the proxy answers itself: the snapshot or profile path, another spelling of one,
    /// a refused path, a health path during a snapshot.
    OwnPath,
    /// No `Host`, more than one, or a malformed one (the general path answers 400).
    Host,
    /// A malformed `Content-Length`, or more than one.
    ContentLength,
    /// `Transfer-Encoding` on a request: a streamed body.
    TransferEncoding,
    /// `Expect` (`100-continue`).
    Expect,
    /// `Connection: upgrade`.
    Upgrade,
    /// A body over [`MAX_BUFFERED_BODY`].
    LargeBody,
    /// The head came in time, the body did not: the general path streams it.
    SlowBody,
    /// A head httparse refuses, or one over the header limit (the general path answers it).
    MalformedHead,
    /// A later request on a connection the general path already serves.
    Later,
}

impl Split {
    /// Counts this decision in `heapgate_passthrough_split_total`; a handover to the general path
    /// is also logged at debug.
    pub(crate) fn count(self, metrics: &Metrics) {
        metrics.split(self.path(), self.reason());
        if let Split::General(reason) = self
            && reason != Reason::Later
        {
            tracing::debug!(
                reason = self.reason(),
                "the general path serves the connection"
            );
        }
    }

    /// `path` label.
    pub(crate) fn path(self) -> &'static str {
        match self {
            Split::Lane => "lane",
            Split::General(_) => "general",
        }
    }

    /// `reason` label.
    pub(crate) fn reason(self) -> &'static str {
        let Split::General(reason) = self else {
            return "plain";
        };
        match reason {
            Reason::LaneOff => "lane_off",
            Reason::Version => "version",
            Reason::Connect => "connect",
            Reason::Target => "target",
            Reason::OwnPath => "own_path",
            Reason::Host => "host",
            Reason::ContentLength => "content_length",
            Reason::TransferEncoding => "transfer_encoding",
            Reason::Expect => "expect",
            Reason::Upgrade => "upgrade",
            Reason::LargeBody => "large_body",
            Reason::SlowBody => "slow_body",
            Reason::MalformedHead => "malformed_head",
            Reason::Later => "later",
        }
    }
}

/// What [`Lane::plan`] made of the bytes read so far.
pub(super) enum Planned {
    /// Whole and plain: the lane's (the split said [`Split::Lane`]).
    Ready(PlainRequest),
    /// The head is not whole yet.
    NeedMore,
    /// The head is whole; the body is not: the request is this long in all.
    NeedBody(usize),
    /// The split said [`Split::General`].
    General(Reason),
}

/// A plain request, rewritten into the buffers' `out`.
pub(super) struct PlainRequest {
    /// Head and body, in the request buffer.
    pub(super) len: usize,
    pub(super) method: Method,
    /// The path, in the request buffer.
    pub(super) path: std::ops::Range<usize>,
    /// `Connection: close`: the client connection ends with this answer.
    pub(super) close: bool,
}

/// What the head says about framing and this connection, once the split has taken it.
struct Plain<'h> {
    host: &'h [u8],
    body_len: usize,
    close: bool,
    listed: Listed<'h>,
}

impl Lane<'_> {
    /// The split, for a request head `parsed` (with a whole head): the lane's, with what its
    /// rewriting needs, or the general path's, with the reason. Every way to the general path
    /// is a named [`Reason`].
    fn split<'h>(
        &self,
        parsed: &httparse::Request<'h, 'h>,
        head_len: usize,
    ) -> Result<Plain<'h>, Reason> {
        if head_len > self.limits.max_header_bytes {
            return Err(Reason::MalformedHead);
        }
        if parsed.version != Some(1) {
            return Err(Reason::Version);
        }
        let (Some(method), Some(target)) = (parsed.method, parsed.path) else {
            return Err(Reason::MalformedHead);
        };
        if method == "CONNECT" {
            return Err(Reason::Connect);
        }
        if !is_plain_target(target) {
            return Err(Reason::Target);
        }
        let path = target.split_once('?').map_or(target, |(path, _)| path);
        if self.passthrough.own.classify(path) != Addressed::App {
            return Err(Reason::OwnPath);
        }
        let mut host = None;
        let mut hosts = 0;
        let mut content_length = None;
        let mut close = false;
        let mut listed = Listed::default();
        for header in &*parsed.headers {
            match classify(header.name) {
                Name::Host => {
                    hosts += 1;
                    host = Some(header.value);
                }
                Name::ContentLength => match (content_length, parse_length(header.value)) {
                    (None, Some(length)) => content_length = Some(length),
                    _ => return Err(Reason::ContentLength),
                },
                Name::TransferEncoding => return Err(Reason::TransferEncoding),
                Name::Expect => return Err(Reason::Expect),
                Name::Connection => {
                    for token in connection_tokens(header.value) {
                        if token.eq_ignore_ascii_case(b"close") {
                            close = true;
                        } else if token.eq_ignore_ascii_case(b"upgrade") {
                            return Err(Reason::Upgrade);
                        } else {
                            listed.add(token);
                        }
                    }
                }
                _ => {}
            }
        }
        let Some(host) = host.filter(|host| hosts == 1 && is_host(host)) else {
            return Err(Reason::Host);
        };
        let body_len = match content_length.map(usize::try_from) {
            None => 0,
            Some(Ok(length)) if length <= MAX_BUFFERED_BODY => length,
            Some(_) => return Err(Reason::LargeBody),
        };
        Ok(Plain {
            host,
            body_len,
            close,
            listed,
        })
    }

    /// Whether `bytes` start with a whole plain request; if so, writes the upstream request
    /// into `out`.
    pub(super) fn plan(&self, bytes: &[u8], out: &mut Vec<u8>) -> Planned {
        let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
        let mut parsed = httparse::Request::new(&mut []);
        let head_len = match parsed.parse_with_uninit_headers(bytes, &mut slots) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) if bytes.len() <= self.limits.max_header_bytes => {
                return Planned::NeedMore;
            }
            // Malformed or oversized: the general path gives the error answer.
            _ => return Planned::General(Reason::MalformedHead),
        };
        let plain = match self.split(&parsed, head_len) {
            Ok(plain) => plain,
            Err(reason) => return Planned::General(reason),
        };
        if bytes.len() < head_len + plain.body_len {
            return Planned::NeedBody(head_len + plain.body_len);
        }
        let (Some(method), Some(target)) = (parsed.method, parsed.path) else {
            return Planned::General(Reason::MalformedHead);
        };
        let headers = &*parsed.headers;

        // The request as the app gets it.
        out.clear();
        if out.capacity() == 0 {
            *out = take_spare(Spare::Out);
        }
        out.extend_from_slice(method.as_bytes());
        out.push(b' ');
        if let Some(prefix) = self.passthrough.upstream.prefix() {
            out.extend_from_slice(prefix.as_bytes());
        }
        out.extend_from_slice(target.as_bytes());
        out.extend_from_slice(b" HTTP/1.1\r\n");
        let mut present = [false; 3];
        for header in headers {
            let name = classify(header.name);
            if name.is_hop_by_hop() || plain.listed.drops(header, name, headers) {
                continue;
            }
            match name {
                // Written below, folded with the client appended.
                Name::XForwardedFor => {
                    present[0] = true;
                    continue;
                }
                Name::XForwardedProto => present[1] = true,
                Name::XForwardedHost => present[2] = true,
                _ => {}
            }
            header_line(out, header.name.as_bytes(), header.value);
        }
        add_forwarded(
            &mut RawHead {
                headers,
                listed: &plain.listed,
                present,
                host: plain.host,
                out,
            },
            Some(self.peer.as_bytes()),
        );
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&bytes[head_len..head_len + plain.body_len]);

        // Where the path is, for logs: an offset from the first unread byte, which stays valid
        // while the buffer grows or compacts (the request is consumed after its exchange).
        let path = target.split_once('?').map_or(target, |(path, _)| path);
        let path_at = path.as_ptr().addr() - bytes.as_ptr().addr();
        Planned::Ready(PlainRequest {
            len: head_len + plain.body_len,
            method: Method::from_bytes(method.as_bytes()).unwrap_or_default(),
            path: path_at..path_at + path.len(),
            close: plain.close,
        })
    }
}

/// An origin-form target of unreserved, sub-delim, `:`, `@`, `/`, `?` and `%` bytes: one the
/// `http` crate would parse as is (no fragment, nothing it could reject or rewrite).
fn is_plain_target(target: &str) -> bool {
    target.starts_with('/')
        && target.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'-' | b'.'
                        | b'_'
                        | b'~'
                        | b'!'
                        | b'$'
                        | b'&'
                        | b'\''
                        | b'('
                        | b')'
                        | b'*'
                        | b'+'
                        | b','
                        | b';'
                        | b'='
                        | b':'
                        | b'@'
                        | b'/'
                        | b'?'
                        | b'%'
                )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_targets() {
        for plain in ["/", "/a/b?c=1&d=%20", "/users/42;v=1", "/@me:x"] {
            assert!(is_plain_target(plain), "{plain}");
        }
        for unusual in [
            "*",
            "http://h/",
            "/a#frag",
            "/a b",
            "/q?x[]=1",
            "/\"",
            "/a\\b",
            "",
        ] {
            assert!(!is_plain_target(unusual), "{unusual}");
        }
    }
}
