//! Where a snapshot goes: its file name, the `.part` file it is written to, and the final file
//! it becomes only once complete. Nothing here ever replaces an existing file.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

/// What every V8 heap snapshot starts with (after whitespace).
pub(crate) const SNAPSHOT_PREFIX: &[u8] = br#"{"snapshot":"#;
/// Longest file name kept from the server, in bytes.
const MAX_NAME: usize = 200;
/// How many `-N` suffixes are tried before giving up on a name.
const MAX_SUFFIX: u32 = 9999;

/// The `filename` parameter of a `Content-Disposition` value (quoted or not, backslash escapes
/// undone); `filename*` is ignored.
pub(crate) fn disposition_filename(value: &str) -> Option<String> {
    let mut rest = value;
    loop {
        // Skip to the next parameter: past a `;` that is outside quotes.
        let semi = find_unquoted(rest, ';')?;
        rest = &rest[semi + 1..];
        let next = find_unquoted(rest, ';');
        let Some(eq) = rest
            .find('=')
            .filter(|eq| next.is_none_or(|next| *eq < next))
        else {
            continue; // a parameter without a value
        };
        let (name, after) = (&rest[..eq], rest[eq + 1..].trim_start());
        let (parsed, consumed) = if let Some(quoted) = after.strip_prefix('"') {
            let mut out = String::new();
            let mut chars = quoted.char_indices();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => out.extend(chars.next().map(|(_, c)| c)),
                    '"' => {
                        end = Some(i + 1);
                        break;
                    }
                    c => out.push(c),
                }
            }
            (out, end.map_or(after.len(), |e| e + 1))
        } else {
            let end = after.find(';').unwrap_or(after.len());
            (after[..end].trim().to_owned(), end)
        };
        if name.trim().eq_ignore_ascii_case("filename") {
            return Some(parsed);
        }
        rest = &after[consumed..];
    }
}

fn find_unquoted(text: &str, wanted: char) -> Option<usize> {
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            c if c == wanted && !quoted => return Some(i),
            _ => {}
        }
    }
    None
}

/// The task a heapgate file name names: `<task>-<YYYYMMDDTHHMMSSZ>.heapsnapshot`.
pub(crate) fn task_from_filename(name: &str) -> Option<&str> {
    let (task, stamp) = name.rsplit_once('-')?;
    let stamp = stamp.as_bytes();
    let is_stamp = stamp.len() >= 16
        && stamp[..8].iter().all(u8::is_ascii_digit)
        && stamp[8] == b'T'
        && stamp[9..15].iter().all(u8::is_ascii_digit)
        && stamp[15] == b'Z';
    (is_stamp && !task.is_empty()).then_some(task)
}

/// A file name safe to create in the output directory: only `[A-Za-z0-9._-]` (anything else,
/// path separators included, becomes `_`), no leading dot, at most 200 bytes, and at least one
/// letter or digit; `None` when nothing usable is left.
pub(crate) fn sanitize(name: &str) -> Option<String> {
    let replaced: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut name = replaced.trim_start_matches('.').to_owned();
    name.truncate(MAX_NAME);
    name.bytes()
        .any(|b| b.is_ascii_alphanumeric())
        .then_some(name)
}

/// The name used when the server sends none: `<task>-<UTC stamp>.<extension>`
/// (`heapsnapshot`, `heapprofile`, `pb.gz`).
pub(crate) fn fallback_name(task: &str, now: DateTime<Utc>, extension: &str) -> String {
    let stamp = now.format("%Y%m%dT%H%M%SZ");
    sanitize(&format!("{task}-{stamp}.{extension}")).unwrap_or_else(|| {
        let what = if extension == "heapsnapshot" {
            "snapshot"
        } else {
            "profile"
        };
        format!("{what}-{stamp}.{extension}")
    })
}

/// `name` with `-n` before its extension: `a.heapsnapshot` → `a-1.heapsnapshot`.
fn numbered(name: &str, n: u32) -> String {
    if n == 0 {
        return name.to_owned();
    }
    match name.rfind('.') {
        Some(dot) if dot > 0 => format!("{}-{n}{}", &name[..dot], &name[dot..]),
        _ => format!("{name}-{n}"),
    }
}

/// A download in progress: `<final>.part`, deleted on drop unless [`Part::finish`] turned it
/// into the final file. Dropping covers every way a download ends early, an interrupt included
/// (the download future is dropped).
#[derive(Debug)]
pub(crate) struct Part {
    dir: PathBuf,
    /// The name asked for, and which numbered variant of it the `.part` is for.
    name: String,
    number: u32,
    path: PathBuf,
    file: Option<File>,
    /// Set once the data has its final name; the `.part` is then gone.
    done: bool,
}

impl Part {
    /// Creates `DIR/<candidate>.part` for the first candidate (`name`, `name-1`, …) where neither
    /// the final file nor its `.part` exists.
    pub(crate) fn create(dir: &Path, name: &str) -> io::Result<Part> {
        for n in 0..=MAX_SUFFIX {
            let candidate = numbered(name, n);
            if dir.join(&candidate).symlink_metadata().is_ok() {
                continue;
            }
            let path = dir.join(format!("{candidate}.part"));
            match OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(crate::mode::SNAPSHOT)
                .open(&path)
            {
                Ok(file) => {
                    return Ok(Part {
                        dir: dir.to_owned(),
                        name: name.to_owned(),
                        number: n,
                        path,
                        file: Some(file),
                        done: false,
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{name} and its first {MAX_SUFFIX} numbered variants all exist"),
        ))
    }

    /// The `.part` path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        match &mut self.file {
            Some(file) => file.write_all(bytes),
            None => Err(io::Error::other("part file already closed")),
        }
    }

    /// Flushes the data to disk and gives it its final name without replacing anything: if the
    /// name was taken meanwhile, the next numbered one is used. Returns the final path.
    pub(crate) fn finish(mut self) -> io::Result<PathBuf> {
        if let Some(file) = self.file.take() {
            file.sync_all()?;
        }
        for n in self.number..=MAX_SUFFIX {
            let target = self.dir.join(numbered(&self.name, n));
            // A hard link fails instead of replacing an existing file, unlike rename.
            match std::fs::hard_link(&self.path, &target) {
                Ok(()) => {
                    self.done = true;
                    std::fs::remove_file(&self.path)?;
                    return Ok(target);
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                // No hard links here (some network or FAT filesystems): rename where the name
                // is free; only a file created in between these two calls could be replaced.
                Err(_) => {
                    if target.symlink_metadata().is_err() {
                        std::fs::rename(&self.path, &target)?;
                        self.done = true;
                        return Ok(target);
                    }
                }
            }
        }
        Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!(
                "{} and its first {MAX_SUFFIX} numbered variants all exist",
                self.name
            ),
        ))
    }
}

impl Drop for Part {
    fn drop(&mut self) {
        if !self.done {
            self.file = None;
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitizing_keeps_names_inside_the_directory() {
        let cases = [
            (
                "t1-20210601T101500Z.heapsnapshot",
                Some("t1-20210601T101500Z.heapsnapshot"),
            ),
            ("../x", Some("_x")),
            ("../../etc/passwd", Some("_.._etc_passwd")),
            ("a/b", Some("a_b")),
            ("a\\b", Some("a_b")),
            (".hidden", Some("hidden")),
            ("...", None),
            ("..", None),
            ("", None),
            ("\"quoted\"", Some("_quoted_")),
            ("snap shot;1.heapsnapshot", Some("snap_shot_1.heapsnapshot")),
            ("é.heapsnapshot", Some("_.heapsnapshot")),
            ("日本", None),
            ("/", None),
            ("a\0b\nc", Some("a_b_c")),
        ];
        for (raw, expected) in cases {
            assert_eq!(sanitize(raw).as_deref(), expected, "{raw:?}");
        }
        let long = sanitize(&"x".repeat(1000)).unwrap();
        assert_eq!(long.len(), 200);
    }

    #[test]
    fn disposition_filename_forms() {
        let cases = [
            (
                r#"attachment; filename="t1-20210601T101500Z.heapsnapshot""#,
                Some("t1-20210601T101500Z.heapsnapshot"),
            ),
            ("attachment; filename=plain.json", Some("plain.json")),
            ("attachment;filename=plain.json; size=3", Some("plain.json")),
            (r#"attachment; filename="a\"b;c""#, Some("a\"b;c")),
            (
                r#"attachment; name="x;filename=y"; FILENAME="real""#,
                Some("real"),
            ),
            ("attachment; filename*=UTF-8''x.json", None),
            ("attachment", None),
            ("inline; filename=\"unterminated", Some("unterminated")),
            ("attachment; bare; filename=x.json", Some("x.json")),
        ];
        for (value, expected) in cases {
            assert_eq!(disposition_filename(value).as_deref(), expected, "{value}");
        }
    }

    #[test]
    fn task_from_heapgate_file_names() {
        assert_eq!(
            task_from_filename("t1-20210601T101500Z.heapsnapshot"),
            Some("t1")
        );
        assert_eq!(
            task_from_filename("8f03e4-a.b_c-20210601T101500Z.heapsnapshot"),
            Some("8f03e4-a.b_c")
        );
        for other in [
            "t1.heapsnapshot",
            "-20210601T101500Z.heapsnapshot",
            "t1-2021-06-01.heapsnapshot",
            "t1-20210601T1015Z.heapsnapshot",
            "",
        ] {
            assert_eq!(task_from_filename(other), None, "{other}");
        }
    }

    #[test]
    fn fallback_names_are_stamped_and_safe() {
        let now = "2021-06-01T10:15:00Z".parse().unwrap();
        assert_eq!(
            fallback_name("t2", now, "heapsnapshot"),
            "t2-20210601T101500Z.heapsnapshot"
        );
        assert_eq!(
            fallback_name("../t", now, "heapsnapshot"),
            "_t-20210601T101500Z.heapsnapshot"
        );
    }

    #[test]
    fn numbering_goes_before_the_extension() {
        assert_eq!(numbered("a.heapsnapshot", 0), "a.heapsnapshot");
        assert_eq!(numbered("a.heapsnapshot", 2), "a-2.heapsnapshot");
        assert_eq!(numbered("a.b.json", 1), "a.b-1.json");
        assert_eq!(numbered("noext", 1), "noext-1");
    }

    #[test]
    fn finishing_never_replaces_and_dropping_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("s.heapsnapshot"), "precious").unwrap();
        let mut part = Part::create(dir.path(), "s.heapsnapshot").unwrap();
        assert_eq!(part.path(), dir.path().join("s-1.heapsnapshot.part"));
        part.write_all(b"new").unwrap();
        // Someone takes the chosen name while we download.
        std::fs::write(dir.path().join("s-1.heapsnapshot"), "also precious").unwrap();
        let done = part.finish().unwrap();
        assert_eq!(done, dir.path().join("s-2.heapsnapshot"));
        assert_eq!(std::fs::read(&done).unwrap(), b"new");
        assert_eq!(
            std::fs::read(dir.path().join("s.heapsnapshot")).unwrap(),
            b"precious"
        );
        assert_eq!(
            std::fs::read(dir.path().join("s-1.heapsnapshot")).unwrap(),
            b"also precious"
        );

        let mut abandoned = Part::create(dir.path(), "t.heapsnapshot").unwrap();
        abandoned.write_all(b"half").unwrap();
        let path = abandoned.path().to_owned();
        assert!(path.exists());
        drop(abandoned);
        assert!(!path.exists());
        let mut names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["s-1.heapsnapshot", "s-2.heapsnapshot", "s.heapsnapshot"]
        );
    }
}
