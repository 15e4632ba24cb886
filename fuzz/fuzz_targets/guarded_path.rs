//! The pass-through guard on arbitrary request paths: never panics, and no path that a router
//! could resolve to the snapshot path is passed through. "A router" is read in ways that do not
//! share code with the guard: the WHATWG URL parser (the `url` crate, as Node's `new URL`), a
//! decode-then-resolve reading done here by hand, and an app that decodes the whole target
//! before parsing it (`new URL(decodeURIComponent(req.url), base)`), which reads a decoded `?`
//! or `#` as the end of the path and trims decoded spaces and controls.
#![no_main]

use heapgate_proxy::testing::{GuardedPaths, MAX_RESOLVED_PATH, Refusal, Verdict};
use libfuzzer_sys::fuzz_target;

const GUARDED: &str = "/heapdump";

fuzz_target!(|data: &[u8]| {
    let Ok(target) = std::str::from_utf8(data) else { return };
    // What an HTTP/1.1 request target can hold: hyper refuses controls and spaces.
    if !target.starts_with(['/', '\\']) || target.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return;
    }
    // A fragment never travels (the `http` crate drops it, as browsers never send one); the
    // proxy guards the path part of the rest, and the app's router sees all of it.
    let target = target.split('#').next().unwrap_or_default();
    let path = target.split('?').next().unwrap_or_default();
    let guard = GuardedPaths::new([GUARDED]);
    let verdict = guard.check(path);
    let covered = verdict != Verdict::Pass;
    // Refusals are exactly the documented ones.
    if let Verdict::Refused(why) = verdict {
        let decoded = decode(path);
        match why {
            Refusal::TooLong => assert!(path.len() > MAX_RESOLVED_PATH, "{path:?}"),
            Refusal::Control => assert!(
                decoded.chars().any(|c| c < ' ' || c == '\u{7f}'),
                "{path:?} refused without a decoded control"
            ),
        }
    }
    let base = url::Url::parse("http://app.internal/").expect("base URL");
    if let Ok(url) = base.join(target) {
        if loosely_equal(&decode(url.path()), GUARDED) {
            assert!(covered, "{path:?} resolves (WHATWG) to {:?}", url.path());
        }
    }
    if loosely_equal(&resolve(&decode(path)), GUARDED) {
        assert!(covered, "{path:?} resolves (decode, dots) to the guarded path");
    }
    // Decode first, then parse: the decoded `?` or `#` ends the path.
    if let Ok(url) = base.join(&decode(target)) {
        if loosely_equal(&decode(url.path()), GUARDED) {
            assert!(covered, "{target:?} decoded, then parsed (WHATWG), is {:?}", url.path());
        }
    }
});

/// Case-insensitive, trailing slashes ignored: how Express, Koa and Fastify compare.
fn loosely_equal(path: &str, guarded: &str) -> bool {
    let trimmed = path.trim_end_matches('/');
    trimmed.to_lowercase() == guarded
}

/// One round of percent-decoding.
fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = |b: u8| (b as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Backslashes as slashes, `;params` dropped, empty and `.` segments dropped, `..` resolved.
fn resolve(path: &str) -> String {
    let mut kept: Vec<&str> = Vec::new();
    for segment in path.split(['/', '\\']) {
        match segment.split(';').next().unwrap_or("") {
            "" | "." => {}
            ".." => {
                kept.pop();
            }
            other => kept.push(other),
        }
    }
    format!("/{}", kept.join("/"))
}
