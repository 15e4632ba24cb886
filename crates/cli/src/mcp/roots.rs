//! The operator's `--root`s: the only places a tool call may read.
//!
//! A local path is resolved (symlinks, `.` and `..` included) and must then lie under a resolved
//! root and be a regular file or directory. An `s3://` URL must start with a root's prefix at a
//! `/` boundary, and its key is refused outright when it holds anything a store or a proxy
//! could read as a different key: `.` or `..` segments, empty segments, `%`, `\\` or control
//! characters. Nothing is percent-decoded: `%2e%2e` is refused, not interpreted.

use std::path::{Path, PathBuf};

use heapgate_store::StoreLocation;

/// One `--root`.
#[derive(Clone, Debug)]
pub(crate) enum Root {
    /// A directory, resolved.
    Dir(PathBuf),
    /// `s3://bucket/prefix` (prefix without a trailing `/`, maybe empty).
    S3 { bucket: String, prefix: String },
}

impl Root {
    /// How the root reads in answers and in `list_evidence`.
    pub(crate) fn display(&self) -> String {
        match self {
            Root::Dir(dir) => dir.display().to_string(),
            Root::S3 { bucket, prefix } if prefix.is_empty() => format!("s3://{bucket}"),
            Root::S3 { bucket, prefix } => format!("s3://{bucket}/{prefix}"),
        }
    }
}

/// A location a tool may read: a resolved local path or an `s3://` URL under a root.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Allowed {
    Local(PathBuf),
    S3(String),
}

impl Allowed {
    /// The path the analysis reads (`s3://` URLs are streamed by `stored::inputs`).
    pub(crate) fn path(&self) -> PathBuf {
        match self {
            Allowed::Local(path) => path.clone(),
            Allowed::S3(url) => PathBuf::from(url),
        }
    }

    pub(crate) fn display(&self) -> String {
        match self {
            Allowed::Local(path) => path.display().to_string(),
            Allowed::S3(url) => url.clone(),
        }
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Roots {
    roots: Vec<Root>,
}

impl Roots {
    /// Validates the `--root` values: directories must exist.
    pub(crate) fn new(values: &[String]) -> Result<Roots, String> {
        let mut roots = Vec::with_capacity(values.len());
        for value in values {
            if value.starts_with("s3://") {
                let StoreLocation::S3 { bucket, prefix } =
                    StoreLocation::parse(value).map_err(|e| format!("--root {value}: {e}"))?
                else {
                    return Err(format!("--root {value}: not an s3:// URL"));
                };
                let prefix = prefix.trim_end_matches('/').to_owned();
                if !prefix.is_empty() {
                    check_key(&prefix).map_err(|e| format!("--root {value}: {e}"))?;
                }
                roots.push(Root::S3 { bucket, prefix });
            } else {
                let dir =
                    std::fs::canonicalize(value).map_err(|e| format!("--root {value}: {e}"))?;
                if !dir.is_dir() {
                    return Err(format!("--root {value}: not a directory"));
                }
                roots.push(Root::Dir(dir));
            }
        }
        Ok(Roots { roots })
    }

    pub(crate) fn all(&self) -> &[Root] {
        &self.roots
    }

    /// The first local root, if any.
    pub(crate) fn first_dir(&self) -> Option<&Path> {
        self.roots.iter().find_map(|r| match r {
            Root::Dir(dir) => Some(dir.as_path()),
            Root::S3 { .. } => None,
        })
    }

    /// What the roots are, for refusals: `/srv/evidence, s3://bucket/heap`.
    pub(crate) fn describe(&self) -> String {
        self.roots
            .iter()
            .map(Root::display)
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// `text` if it names something under a root; otherwise the one-line refusal. A relative
    /// path is taken relative to the first local root.
    pub(crate) fn resolve(&self, text: &str) -> Result<Allowed, String> {
        let refused = || {
            format!(
                "{} is outside the roots this server may read ({}); use a path that \
                 list_evidence shows",
                quoted(text),
                self.describe()
            )
        };
        if text.is_empty() {
            return Err("empty path; use a path that list_evidence shows".to_owned());
        }
        if text.chars().any(char::is_control) {
            return Err(refused());
        }
        if let Some(rest) = text.strip_prefix("s3://") {
            let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
            if key.is_empty() || check_key(key).is_err() {
                return Err(refused());
            }
            let under = self.roots.iter().any(|root| match root {
                Root::S3 { bucket: b, prefix } => {
                    b == bucket
                        && (prefix.is_empty()
                            || key
                                .strip_prefix(prefix.as_str())
                                .is_some_and(|tail| tail.starts_with('/')))
                }
                Root::Dir(_) => false,
            });
            return if under {
                Ok(Allowed::S3(text.to_owned()))
            } else {
                Err(refused())
            };
        }
        if text.contains("://") {
            return Err(refused());
        }
        let given = Path::new(text);
        let joined = if given.is_absolute() {
            given.to_owned()
        } else {
            match self.first_dir() {
                Some(dir) => dir.join(given),
                None => return Err(refused()),
            }
        };
        // Resolving follows every symlink, so a link inside a root to a file outside is judged
        // by where it leads.
        let resolved = std::fs::canonicalize(&joined).map_err(|e| {
            if self.lexically_under(&joined) {
                format!("{}: {}", quoted(text), short_io(&e))
            } else {
                refused()
            }
        })?;
        let under = self.roots.iter().any(|root| match root {
            Root::Dir(dir) => resolved.starts_with(dir),
            Root::S3 { .. } => false,
        });
        if !under {
            return Err(refused());
        }
        Ok(Allowed::Local(resolved))
    }

    /// Whether `path` is under a local root by its words alone, with no `..` (to tell "no such
    /// file in your root" from "outside the roots" without resolving).
    fn lexically_under(&self, path: &Path) -> bool {
        !path
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir))
            && self.roots.iter().any(|root| match root {
                Root::Dir(dir) => path.starts_with(dir),
                Root::S3 { .. } => false,
            })
    }
}

/// Refuses keys a store or proxy might read as another key.
fn check_key(key: &str) -> Result<(), String> {
    let bad_char = key.chars().any(|c| c == '%' || c == '\\' || c.is_control());
    let bad_segment = key
        .split('/')
        .any(|s| s.is_empty() || s == "." || s == "..");
    if bad_char || bad_segment {
        return Err("keys with %, \\, empty, . or .. segments are refused".to_owned());
    }
    Ok(())
}

/// `text` in quotes, shortened and with control characters escaped, for a one-line message.
pub(crate) fn quoted(text: &str) -> String {
    let mut out: String = text
        .chars()
        .take(200)
        .flat_map(char::escape_debug)
        .collect();
    if text.chars().count() > 200 {
        out.push('…');
    }
    format!("\"{out}\"")
}

/// An I/O error without the OS error number: `no such file or directory`.
pub(crate) fn short_io(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".to_owned(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roots(dir: &Path) -> Roots {
        Roots::new(&[dir.display().to_string(), "s3://bucket/heap".to_owned()]).unwrap()
    }

    #[test]
    fn paths_under_the_roots_resolve_and_others_are_refused() {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let inside = root.path().join("a.heapsnapshot");
        std::fs::write(&inside, "{}").unwrap();
        std::fs::write(outside.path().join("secret"), "x").unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), root.path().join("link"))
            .unwrap();
        std::os::unix::fs::symlink(outside.path(), root.path().join("dirlink")).unwrap();
        let roots = roots(root.path());
        let canonical = std::fs::canonicalize(&inside).unwrap();
        assert_eq!(
            roots.resolve(inside.to_str().unwrap()),
            Ok(Allowed::Local(canonical.clone()))
        );
        assert_eq!(
            roots.resolve("a.heapsnapshot"),
            Ok(Allowed::Local(canonical))
        );
        let escape = format!("{}/../{}/secret", root.path().display(), {
            outside.path().file_name().unwrap().to_str().unwrap()
        });
        for bad in [
            "/etc/passwd",
            escape.as_str(),
            "../../etc/passwd",
            "link",
            "dirlink/secret",
            "%2e%2e/%2e%2e/etc/passwd",
            "file:///etc/passwd",
            "s3://bucket/other/a",
            "s3://bucket/heapx/a",
            "s3://bucket/heap/../other/a",
            "s3://bucket/heap/%2e%2e/other/a",
            "s3://bucket/heap//a",
            "s3://other/heap/a",
            "a\u{0}b",
        ] {
            let refused = roots.resolve(bad).unwrap_err();
            assert!(
                refused.contains("outside the roots") || refused.contains("no such file"),
                "{bad}: {refused}"
            );
            assert!(!refused.contains('\n'), "{bad}: {refused}");
        }
        assert_eq!(
            roots.resolve("s3://bucket/heap/series/a.heapsnapshot.zst"),
            Ok(Allowed::S3(
                "s3://bucket/heap/series/a.heapsnapshot.zst".to_owned()
            ))
        );
        // A missing file inside a root says so rather than "outside".
        assert!(
            roots
                .resolve("missing")
                .unwrap_err()
                .contains("no such file")
        );
    }
}
