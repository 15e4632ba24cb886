//! The secret flags and where each source ranks.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::Args;
use heapgate_token::{Key, Keys};

/// Secrets shorter than this draw a warning: a short secret can be brute-forced offline from a
/// single token.
pub const MIN_RECOMMENDED_LEN: usize = 16;

/// The secret flags, the same for every heapgate binary.
#[derive(Debug, Clone, Default, Args)]
pub struct SecretArgs {
    /// Read a secret from PATH: the file's bytes minus one trailing newline (\n or \r\n).
    /// Repeat to rotate keys: the first file signs, every file verifies. Takes precedence over
    /// HEAPGATE_SECRET and --secret. The env var takes a comma-separated list of paths.
    #[arg(
        long,
        global = true,
        value_name = "PATH",
        env = "HEAPGATE_SECRET_FILE",
        value_delimiter = ','
    )]
    pub secret_file: Vec<PathBuf>,

    /// The secret itself. Discouraged: argv is visible to other users of the machine (ps, /proc),
    /// so a warning is printed. Used only when neither --secret-file nor HEAPGATE_SECRET is set.
    #[arg(long, global = true, value_name = "SECRET")]
    pub secret: Option<String>,
}

/// Why no usable key set could be built. Messages name the source, never the secret.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyLoadError {
    /// No source was given at all.
    #[error("no secret: pass --secret-file PATH or set HEAPGATE_SECRET")]
    Missing,
    /// A secret file could not be read.
    #[error("cannot read secret file {path}: {reason}")]
    Unreadable { path: PathBuf, reason: String },
    /// A source yielded zero bytes.
    #[error("{0} is empty")]
    Empty(String),
}

/// Keys loaded, plus one-line warnings for the user.
#[derive(Debug)]
pub struct LoadedKeys {
    pub keys: Keys,
    pub warnings: Vec<String>,
}

/// Builds the key set from the flags, reading `HEAPGATE_SECRET` through `env` (a parameter, so
/// tests need not touch the process environment).
pub fn load(
    args: &SecretArgs,
    env: impl Fn(&str) -> Option<OsString>,
) -> Result<LoadedKeys, KeyLoadError> {
    let mut warnings = Vec::new();
    let env_secret = env("HEAPGATE_SECRET").filter(|s| !s.is_empty());
    let secrets: Vec<(String, Vec<u8>)> = if !args.secret_file.is_empty() {
        if env_secret.is_some() {
            warnings.push("HEAPGATE_SECRET ignored: --secret-file takes precedence".to_owned());
        }
        if args.secret.is_some() {
            warnings.push("--secret ignored: --secret-file takes precedence".to_owned());
        }
        args.secret_file
            .iter()
            .map(|path| {
                Ok((
                    format!("secret file {}", path.display()),
                    read_secret_file(path)?,
                ))
            })
            .collect::<Result<_, KeyLoadError>>()?
    } else if let Some(secret) = env_secret {
        if args.secret.is_some() {
            warnings.push("--secret ignored: HEAPGATE_SECRET takes precedence".to_owned());
        }
        vec![("HEAPGATE_SECRET".to_owned(), os_bytes(secret))]
    } else if let Some(secret) = &args.secret {
        warnings.push(
            "--secret is visible to other users of this machine (ps, /proc); \
             prefer --secret-file or HEAPGATE_SECRET"
                .to_owned(),
        );
        vec![("--secret".to_owned(), secret.clone().into_bytes())]
    } else {
        return Err(KeyLoadError::Missing);
    };

    let mut keys = Vec::with_capacity(secrets.len());
    for (source, secret) in secrets {
        let key = Key::new(&secret).map_err(|_| KeyLoadError::Empty(source.clone()))?;
        if secret.len() < MIN_RECOMMENDED_LEN {
            warnings.push(format!(
                "{source} is shorter than {MIN_RECOMMENDED_LEN} bytes; use a long random secret"
            ));
        }
        keys.push(key);
    }
    let keys = Keys::new(keys).map_err(|_| KeyLoadError::Missing)?;
    Ok(LoadedKeys { keys, warnings })
}

/// The file's bytes minus one trailing `\n` or `\r\n` (what `echo` or an editor adds).
fn read_secret_file(path: &Path) -> Result<Vec<u8>, KeyLoadError> {
    let mut bytes = std::fs::read(path).map_err(|e| KeyLoadError::Unreadable {
        path: path.to_owned(),
        reason: io_reason(&e),
    })?;
    if bytes.ends_with(b"\r\n") {
        bytes.truncate(bytes.len() - 2);
    } else if bytes.ends_with(b"\n") {
        bytes.truncate(bytes.len() - 1);
    }
    Ok(bytes)
}

/// An I/O error's reason without the "(os error N)" suffix.
fn io_reason(e: &std::io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error") {
        Some(end) => text[..end].to_owned(),
        None => text,
    }
}

#[cfg(unix)]
fn os_bytes(s: OsString) -> Vec<u8> {
    use std::os::unix::ffi::OsStringExt;
    s.into_vec()
}

#[cfg(not(unix))]
fn os_bytes(s: OsString) -> Vec<u8> {
    s.to_string_lossy().into_owned().into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<OsString> {
        None
    }

    fn file(content: &[u8]) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), content).unwrap();
        f
    }

    fn with_files(files: &[&tempfile::NamedTempFile]) -> SecretArgs {
        SecretArgs {
            secret_file: files.iter().map(|f| f.path().to_owned()).collect(),
            secret: None,
        }
    }

    #[test]
    fn strips_exactly_one_trailing_newline() {
        for (content, expected) in [
            (&b"0123456789abcdef\n"[..], &b"0123456789abcdef"[..]),
            (b"0123456789abcdef\r\n", b"0123456789abcdef"),
            (b"0123456789abcdef\n\n", b"0123456789abcdef\n"),
            (b"0123456789abcdef", b"0123456789abcdef"),
        ] {
            assert_eq!(read_secret_file(file(content).path()).unwrap(), expected);
        }
    }

    #[test]
    fn files_win_and_say_what_they_override() {
        let f = file(b"0123456789abcdef\n");
        let args = SecretArgs {
            secret: Some("from-argv-000000".to_owned()),
            ..with_files(&[&f])
        };
        let loaded = load(&args, |_| Some("from-env-0000000".into())).unwrap();
        assert_eq!(loaded.keys.len(), 1);
        assert_eq!(loaded.warnings.len(), 2, "{:?}", loaded.warnings);
    }

    #[test]
    fn argv_secret_warns() {
        let args = SecretArgs {
            secret: Some("a-long-enough-secret".to_owned()),
            ..SecretArgs::default()
        };
        let loaded = load(&args, no_env).unwrap();
        assert!(loaded.warnings[0].contains("visible to other users"));
    }

    #[test]
    fn short_secret_warns_without_revealing_it() {
        let loaded = load(&SecretArgs::default(), |_| Some("tiny".into())).unwrap();
        assert_eq!(loaded.warnings.len(), 1);
        assert!(!loaded.warnings[0].contains("tiny"));
    }

    #[test]
    fn empty_and_missing_are_errors() {
        assert_eq!(
            load(&SecretArgs::default(), no_env).unwrap_err(),
            KeyLoadError::Missing
        );
        let empty = file(b"\n");
        assert!(matches!(
            load(&with_files(&[&empty]), no_env).unwrap_err(),
            KeyLoadError::Empty(_)
        ));
        let args = SecretArgs {
            secret: Some(String::new()),
            ..SecretArgs::default()
        };
        assert!(matches!(
            load(&args, no_env).unwrap_err(),
            KeyLoadError::Empty(_)
        ));
        let gone = SecretArgs {
            secret_file: vec!["/nonexistent/heapgate-secret".into()],
            secret: None,
        };
        let err = load(&gone, no_env).unwrap_err().to_string();
        assert_eq!(
            err,
            "cannot read secret file /nonexistent/heapgate-secret: No such file or directory"
        );
    }

    #[test]
    fn rotation_keeps_file_order() {
        let (a, b) = (file(b"first-secret-0000"), file(b"second-secret-000"));
        let loaded = load(&with_files(&[&a, &b]), no_env).unwrap();
        assert_eq!(loaded.keys.len(), 2);
        assert!(loaded.warnings.is_empty());
    }
}
