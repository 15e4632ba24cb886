//! Spellings of the snapshot paths that must never reach the app.
//!
//! The app behind the sidecar may have its own snapshot endpoint (the hand-made `/heapdump`
//! route heapgate replaces, or the one `--source upstream` uses). The proxy's own snapshot route
//! matches one exact spelling, but routers read paths loosely: Express and Koa match case-
//! insensitively with an optional trailing slash, Fastify can decode `%68eapdump`, Hono and any
//! app routing on `new URL(req.url, base).pathname` resolve `/x/../heapdump` and `%2e` dot
//! segments, and the WHATWG URL parser reads `\` as `/`. A spelling the proxy passes through but
//! the app resolves to its snapshot route skips the token, the gate and the task check.
//!
//! So every pass-through target is reduced to its [`canonical`] form — the union of what those
//! routers could make of it — and refused when that form is a guarded path. Refusing a few odd
//! spellings of one path costs nothing; letting one through costs a production snapshot.
//!
//! Apps that decode the whole target before parsing it (`new URL(decodeURIComponent(req.url),
//! base)`, `url.parse(decodeURI(req.url))`) read a decoded `?` or `#` as the end of the path
//! and trim decoded spaces and controls, so the decoded readings are also cut there and trimmed
//! (`/heapdump%3f/x`, `/heapdump%20`). Decoded controls go further: [`GuardedPaths::check`]
//! refuses (400) any path whose decoded form holds a C0 control or DEL, whatever it spells.
//! Parsers disagree about them (the WHATWG parser drops tabs and newlines anywhere, Node's
//! `url.parse` trims controls at the ends, most routers keep them), no URL a browser or client
//! library builds for a resource holds them, and RFC 3986 allows them only escaped, so no real
//! app needs one in a path. A decoded `?` or `#` is not refused: `/tags/c%23` is a real path.
//!
//! The work is linear in the path's length, and bounded: a path that needs resolving (an escape,
//! a dot segment, a `;`, a backslash, an empty segment) longer than [`MAX_RESOLVED_PATH`] is
//! refused (414), as nginx refuses request lines over 8 KiB by default; plain paths of any length
//! take a single pass.

use std::borrow::Cow;

/// Longest path the guard resolves (see the module docs); longer non-plain paths answer 414.
pub const MAX_RESOLVED_PATH: usize = 8 * 1024;

/// What the pass-through route does with a request path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Forward it.
    Pass,
    /// Some spelling of a guarded path: refused as not found.
    Guarded,
    /// Refused before any router could read it.
    Refused(Refusal),
}

/// Why a path is refused outright.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Its decoded form holds a C0 control or DEL (400).
    Control,
    /// It needs resolving and is longer than [`MAX_RESOLVED_PATH`] (414).
    TooLong,
}

impl Refusal {
    pub fn status(self) -> http::StatusCode {
        match self {
            Refusal::Control => http::StatusCode::BAD_REQUEST,
            Refusal::TooLong => http::StatusCode::URI_TOO_LONG,
        }
    }

    /// The answer's body: one line, naming no client text.
    pub fn body(self) -> &'static str {
        match self {
            Refusal::Control => "bad request: control character in the path\n",
            Refusal::TooLong => "uri too long\n",
        }
    }
}

/// Canonical snapshot paths, refused on the pass-through route together with everything below
/// them (an app may mount its handler as a prefix: `app.use('/heapdump', …)`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GuardedPaths {
    canonical: Vec<String>,
    /// With a path prefix on `--upstream`: the prefix, and the guarded paths under it as the app
    /// sees them (a `..` in the target can climb out of the prefix and back in).
    prefixed: Option<(String, Vec<String>)>,
}

impl GuardedPaths {
    pub fn new<'a>(paths: impl IntoIterator<Item = &'a str>) -> GuardedPaths {
        let mut canonical: Vec<String> = paths.into_iter().map(canonical).collect();
        canonical.sort();
        canonical.dedup();
        GuardedPaths {
            canonical,
            prefixed: None,
        }
    }

    /// The same paths, for an app reached under the path `prefix` of the upstream URL (`/` or
    /// empty: none).
    pub fn under_prefix(mut self, prefix: &str) -> GuardedPaths {
        let prefix = prefix.trim_end_matches('/');
        if !prefix.is_empty() {
            let under = self
                .canonical
                .iter()
                .map(|g| canonical(&format!("{prefix}{g}")))
                .collect();
            self.prefixed = Some((prefix.to_owned(), under));
        }
        self
    }

    /// What to do with the request target's `path` (as received; for an absolute-form target,
    /// its path part): refuse it outright, refuse it as a spelling of a guarded path, or pass it.
    pub fn check(&self, path: &str) -> Verdict {
        if is_plain(path) {
            return self.plain_covers(path);
        }
        if path.len() > MAX_RESOLVED_PATH {
            return Verdict::Refused(Refusal::TooLong);
        }
        if has_control(path) {
            return Verdict::Refused(Refusal::Control);
        }
        if self.covers_resolved(path) {
            Verdict::Guarded
        } else {
            Verdict::Pass
        }
    }

    /// Whether the request target's `path` (as received; for an absolute-form target, its path
    /// part) is some spelling of a guarded path or of a path below one, however long.
    pub fn covers(&self, path: &str) -> bool {
        if is_plain(path) {
            return self.plain_covers(path) == Verdict::Guarded;
        }
        self.covers_resolved(path)
    }

    /// Ordinary traffic has nothing to decode or resolve: compare without allocating.
    fn plain_covers(&self, path: &str) -> Verdict {
        let trimmed = path.trim_end_matches('/');
        let trimmed = if trimmed.is_empty() { "/" } else { trimmed };
        if self.canonical.iter().any(|g| within(trimmed, g)) {
            Verdict::Guarded
        } else {
            Verdict::Pass
        }
    }

    fn covers_resolved(&self, path: &str) -> bool {
        let hit = |candidates: Vec<String>, guarded: &[String]| {
            candidates
                .iter()
                .any(|c| guarded.iter().any(|g| within(c, g)))
        };
        hit(resolutions(path), &self.canonical)
            || self
                .prefixed
                .as_ref()
                .is_some_and(|(prefix, under)| hit(resolutions(&format!("{prefix}{path}")), under))
    }
}

/// `path` is `guarded` or below it, ASCII case ignored.
fn within(path: &str, guarded: &str) -> bool {
    let (p, g) = (path.as_bytes(), guarded.as_bytes());
    p.len() >= g.len()
        && p[..g.len()].eq_ignore_ascii_case(g)
        && (p.len() == g.len() || p[g.len()] == b'/' || g == b"/")
}

/// Printable ASCII, with no escape, backslash, parameter, fragment, empty segment or dot
/// segment: every resolution would only lowercase it and trim trailing slashes.
fn is_plain(path: &str) -> bool {
    let mut previous = 0;
    for &byte in path.as_bytes() {
        let special = !byte.is_ascii_graphic()
            || matches!(byte, b'%' | b'\\' | b';' | b'#')
            || (previous == b'/' && matches!(byte, b'/' | b'.'));
        if special {
            return false;
        }
        previous = byte;
    }
    true
}

/// Whether `path`, raw or percent-decoded once, holds a C0 control or DEL.
fn has_control(path: &str) -> bool {
    let is_control = |b: u8| b < b' ' || b == 0x7f;
    let bytes = path.as_bytes();
    bytes.iter().enumerate().any(|(i, &b)| {
        is_control(b)
            || (b == b'%'
                && bytes.get(i + 1..i + 3).is_some_and(|hex| {
                    matches!(hex[0], b'0' | b'1') && hex[1].is_ascii_hexdigit()
                        || hex[0] == b'7' && hex[1].eq_ignore_ascii_case(&b'f')
                }))
    })
}

/// A decoded path as an app that decodes the whole target before parsing it reads it: parsers
/// trim spaces (and controls, refused before this) at both ends, and end the path at a `?` or
/// `#` (`/heapdump%3f/../x` decodes to `/heapdump?/../x`, whose path is `/heapdump`).
fn reparsed(decoded: &str) -> &str {
    let is_space = |c: char| c <= ' ' || c.is_whitespace() || c == '\u{feff}';
    let trimmed = decoded.trim_matches(is_space);
    let cut = trimmed
        .find(['?', '#'])
        .map_or(trimmed, |end| &trimmed[..end]);
    cut.trim_matches(is_space)
}

/// The canonical spelling of a guarded path: `/`-separated, lowercase, no empty, `.` or `..`
/// segments, no trailing slash.
pub(crate) fn canonical(path: &str) -> String {
    resolve(
        &percent_decode(path),
        Empties::DroppedFirst,
        Params::Dropped,
        Dots::Resolved,
    )
}

/// Every path a common router could resolve `path` to, in canonical spelling (with repeats). Routers differ in
/// the order of their steps, and the orders give different answers (`/heapdump//..` is `/` when
/// empty segments are merged first, as nginx does, and `/heapdump` when `..` removes the empty
/// segment first, as the WHATWG parser does), so the guard checks each reading:
///
/// - percent-decoded once, before resolving (so `%2e` is a dot and `%2f` a slash), or after it
///   (so only the `%2e` forms count as dots while resolving);
/// - empty segments merged before, or after, dot segments are resolved;
/// - a `;` starting a segment's parameters, ending the path, or an ordinary character;
/// - dot segments resolved, or (for handlers mounted on a prefix) matched as they are;
/// - the whole target as a path, or (when it starts with two slashes) as a scheme-relative URL
///   whose path follows the host: `//x/heapdump` is `/heapdump` to `new URL(target, base)`.
///
/// Each reading also reads `\` as `/` (WHATWG parsing of http URLs), lowercases (case-insensitive
/// routers), ignores trailing slashes, and never lets `..` climb above the root (RFC 3986
/// §5.2.4). Bytes that do not decode to UTF-8 are replaced, which cannot turn a non-guarded path
/// into a guarded one.
pub(crate) fn resolutions(path: &str) -> Vec<String> {
    // As the WHATWG parser does first: no leading or trailing controls or spaces, no tabs or
    // newlines anywhere. And a fragment is never part of the path a router sees.
    let path = path
        .trim_matches(|c: char| c <= ' ')
        .replace(['\t', '\n', '\r'], "");
    let path = path.split('#').next().unwrap_or_default();
    let mut found = Vec::with_capacity(32);
    for path in [Some(path), scheme_relative_path(path)]
        .into_iter()
        .flatten()
    {
        let decoded = percent_decode(path);
        // Readings that cannot differ for this path are made once: `;` readings without a `;`,
        // empty-segment orders without an empty segment, decoding before or after resolving
        // without an escape. So the cost of an odd path is a few passes over it, not thirty.
        let escaped = path.contains('%');
        let params: &[Params] = if decoded.contains(';') {
            &[Params::Dropped, Params::Kept, Params::EndPath]
        } else {
            &[Params::Kept]
        };
        let has_empty = |text: &str| {
            let bytes = text.as_bytes();
            bytes
                .windows(2)
                .any(|w| matches!(w[0], b'/' | b'\\') && matches!(w[1], b'/' | b'\\'))
        };
        let empties: &[Empties] = if has_empty(path) || has_empty(&decoded) {
            &[Empties::DroppedFirst, Empties::KeptWhileResolving]
        } else {
            &[Empties::DroppedFirst]
        };
        // Decoded as a whole by the app, then parsed: cut and trimmed, and a `%2e` left by the
        // decoding (`%252e`) is a dot to the WHATWG parser.
        // A decoded target that starts with two slashes is a scheme-relative URL to such an
        // app: `/%2f..x%5cheapdump` decodes to `//..x\heapdump`, whose path is `/heapdump`.
        let reread = reparsed(&decoded);
        let reread_dots = dots_decoded(reread);
        let relative = scheme_relative_path(reread);
        let relative_dots = relative.map(dots_decoded);
        let decoded_readings = [
            Some(&*decoded),
            (reread != decoded).then_some(reread),
            (reread_dots != reread).then_some(&*reread_dots),
            relative,
            relative_dots
                .as_deref()
                .filter(|dots| Some(*dots) != relative),
        ];
        for decoded in decoded_readings.into_iter().flatten() {
            // A prefix-mounted handler matches before any dot segment is resolved.
            found.push(resolve(
                decoded,
                Empties::DroppedFirst,
                Params::Kept,
                Dots::Kept,
            ));
            for &empties in empties {
                for &params in params {
                    found.push(resolve(decoded, empties, params, Dots::Resolved));
                }
            }
        }
        if !escaped {
            continue;
        }
        for &empties in empties {
            for &params in params {
                // A router that decodes after routing still trims and compares
                // case-insensitively.
                let resolved = resolve(&dots_decoded(path), empties, params, Dots::Resolved);
                let decoded = percent_decode(&resolved);
                let reread = reparsed(&decoded);
                for decoded in [Some(&*decoded), (reread != decoded).then_some(reread)]
                    .into_iter()
                    .flatten()
                {
                    found.push(resolve(
                        decoded,
                        Empties::DroppedFirst,
                        params,
                        Dots::Resolved,
                    ));
                }
            }
        }
    }
    found
}

/// The path part of `path` read as a scheme-relative URL, as `new URL(req.url, base)` reads a
/// target that starts with two slashes (or backslashes): `//host/heapdump` has the path
/// `/heapdump`.
fn scheme_relative_path(path: &str) -> Option<&str> {
    let is_slash = |c: char| c == '/' || c == '\\';
    let rest = path.strip_prefix(is_slash)?.strip_prefix(is_slash)?;
    let rest = rest.trim_start_matches(is_slash);
    let end = rest
        .find(|c: char| is_slash(c) || c == '?')
        .unwrap_or(rest.len());
    Some(&rest[end..]).filter(|p| !p.is_empty())
}

/// What a `;` means: the start of a segment's parameters (servlet containers: `/x/..;/` is
/// `/`), an ordinary character (the WHATWG parser: a segment named `..;`), or the end of the
/// path (Fastify's `useSemicolonDelimiter`: `/heapdump;/x` is `/heapdump`).
#[derive(Clone, Copy)]
enum Params {
    Dropped,
    Kept,
    EndPath,
}

/// Whether `.` and `..` segments are resolved, or matched as they are (prefix mounts).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Dots {
    Resolved,
    Kept,
}

/// When empty segments (`//`) disappear relative to dot-segment resolution.
#[derive(Clone, Copy)]
enum Empties {
    DroppedFirst,
    KeptWhileResolving,
}

/// Resolves dot segments and normalises `path` (already decoded as far as the reading wants).
fn resolve(path: &str, empties: Empties, params: Params, dots: Dots) -> String {
    let path = match params {
        Params::EndPath => path.split(';').next().unwrap_or_default(),
        Params::Dropped | Params::Kept => path,
    };
    let lowered = path.replace('\\', "/").to_lowercase();
    let mut segments: Vec<&str> = Vec::new();
    // The text before the first `/` is not a segment of an origin-form path.
    for segment in lowered.split('/').skip(1) {
        let segment = match params {
            Params::Dropped => segment.split(';').next().unwrap_or_default(),
            Params::Kept | Params::EndPath => segment,
        };
        match (segment, empties) {
            ("", Empties::DroppedFirst) => {}
            ("." | "..", _) if dots == Dots::Kept => segments.push(segment),
            (".", _) => {}
            ("..", _) => {
                segments.pop();
            }
            _ => segments.push(segment),
        }
    }
    let mut out = String::with_capacity(lowered.len());
    for segment in segments.into_iter().filter(|s| !s.is_empty()) {
        out.push('/');
        out.push_str(segment);
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

/// `path` with only the escaped dots (`%2e`, `%2E`) decoded, as the WHATWG parser reads them
/// while resolving.
fn dots_decoded(path: &str) -> Cow<'_, str> {
    if !path.contains("%2") {
        return Cow::Borrowed(path);
    }
    Cow::Owned(path.replace("%2e", ".").replace("%2E", "."))
}

fn percent_decode(text: &str) -> Cow<'_, str> {
    if !text.contains('%') {
        return Cow::Borrowed(text);
    }
    match percent_encoding::percent_decode_str(text).decode_utf8_lossy() {
        Cow::Borrowed(_) => Cow::Borrowed(text),
        Cow::Owned(decoded) => Cow::Owned(decoded),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (spelling, canonical form) for the spellings real routers were seen to resolve.
    const CANONICAL: &[(&str, &str)] = &[
        ("/heapdump", "/heapdump"),
        ("/heapdump/", "/heapdump"),
        ("/HEAPDUMP", "/heapdump"),
        ("/HeapDump//", "/heapdump"),
        ("//heapdump", "/heapdump"),
        ("/heap%64ump", "/heapdump"),
        ("/heap%44ump", "/heapdump"),
        ("/%68eapdump/", "/heapdump"),
        ("/heapdump;jsessionid=1", "/heapdump"),
        ("/x/../heapdump", "/heapdump"),
        ("/./heapdump", "/heapdump"),
        ("/%2e/heapdump", "/heapdump"),
        ("/%2E/heapdump", "/heapdump"),
        ("/.%2e/heapdump", "/heapdump"),
        ("/x/%2e%2e/heapdump", "/heapdump"),
        ("/x/%2E./heapdump", "/heapdump"),
        ("/heapdump/.", "/heapdump"),
        ("/heapdump/x/..", "/heapdump"),
        ("/heapdump\\", "/heapdump"),
        ("\\heapdump", "/heapdump"),
        ("/x\\..\\heapdump", "/heapdump"),
        ("/x%5c..%5cheapdump", "/heapdump"),
        ("/x%2f..%2fheapdump", "/heapdump"),
        ("/../../heapdump", "/heapdump"),
        ("/x;y/../heapdump", "/heapdump"),
        ("/x/..;/heapdump", "/heapdump"),
        ("/", "/"),
        ("/..", "/"),
        ("/heapdumps", "/heapdumps"),
        ("/heapdump/x", "/heapdump/x"),
        ("/heap%zzdump", "/heap%zzdump"),
        ("/heapdump%", "/heapdump%"),
        ("/%252e/heapdump", "/%2e/heapdump"),
        ("/caf%C3%A9", "/café"),
        ("/%ff", "/\u{fffd}"),
    ];

    #[test]
    fn canonical_forms() {
        for (spelling, expected) in CANONICAL {
            assert_eq!(canonical(spelling), *expected, "{spelling}");
        }
    }

    #[test]
    fn catches_the_spellings_routers_treat_as_equal() {
        let guarded = GuardedPaths::new(["/heapdump", "/debug/Snapshot"]);
        for (spelling, form) in CANONICAL {
            // An app that decodes the whole target, then parses it, reads `%252e` as a dot.
            let decode_first = *spelling == "/%252e/heapdump";
            let below = *form == "/heapdump" || form.starts_with("/heapdump/") || decode_first;
            assert_eq!(guarded.covers(spelling), below, "{spelling}");
        }
        for path in [
            "/heapdump#x",
            "/x/../heapdump#x",
            "//x/heapdump",
            "///x/heapdump/",
            "//heapdump/heapdump",
            "/\\x/heapdump",
            "/heapdump//.//..",
            "/heapdump//..",
            "/heapdump/x//../..",
            "/debug/snapshot",
            "/debug//snapshot/",
            "/DEBUG/SNAPSHOT",
            "/debug/x/../snapshot",
            "/debug\\snapshot",
        ] {
            assert!(guarded.covers(path), "{path}");
        }
        // Fastify's `;` ends the path; an Express prefix mount sees `/heapdump/..` as its own.
        for path in [
            "/heapdump;/x",
            "/HEAPDUMP;a/b",
            "/%68eapdump;/x",
            "/heapdump;x/../..",
            "/heapdump/x",
            "/heapdump/latest.heapsnapshot",
            "/heapdump/..",
            "/heapdump/%2e%2e",
            "/debug/snapshot/x",
        ] {
            assert!(guarded.covers(path), "{path}");
        }
        for path in [
            "/debug",
            "/snapshot",
            "/debug.snapshot",
            "/heapdumps/x",
            "/x;/heapdumpx",
        ] {
            assert!(!guarded.covers(path), "{path}");
        }
    }

    /// Issue 21: apps that decode the whole target before parsing it (`new URL(
    /// decodeURIComponent(req.url), base)`, `url.parse(decodeURI(req.url))`) end the path at a
    /// decoded `?` or `#` and trim decoded spaces and controls.
    #[test]
    fn decode_first_readings_are_cut_and_trimmed_and_controls_refused() {
        let guarded = GuardedPaths::new(["/heapdump"]);
        for path in [
            "/heapdump%3f",
            "/heapdump%3F",
            "/heapdump%23",
            "/heapdump%3f/../x",
            "/x/../heapdump%3f",
            "/heapdump%23/x",
            "/heapdump%20",
            "/heapdump%20%20",
            "/HEAP%64UMP%3Fhash=x",
            "/heapdump%c2%a0",
            "/x/..%2fheapdump%3f",
            "/x/%252e%252e/heapdump",
            "/%2f%2E%2eheap%64umpheapdump%5cheapdump",
            "/%2fhost/heapdump",
            "/%5c%5chost%2fheapdump",
        ] {
            assert_eq!(guarded.check(path), Verdict::Guarded, "{path}");
        }
        for path in [
            "/heap%09dump",
            "/heap%0adump",
            "/hea%0dpdump",
            "/heapdump%00",
            "/heapdump%1f",
            "/heapdump%1F",
            "/heapdump%7f",
            "/anything%00",
            "/x%0A",
        ] {
            assert_eq!(
                guarded.check(path),
                Verdict::Refused(Refusal::Control),
                "{path}"
            );
        }
        // Real paths with a decoded `?`, `#` or space elsewhere still pass.
        for path in [
            "/tags/c%23",
            "/files/a%20b.txt",
            "/redirect/https%3A%2F%2Fexample.com%2Fx%3Fa%3D1",
            "/heapdumps%3f",
            "/%2509",
        ] {
            assert_eq!(guarded.check(path), Verdict::Pass, "{path}");
        }
    }

    /// Issue 21, re-run: an escaped slash or backslash after the first `/` decodes to a
    /// scheme-relative target (`/%2fx/heapdump` → `//x/heapdump`), whose path to `new URL(
    /// decodeURIComponent(req.url), base)` (or, for `%5c`, `decodeURI`) is `/heapdump`, with or
    /// without a decoded `?`, `#` or space after it.
    #[test]
    fn decoded_scheme_relative_targets_are_guarded() {
        let guarded = GuardedPaths::new(["/heapdump"]);
        let spellings = crate::testing::decoded_scheme_relative_spellings();
        assert_eq!(spellings.len(), 63);
        for path in spellings {
            assert_ne!(guarded.check(&path), Verdict::Pass, "{path}");
        }
    }

    /// Issue 21: the guard's work is bounded. A path that needs resolving is refused past
    /// `MAX_RESOLVED_PATH`; a plain one of any length takes the single pass.
    #[test]
    fn long_odd_paths_are_refused_and_long_plain_ones_pass() {
        let guarded = GuardedPaths::new(["/heapdump"]);
        let slashes = "/".repeat(60_000);
        assert_eq!(guarded.check(&slashes), Verdict::Refused(Refusal::TooLong));
        let escapes = format!("/{}", "%41".repeat(MAX_RESOLVED_PATH / 3 + 1));
        assert_eq!(guarded.check(&escapes), Verdict::Refused(Refusal::TooLong));
        let at_limit = format!("/{}", "a/".repeat((MAX_RESOLVED_PATH - 3) / 2)) + "%41";
        assert!(at_limit.len() <= MAX_RESOLVED_PATH);
        assert_eq!(guarded.check(&at_limit), Verdict::Pass);
        let plain = format!("/{}", "a/b".repeat(20_000));
        assert_eq!(guarded.check(&plain), Verdict::Pass);
        // Readings that cannot differ are made once: a path of slashes is read a few times,
        // not thirty.
        assert!(resolutions(&"/".repeat(100)).len() <= 6);
    }

    /// The fast path agrees with the full rule on the paths it takes.
    #[test]
    fn plain_paths_take_the_fast_path_and_agree() {
        let guarded = GuardedPaths::new(["/heapdump"]);
        for path in [
            "/",
            "/heapdump",
            "/HEAPDUMP/",
            "/static/app.js",
            "/a/b.c/d",
            "/heapdump.js",
        ] {
            assert!(is_plain(path), "{path}");
            let form = canonical(path);
            let below = form == "/heapdump" || form.starts_with("/heapdump/");
            assert_eq!(guarded.covers(path), below, "{path}");
        }
    }

    /// With `--upstream http://app/api`, `..` can climb out of the prefix and back in.
    #[test]
    fn a_path_prefix_on_the_upstream_is_guarded_too() {
        let guarded = GuardedPaths::new(["/heapdump"]).under_prefix("/api/");
        for path in [
            "/../api/heapdump",
            "/%2e%2e/api/heapdump",
            "/x/../../api/heapdump/",
        ] {
            assert!(guarded.covers(path), "{path}");
        }
        for path in ["/api/heapdump/../x", "/../api/other", "/x"] {
            assert!(!guarded.covers(path), "{path}");
        }
        assert_eq!(
            GuardedPaths::new(["/h"]).under_prefix("/"),
            GuardedPaths::new(["/h"])
        );
    }

    /// WHATWG URL resolution (the `url` crate, as `new URL(path, base)` in Node) never yields a
    /// guarded path that `covers` misses, over generated spellings.
    #[test]
    fn whatwg_resolution_never_escapes_the_guard() {
        let guarded = GuardedPaths::new(["/heapdump"]);
        let base = url::Url::parse("http://app.internal/").unwrap();
        let pieces = [
            "heapdump",
            "HeapDump",
            "%68eapdump",
            "heap%64ump",
            "x",
            ".",
            "..",
            "%2e",
            "%2E%2e",
            ".%2e",
            "",
            ";a=1",
            "..;",
        ];
        let separators = ["/", "\\", "%2f", "%5C", "//"];
        let mut checked = 0;
        for a in pieces {
            for b in pieces {
                for c in pieces {
                    for s in separators {
                        let path = format!("/{a}{s}{b}{s}{c}");
                        let Ok(url) = base.join(&path) else { continue };
                        let resolved = percent_decode(url.path()).to_lowercase();
                        let resolved = resolved.trim_end_matches('/');
                        if resolved == "/heapdump" {
                            assert!(guarded.covers(&path), "{path} resolves to {}", url.path());
                            checked += 1;
                        }
                    }
                }
            }
        }
        assert!(checked > 100, "only {checked} guarded spellings generated");
    }
}
