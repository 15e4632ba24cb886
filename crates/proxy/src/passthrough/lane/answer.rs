//! The lane's half of an answer: the app's head read and rewritten by the rulebook's rules
//! (hop-by-hop and reserved headers dropped, the framing checked and decided once), then the
//! body relayed in that framing.

use std::future::poll_fn;
use std::io::Write as _;
use std::mem::MaybeUninit;
use std::time::SystemTime;

use http::{Method, StatusCode};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::buffers::{Buffers, InBuf, READ_SIZE, Read};
use super::chunked::{Chunks, hex8};
use super::request::PlainRequest;
use super::{Client, MAX_HEADERS};
use crate::conn_pool::RawConn;
use crate::passthrough::rules::{
    AnswerFraming, ForwardError, Listed, Name, classify, connection_tokens, date_line, header_line,
    is_reserved, unavailable,
};

/// The largest answer head accepted from the app: what hyper's client reads (its default
/// `max_buf_size`), so the general path and the lane refuse the same heads.
pub(super) const MAX_RESPONSE_HEAD: usize = 8192 + 4096 * 100;
/// Answer bytes that go out in the same write as the head.
const COALESCE: usize = 16 * 1024;

/// How the app frames its answer's body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Framing {
    /// None (`HEAD`, 204, 304).
    Empty,
    Length(u64),
    Chunked,
    /// Until the app closes the connection (sent on to the client chunked).
    UntilClose,
}

/// The app's answer head.
pub(super) struct AnswerHead {
    /// Its length in the answer buffer.
    pub(super) len: usize,
    pub(super) status: StatusCode,
    pub(super) framing: Framing,
    /// Whether the upstream connection may carry another request once the body is read.
    pub(super) reusable: bool,
    /// Whether the client connection ends with this answer (`Connection: close` sent).
    pub(super) close: bool,
}

/// What [`plan_answer`] made of the answer bytes read so far.
pub(super) enum AnswerRead {
    Ready(AnswerHead),
    /// A 1xx other than 101, this long: dropped, as hyper's client does.
    Informational(usize),
    NeedMore,
    Bad(ForwardError),
}

/// Parses the app's answer head in `bytes`; if whole, writes the client's head into `out`.
pub(super) fn plan_answer(
    bytes: &[u8],
    request: &PlainRequest,
    close: bool,
    out: &mut Vec<u8>,
    wall_clock: fn() -> SystemTime,
) -> AnswerRead {
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut parsed = httparse::Response::new(&mut []);
    let parsing = httparse::ParserConfig::default();
    let head_len = match parsing.parse_response_with_uninit_headers(&mut parsed, bytes, &mut slots)
    {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return AnswerRead::NeedMore,
        Err(_) => return AnswerRead::Bad(unavailable("malformed response head")),
    };
    let (Some(status), Some(version)) = (parsed.code, parsed.version) else {
        return AnswerRead::Bad(unavailable("malformed response head"));
    };
    // Three digits (httparse), so 100..=999 is a status; 000..=099 is not.
    let Ok(status) = StatusCode::from_u16(status) else {
        return AnswerRead::Bad(unavailable("impossible status in the answer"));
    };
    if status == StatusCode::SWITCHING_PROTOCOLS {
        return AnswerRead::Bad(ForwardError::UnexpectedUpgrade);
    }
    if status.is_informational() {
        return AnswerRead::Informational(head_len);
    }
    let headers = &*parsed.headers;
    let mut framed = AnswerFraming::default();
    let mut app_closes = false;
    let mut keep_alive = false;
    let mut has_date = false;
    let mut listed = Listed::default();
    for header in headers {
        match classify(header.name) {
            Name::ContentLength => {
                if let Err(err) = framed.content_length(header.value) {
                    return AnswerRead::Bad(err);
                }
            }
            Name::TransferEncoding => {
                if let Err(err) = framed.transfer_encoding(header.value) {
                    return AnswerRead::Bad(err);
                }
            }
            Name::Connection => {
                for token in connection_tokens(header.value) {
                    if token.eq_ignore_ascii_case(b"close") {
                        app_closes = true;
                    } else if token.eq_ignore_ascii_case(b"keep-alive") {
                        keep_alive = true;
                    } else {
                        listed.add(token);
                    }
                }
            }
            _ => {}
        }
    }
    let AnswerFraming { length, chunked } = framed;
    let mut reusable = !app_closes && (version == 1 || keep_alive);
    let framing = if request.method == Method::HEAD
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        Framing::Empty
    } else if chunked {
        Framing::Chunked
    } else if let Some(length) = length {
        Framing::Length(length)
    } else {
        reusable = false;
        Framing::UntilClose
    };

    out.clear();
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(parsed.reason.unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    for header in headers {
        let name = classify(header.name);
        // The length is written once below, as the framing decided it.
        let dropped = name.is_hop_by_hop()
            || name == Name::ContentLength
            || listed.drops(header, name, headers)
            || is_reserved(header.name);
        if !dropped {
            has_date |= name == Name::Date;
            header_line(out, header.name.as_bytes(), header.value);
        }
    }
    // One answer-header policy with the general path (hyper's server): one `Content-Length`,
    // digits as a number, when the body is length-framed or a HEAD answer announces it; none on
    // a 204 or 304, or beside a chunked body.
    match (framing, length) {
        (Framing::Chunked | Framing::UntilClose, _) => {
            out.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
        }
        (Framing::Length(length), _) => length_line(out, length),
        (Framing::Empty, Some(length))
            if !chunked && !matches!(status, StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED) =>
        {
            length_line(out, length);
        }
        (Framing::Empty, _) => {}
    }
    if !has_date {
        date_line(out, wall_clock());
    }
    if close {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    AnswerRead::Ready(AnswerHead {
        len: head_len,
        status,
        framing,
        reusable,
        close,
    })
}

/// What became of the upstream connection once an answer was relayed.
pub(super) enum Relayed {
    Reusable(RawConn),
    /// The app sent more than the answer's framing: retired.
    Oversent,
    /// Not reusable (the app closes it, or the body ended with the connection).
    Done,
}

/// Sends the answer head (in `out`) and body to the client. Returns what became of the upstream
/// connection, or `Err` if the answer could not be sent whole.
pub(super) async fn relay_body(
    client: &mut Client,
    mut conn: RawConn,
    buffers: &mut Buffers,
    head: &AnswerHead,
) -> Result<Relayed, ()> {
    let Buffers { answer, out, .. } = buffers;
    answer.consume(head.len);
    // Bytes after the answer's end, in the same read: the app sent more than it framed.
    let mut oversent = false;
    match head.framing {
        Framing::Empty => {
            oversent = answer.len() > 0;
            client.write_all(out).await.map_err(drop)?;
        }
        Framing::Length(length) => {
            let mut left = length;
            let mut first = true;
            loop {
                let bytes = answer.bytes();
                let take = bytes.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                // More than announced: the connection's state is unknown.
                oversent |= take != bytes.len();
                left -= take as u64;
                if first {
                    first = false;
                    if take <= COALESCE {
                        out.extend_from_slice(&bytes[..take]);
                        client.write_all(out).await.map_err(drop)?;
                    } else {
                        client.write_all(out).await.map_err(drop)?;
                        client.write_all(&bytes[..take]).await.map_err(drop)?;
                    }
                } else if take > 0 {
                    client.write_all(&bytes[..take]).await.map_err(drop)?;
                }
                answer.clear();
                if left == 0 {
                    break;
                }
                read_body(&mut conn.stream, answer).await?;
            }
        }
        Framing::Chunked => {
            // Decoded and chunked again, one chunk per read, as the general path does: the
            // app's chunk extensions and trailer fields (which could speak for the proxy or
            // name hop-by-hop headers) never reach the client.
            let mut chunks = Chunks::default();
            loop {
                let bytes = answer.bytes();
                let size_at = out.len();
                out.extend_from_slice(b"00000000\r\n");
                let data_at = out.len();
                let take = chunks
                    .scan(bytes, |data| out.extend_from_slice(data))
                    .map_err(|()| {
                        tracing::warn!("pass-through: malformed chunked body from the app");
                    })?;
                oversent |= take != bytes.len();
                let size = out.len() - data_at;
                if size == 0 {
                    out.truncate(size_at);
                } else {
                    // Leading zeros are allowed in a chunk size (RFC 9112 §7.1: 1*HEXDIG).
                    out[size_at..size_at + 8].copy_from_slice(&hex8(size));
                    out.extend_from_slice(b"\r\n");
                }
                if chunks.done() {
                    out.extend_from_slice(b"0\r\n\r\n");
                }
                if !out.is_empty() {
                    client.write_all(out).await.map_err(drop)?;
                }
                out.clear();
                answer.clear();
                if chunks.done() {
                    break;
                }
                read_body(&mut conn.stream, answer).await?;
            }
        }
        Framing::UntilClose => {
            client.write_all(out).await.map_err(drop)?;
            loop {
                if answer.len() > 0 {
                    out.clear();
                    let _ = write!(out, "{:x}\r\n", answer.len());
                    out.extend_from_slice(answer.bytes());
                    out.extend_from_slice(b"\r\n");
                    client.write_all(out).await.map_err(drop)?;
                    answer.clear();
                }
                match poll_fn(|cx| answer.poll_read(&mut conn.stream, READ_SIZE, cx)).await {
                    Ok(Read::Bytes) => {}
                    Ok(Read::Eof) => break,
                    Ok(Read::Full) | Err(_) => return Err(()),
                }
            }
            client.write_all(b"0\r\n\r\n").await.map_err(drop)?;
        }
    }
    Ok(if oversent {
        Relayed::Oversent
    } else if head.reusable {
        Relayed::Reusable(conn)
    } else {
        Relayed::Done
    })
}

/// The next bytes of an answer body; the app closing before its end is an error.
async fn read_body(stream: &mut TcpStream, answer: &mut InBuf) -> Result<(), ()> {
    match poll_fn(|cx| answer.poll_read(stream, READ_SIZE, cx)).await {
        Ok(Read::Bytes) => Ok(()),
        Ok(Read::Eof) => {
            tracing::warn!("pass-through: the app closed the connection mid-answer");
            Err(())
        }
        Ok(Read::Full) | Err(_) => Err(()),
    }
}

/// `Content-Length: N`, N in decimal without leading zeros.
fn length_line(out: &mut Vec<u8>, length: u64) {
    let _ = write!(out, "Content-Length: {length}\r\n");
}
