//! Spellings of the snapshot paths that must never reach the app.
//!
//! The app behind the sidecar may have its own snapshot endpoint (the hand-made `/heapdump`
//! route heapgate replaces, or the one `--source upstream` uses). Routers such as Express match
//! paths case-insensitively, ignore a trailing slash and decode percent-escapes, so
//! `/HEAPDUMP/?hash=…` would otherwise slip past the proxy's exact-match snapshot route and make
//! the app take a snapshot around the token check and the one-at-a-time gate.

/// Normalised snapshot paths, refused on the pass-through route.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GuardedPaths {
    normalised: Vec<String>,
}

impl GuardedPaths {
    pub fn new<'a>(paths: impl IntoIterator<Item = &'a str>) -> GuardedPaths {
        let mut normalised: Vec<String> = paths.into_iter().map(normalise).collect();
        normalised.sort();
        normalised.dedup();
        GuardedPaths { normalised }
    }

    /// Whether `path` is a spelling of a guarded path.
    pub fn covers(&self, path: &str) -> bool {
        // Fast path without allocating for the plain spellings of ordinary traffic.
        if !path.contains(['%', ';']) && !path.contains("//") {
            let trimmed = trim_slashes(path);
            return self
                .normalised
                .iter()
                .any(|g| g.eq_ignore_ascii_case(trimmed));
        }
        let candidate = normalise(path);
        self.normalised.contains(&candidate)
    }
}

/// Percent-decoded, lowercased, repeated slashes collapsed, no trailing slash, no `;params`.
fn normalise(path: &str) -> String {
    let decoded = percent_decode(path).to_ascii_lowercase();
    let without_params = decoded.split(';').next().unwrap_or_default();
    let mut out = String::with_capacity(without_params.len());
    for segment in without_params.split('/').filter(|s| !s.is_empty()) {
        out.push('/');
        out.push_str(segment);
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

fn trim_slashes(path: &str) -> &str {
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() { "/" } else { trimmed }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catches_the_spellings_routers_treat_as_equal() {
        let guarded = GuardedPaths::new(["/heapdump", "/debug/Snapshot"]);
        for path in [
            "/heapdump",
            "/heapdump/",
            "/HEAPDUMP",
            "/HeapDump//",
            "//heapdump",
            "/heap%64ump",
            "/heap%44ump",
            "/%68eapdump/",
            "/heapdump;jsessionid=1",
            "/debug/snapshot",
            "/debug//snapshot/",
            "/DEBUG/SNAPSHOT",
        ] {
            assert!(guarded.covers(path), "{path}");
        }
        for path in [
            "/",
            "/heapdumps",
            "/heapdump/x",
            "/heap",
            "/debug",
            "/snapshot",
            "/heap%zzdump",
            "/heapdump%",
        ] {
            assert!(!guarded.covers(path), "{path}");
        }
    }
}
