//! One request: the HTTP client, what its answer says, and streaming a snapshot into a `.part`.

use std::error::Error as _;
use std::time::Duration;

use std::io::{self, Write};

use heapgate_protocol::{Head, REDACTED_HEADER, TASK_HEADER, TaskId, names_task, session_of};
use heapgate_snapshot::Encoding;
use reqwest::header::{
    ACCEPT_ENCODING, CONNECTION, CONTENT_DISPOSITION, CONTENT_ENCODING, CONTENT_TYPE, HeaderName,
    RETRY_AFTER,
};
use reqwest::{Client, Response};

use super::progress::Progress;
use super::save::{Part, SNAPSHOT_PREFIX, disposition_filename, task_from_filename};
use crate::Error;

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

/// What `heapgate fetch` asks for unless told `--no-compression`: zstd first (smaller and
/// cheaper to decode), gzip for servers without it.
pub(crate) const ACCEPT_COMPRESSED: &str = "zstd, gzip";

/// Sends one GET on a new connection (`Connection: close` as well as no pooling, so the server
/// side closes too), accepting `accept_encoding`.
pub(crate) async fn send(
    client: &Client,
    url: &str,
    accept_encoding: &str,
) -> Result<Response, reqwest::Error> {
    client
        .get(url)
        .header(CONNECTION, "close")
        .header(ACCEPT_ENCODING, accept_encoding)
        .send()
        .await
}

/// What the response head says, beyond the decision.
#[derive(Debug, Default)]
pub(crate) struct Meta {
    /// `X-Heapgate-Session` (or, from an older sidecar, `X-Heapgate-Series`).
    pub(crate) session: Option<String>,
    /// The `Content-Disposition` filename, unsanitised.
    pub(crate) filename: Option<String>,
    /// `X-Heapgate-Redacted` (what the proxy redacted), on a snapshot answer.
    pub(crate) redacted: Option<String>,
    /// `Content-Type`, printable ASCII only, to say what answered when it was not a sidecar.
    pub(crate) content_type: Option<String>,
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
        .filter(|_| names_task(status))
        .and_then(|task| TaskId::new(&task).ok())
        .or_else(|| {
            filename
                .as_deref()
                .and_then(task_from_filename)
                .and_then(|task| TaskId::new(task).ok())
        });
    let head = Head::new(status, task, header(RETRY_AFTER));
    let meta = Meta {
        session: session_of(response.headers()).and_then(|v| v.to_str().ok().map(str::to_owned)),
        filename,
        redacted: header(REDACTED_HEADER)
            .filter(|_| status == 200)
            .filter(|v| v.len() <= 64 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b',')),
        content_type: header(CONTENT_TYPE)
            .filter(|v| v.len() <= 80 && v.bytes().all(|b| b.is_ascii_graphic() || b == b' ')),
    };
    (head, meta)
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
        .downcast_ref::<io::Error>()
        .and_then(io::Error::get_ref)
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

/// How the server encoded the body (`Content-Encoding`).
pub(crate) fn encoding_of(response: &Response) -> Result<Encoding, Failure> {
    let Some(value) = response.headers().get(CONTENT_ENCODING) else {
        return Ok(Encoding::Plain);
    };
    let text = value.to_str().unwrap_or_default().trim();
    if text.eq_ignore_ascii_case("zstd") {
        Ok(Encoding::Zstd)
    } else if text.eq_ignore_ascii_case("gzip") || text.eq_ignore_ascii_case("x-gzip") {
        Ok(Encoding::Gzip)
    } else if text.eq_ignore_ascii_case("identity") || text.is_empty() {
        Ok(Encoding::Plain)
    } else {
        Err(Failure::Stop(format!(
            "the answer is encoded as {:?}, which heapgate cannot decode; try --no-compression",
            String::from_utf8_lossy(value.as_bytes())
        )))
    }
}

/// What a finished download amounted to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Downloaded {
    /// Body bytes received (compressed, when it was).
    pub(crate) wire: u64,
    /// Bytes of snapshot JSON, leading heartbeat whitespace left out.
    pub(crate) plain: u64,
}

/// Checks the snapshot JSON as it streams past, leaving out leading whitespace (the proxy's
/// heartbeat while the snapshot builds) and writing the rest to `part` unless the compressed
/// bytes are kept instead.
struct PlainSink<'a> {
    part: Option<&'a mut Part>,
    written: u64,
    prefix: Vec<u8>,
    last: Option<u8>,
    /// Why the sink refused data; `io::Error` cannot carry a [`Failure`].
    failure: Option<Failure>,
    /// For a profile: its bytes, read whole at the end to check it (profiles are small).
    profile: Option<Vec<u8>>,
}

/// Profiles past this are not what a sidecar sends.
const MAX_PROFILE_BYTES: usize = 256 << 20;
/// Enough of a profile's start to tell it from other answers.
const SNIFF_BYTES: usize = 16;

impl PlainSink<'_> {
    fn accept(&mut self, data: &[u8]) -> Result<(), Failure> {
        let mut data = data;
        if self.written == 0 {
            data = data.trim_ascii_start();
            if data.is_empty() {
                return Ok(());
            }
        }
        if let Some(profile) = self.profile.as_mut() {
            if profile.len() + data.len() > MAX_PROFILE_BYTES {
                return Err(Failure::Stop(
                    "the answer is larger than any heap profile; check BASE_URL and --path"
                        .to_owned(),
                ));
            }
            let before = profile.len();
            profile.extend_from_slice(data);
            // Say early when the answer is plainly something else (a snapshot, a CPU profile,
            // a page), rather than after reading all of it. gzip is pprof's own wrapping.
            if before < SNIFF_BYTES
                && profile.len() >= SNIFF_BYTES
                && !profile.starts_with(&[0x1F, 0x8B])
            {
                let kind = heapgate_profile::sniff(profile);
                if !kind.is_profile() {
                    let what = match kind {
                        heapgate_profile::Kind::Snapshot => "a heap snapshot",
                        heapgate_profile::Kind::CpuProfile => "a CPU profile",
                        _ => "neither a .heapprofile nor a pprof profile",
                    };
                    return Err(Failure::Stop(format!(
                        "the answer is not a heap profile ({what}); check BASE_URL and --path"
                    )));
                }
            }
        } else if self.prefix.len() < SNAPSHOT_PREFIX.len() {
            let take = (SNAPSHOT_PREFIX.len() - self.prefix.len()).min(data.len());
            self.prefix.extend_from_slice(&data[..take]);
            if !SNAPSHOT_PREFIX.starts_with(&self.prefix) {
                return Err(Failure::Stop(
                    "the answer is not a heap snapshot (it does not start with {\"snapshot\":); \
                     check BASE_URL and --path"
                        .to_owned(),
                ));
            }
        }
        if let Some(&byte) = data.trim_ascii_end().last() {
            self.last = Some(byte);
        }
        if let Some(part) = self.part.as_deref_mut() {
            part.write_all(data).map_err(|e| {
                Failure::Stop(format!("cannot write {}: {e}", part.path().display()))
            })?;
        }
        self.written += data.len() as u64;
        Ok(())
    }

    /// Whether what went past is a whole snapshot.
    fn check(&self) -> Result<u64, Failure> {
        if self.written == 0 {
            return Err(Failure::Retry("the answer was empty".to_owned()));
        }
        if let Some(profile) = &self.profile {
            // The whole profile must read back, in either format.
            return match heapgate_profile::parse(profile) {
                Ok(_) => Ok(self.written),
                Err(e @ heapgate_profile::ProfileError::Garbled { .. }) => Err(Failure::Retry(
                    format!("the profile is incomplete or damaged: {e}"),
                )),
                Err(e) => Err(Failure::Stop(format!(
                    "the answer is not a heap profile ({e}); check BASE_URL and --path"
                ))),
            };
        }
        if self.prefix.len() < SNAPSHOT_PREFIX.len() || self.last != Some(b'}') {
            return Err(Failure::Retry(format!(
                "the snapshot ended early, after {} bytes",
                self.written
            )));
        }
        Ok(self.written)
    }
}

impl Write for PlainSink<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        match self.accept(data) {
            Ok(()) => Ok(data.len()),
            Err(failure) => {
                self.failure = Some(failure);
                Err(io::Error::other("refused"))
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The decoder in front of the sink.
enum Decode<'a> {
    Plain(PlainSink<'a>),
    Zstd(zstd::stream::write::Decoder<'static, PlainSink<'a>>),
    Gzip(flate2::write::MultiGzDecoder<PlainSink<'a>>),
}

impl<'a> Decode<'a> {
    fn new(encoding: Encoding, sink: PlainSink<'a>) -> io::Result<Decode<'a>> {
        Ok(match encoding {
            Encoding::Plain => Decode::Plain(sink),
            Encoding::Zstd => Decode::Zstd(zstd::stream::write::Decoder::new(sink)?),
            Encoding::Gzip => Decode::Gzip(flate2::write::MultiGzDecoder::new(sink)),
        })
    }

    fn sink(&mut self) -> &mut PlainSink<'a> {
        match self {
            Decode::Plain(sink) => sink,
            Decode::Zstd(d) => d.get_mut(),
            Decode::Gzip(d) => d.get_mut(),
        }
    }

    fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        match self {
            Decode::Plain(sink) => sink.write_all(data),
            Decode::Zstd(d) => d.write_all(data),
            Decode::Gzip(d) => d.write_all(data),
        }
    }

    /// Ends the stream: an incomplete frame or a bad checksum is an error.
    fn finish(&mut self) -> io::Result<()> {
        match self {
            Decode::Plain(_) => Ok(()),
            Decode::Zstd(d) => d.do_finish(),
            Decode::Gzip(d) => d.try_finish(),
        }
    }

    /// A decoding error as a failure: the sink's own reason if it refused the data.
    fn failure(&mut self, e: &io::Error, wire: u64) -> Failure {
        self.sink().failure.take().unwrap_or_else(|| {
            Failure::Retry(format!(
                "the compressed snapshot is corrupt or cut after {wire} bytes: {e}"
            ))
        })
    }
}

/// Streams the body into `part`: decoded, unless `keep` says to keep the compressed bytes as
/// they came (they are decoded and checked all the same). Succeeds only when the body ended
/// cleanly, decoded completely, and the JSON starts with `{"snapshot":` and ends with `}`.
pub(crate) async fn download(
    response: &mut Response,
    encoding: Encoding,
    keep: bool,
    profile: bool,
    part: &mut Part,
    progress: &mut Progress<'_>,
) -> Result<Downloaded, Failure> {
    let keep = keep && encoding != Encoding::Plain;
    let mut raw_part = None;
    let sink = PlainSink {
        part: if keep {
            raw_part = Some(&mut *part);
            None
        } else {
            Some(&mut *part)
        },
        written: 0,
        prefix: Vec::with_capacity(SNAPSHOT_PREFIX.len()),
        last: None,
        failure: None,
        profile: profile.then(Vec::new),
    };
    let mut decode = Decode::new(encoding, sink)
        .map_err(|e| Failure::Stop(format!("cannot start the decoder: {e}")))?;
    let mut wire = 0_u64;
    let mut receiving = false;
    loop {
        let chunk = match response.chunk().await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => break,
            Err(e) => {
                return Err(Failure::Retry(format!(
                    "transfer cut after {wire} bytes: {}",
                    describe(e)
                )));
            }
        };
        wire += chunk.len() as u64;
        if let Some(raw) = raw_part.as_deref_mut() {
            raw.write_all(&chunk).map_err(|e| {
                Failure::Stop(format!("cannot write {}: {e}", raw.path().display()))
            })?;
        }
        decode
            .write_all(&chunk)
            .map_err(|e| decode.failure(&e, wire))?;
        let plain = decode.sink().written;
        if plain > 0 && !receiving {
            receiving = true;
            progress.receiving(encoding != Encoding::Plain);
        }
        if receiving {
            progress.received(wire, plain);
        }
    }
    decode.finish().map_err(|e| decode.failure(&e, wire))?;
    let plain = decode.sink().check()?;
    Ok(Downloaded { wire, plain })
}

#[cfg(test)]
mod tests {
    use super::*;

    const JSON: &[u8] = br#"{"snapshot":{"meta":{}},"nodes":[],"strings":["}"]}"#;

    fn sink() -> PlainSink<'static> {
        PlainSink {
            part: None,
            written: 0,
            prefix: Vec::new(),
            last: None,
            failure: None,
            profile: None,
        }
    }

    /// Feeds `wire` in small pieces, then finishes and checks, as a download does.
    fn run(encoding: Encoding, wire: &[u8]) -> Result<u64, Failure> {
        let mut decode = Decode::new(encoding, sink()).unwrap();
        for piece in wire.chunks(7) {
            decode.write_all(piece).map_err(|e| decode.failure(&e, 0))?;
        }
        decode.finish().map_err(|e| decode.failure(&e, 0))?;
        decode.sink().check()
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    #[test]
    fn compressed_bodies_decode_and_are_checked() {
        let spaced = [&b"   "[..], JSON].concat();
        let zstd = zstd::encode_all(&spaced[..], 1).unwrap();
        assert_eq!(run(Encoding::Zstd, &zstd).ok(), Some(JSON.len() as u64));
        assert_eq!(
            run(Encoding::Gzip, &gzip(&spaced)).ok(),
            Some(JSON.len() as u64)
        );
        assert_eq!(run(Encoding::Plain, &spaced).ok(), Some(JSON.len() as u64));
    }

    /// A compressed body cut short is never a snapshot, even when the cut lands after a `}`.
    #[test]
    fn a_cut_compressed_body_is_retried() {
        let zstd = zstd::encode_all(JSON, 1).unwrap();
        let gz = gzip(JSON);
        for (encoding, wire) in [(Encoding::Zstd, &zstd), (Encoding::Gzip, &gz)] {
            // Whole content, missing only the trailer (zstd checksum/epilogue, gzip CRC).
            let cut = &wire[..wire.len() - 4];
            assert!(
                matches!(run(encoding, cut), Err(Failure::Retry(_))),
                "{encoding:?}"
            );
        }
    }

    #[test]
    fn a_compressed_non_snapshot_stops() {
        let html = zstd::encode_all(&b"<html>oops</html>"[..], 1).unwrap();
        assert!(matches!(run(Encoding::Zstd, &html), Err(Failure::Stop(_))));
    }

    /// What a `--profile` download accepts: a whole profile in either format; a cut one is
    /// retried; anything else stops, a big one as soon as its start says so.
    #[test]
    fn profile_answers_are_checked_whole() {
        const PROFILE: &[u8] = include_bytes!("../../../profile/tests/data/leak.heapprofile");
        let run_profile = |encoding: Encoding, wire: &[u8]| {
            let mut sink = sink();
            sink.profile = Some(Vec::new());
            let mut decode = Decode::new(encoding, sink).unwrap();
            for piece in wire.chunks(7) {
                decode.write_all(piece).map_err(|e| decode.failure(&e, 0))?;
            }
            decode.finish().map_err(|e| decode.failure(&e, 0))?;
            decode.sink().check()
        };
        let pprof =
            heapgate_profile::pprof::encode(&heapgate_profile::parse(PROFILE).unwrap(), None);
        let big_snapshot = [JSON, &vec![b' '; 1 << 20][..]].concat();
        let cases: Vec<(&str, Encoding, Vec<u8>, &str)> = vec![
            ("heapprofile", Encoding::Plain, PROFILE.to_vec(), "ok"),
            (
                "zstd heapprofile",
                Encoding::Zstd,
                zstd::encode_all(PROFILE, 1).unwrap(),
                "ok",
            ),
            ("pprof", Encoding::Plain, pprof.clone(), "ok"),
            (
                "cut heapprofile",
                Encoding::Plain,
                PROFILE[..PROFILE.len() - 9].to_vec(),
                "retry",
            ),
            (
                "cut pprof",
                Encoding::Plain,
                pprof[..pprof.len() / 2].to_vec(),
                "retry",
            ),
            (
                "snapshot",
                Encoding::Plain,
                big_snapshot,
                "stop: a heap snapshot",
            ),
            (
                "page",
                Encoding::Plain,
                b"<html>not found, sorry</html>".to_vec(),
                "stop: neither",
            ),
        ];
        for (name, encoding, wire, expected) in cases {
            let got = match run_profile(encoding, &wire) {
                Ok(_) => "ok".to_owned(),
                Err(Failure::Retry(_)) => "retry".to_owned(),
                Err(Failure::Stop(m)) => format!("stop: {m}"),
            };
            let want = expected.trim_start_matches("stop: ");
            assert!(
                got == expected || (expected.starts_with("stop") && got.contains(want)),
                "{name}: {got}"
            );
        }
    }
}
