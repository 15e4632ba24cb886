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

use std::borrow::Cow;

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

    /// Whether the request target's `path` (as received; for an absolute-form target, its path
    /// part) is some spelling of a guarded path or of a path below one.
    pub fn covers(&self, path: &str) -> bool {
        // Ordinary traffic has nothing to decode or resolve: compare without allocating.
        if is_plain(path) {
            let trimmed = path.trim_end_matches('/');
            let trimmed = if trimmed.is_empty() { "/" } else { trimmed };
            return self.canonical.iter().any(|g| within(trimmed, g));
        }
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
        // A prefix-mounted handler matches before any dot segment is resolved.
        found.push(resolve(
            &decoded,
            Empties::DroppedFirst,
            Params::Kept,
            Dots::Kept,
        ));
        for empties in [Empties::DroppedFirst, Empties::KeptWhileResolving] {
            for params in [Params::Dropped, Params::Kept, Params::EndPath] {
                found.push(resolve(&decoded, empties, params, Dots::Resolved));
                // A router that decodes after routing still trims and compares
                // case-insensitively.
                let resolved = resolve(&dots_decoded(path), empties, params, Dots::Resolved);
                found.push(resolve(
                    &percent_decode(&resolved),
                    Empties::DroppedFirst,
                    params,
                    Dots::Resolved,
                ));
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
            let below = *form == "/heapdump" || form.starts_with("/heapdump/");
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
