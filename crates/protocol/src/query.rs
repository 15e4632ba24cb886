//! The snapshot and profile paths' query: `hash=HEX[&task=ID][&probe=1][&repin=1]`, and on the
//! profile path `[&format=heapprofile|pprof]`.

use crate::instrument::ProfileFormat;
use crate::task::TaskId;

/// What a snapshot request asks for.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SnapshotQuery {
    /// The token, unverified.
    pub hash: Option<String>,
    /// The task the client wants; any other task answers 421.
    pub task: Option<TaskId>,
    /// Only say which task this is (204), take nothing.
    pub probe: bool,
    /// Gateway: forget the pinned task and choose anew.
    pub repin: bool,
    /// The profile path's encoding; the snapshot path refuses it.
    pub format: Option<ProfileFormat>,
}

/// Why a query was refused; the text is one line, fit for a 400's body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct QueryError(&'static str);

impl SnapshotQuery {
    /// Parses strictly: a client that meant something else must get a 400, never a snapshot.
    /// `hash`, `task`, `probe` and `repin` may each appear once; `probe` and `repin` take exactly
    /// `1` or `true`; `task` is a task id; no value may hold `;` (some servers split parameters
    /// there); a key that folds to one of ours (`Probe`, `probe[]`, `probe%00`) is refused.
    /// Other parameters are ignored (cache busters).
    pub fn parse(query: &str) -> Result<SnapshotQuery, QueryError> {
        let (mut hash, mut task, mut probe, mut repin, mut format) = (None, None, None, None, None);
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            let slot = match &*key {
                "hash" => &mut hash,
                "task" => &mut task,
                "probe" => &mut probe,
                "repin" => &mut repin,
                "format" => &mut format,
                other => {
                    if readings(other).any(|key| is_look_alike(&key)) {
                        return Err(QueryError(
                            "misspelt query parameter (use hash, task, probe, repin, format)",
                        ));
                    }
                    if readings(&value).any(|value| holds_a_pair_of_ours(&value)) {
                        return Err(QueryError(
                            "a query value holds one of hash, task, probe, repin, format followed by '='",
                        ));
                    }
                    continue;
                }
            };
            if value.contains(';') {
                return Err(QueryError("';' in a query parameter"));
            }
            if slot.replace(value.into_owned()).is_some() {
                return Err(QueryError("repeated query parameter"));
            }
        }
        let task =
            match task {
                None => None,
                Some(text) => Some(TaskId::new(&text).map_err(|_| {
                    QueryError("task must be 1-128 characters of A-Z a-z 0-9 . _ -")
                })?),
            };
        let format = match format {
            None => None,
            Some(text) => Some(
                text.parse()
                    .map_err(|_| QueryError("format takes heapprofile or pprof"))?,
            ),
        };
        Ok(SnapshotQuery {
            hash,
            task,
            probe: flag(probe.as_deref(), "probe takes 1 or true")?,
            repin: flag(repin.as_deref(), "repin takes 1 or true")?,
            format,
        })
    }

    /// The query string a client sends (parameters in a fixed order, values encoded).
    pub fn to_query_string(&self) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        if let Some(hash) = &self.hash {
            query.append_pair("hash", hash);
        }
        if let Some(task) = &self.task {
            query.append_pair("task", task.as_str());
        }
        if self.probe {
            query.append_pair("probe", "1");
        }
        if self.repin {
            query.append_pair("repin", "1");
        }
        if let Some(format) = self.format {
            query.append_pair("format", format.as_str());
        }
        query.finish()
    }
}

/// The query's keys.
const KEYS: [&str; 5] = ["hash", "task", "probe", "repin", "format"];

/// The readings of a decoded key or value that some reader could act on: as decoded, decoded
/// once more (a proxy or framework that decodes twice), each with ASCII case ignored (where any
/// other character separates words: `aｐhash` holds `hash`) and folded as [`fold`] does (where
/// it may join them: `ｐrobe` is `probe`).
fn readings(text: &str) -> impl Iterator<Item = String> {
    let twice = percent_encoding::percent_decode_str(text).decode_utf8_lossy();
    [
        text.to_ascii_lowercase(),
        fold(text),
        twice.to_ascii_lowercase(),
        fold(&twice),
    ]
    .into_iter()
}

/// Lowercase, with the compatibility forms that Unicode-aware readers (JS `toLowerCase`,
/// `toUpperCase` round trips, NFKC) turn into ASCII mapped to it: `ſ` (long s) → `s`, `K`
/// (Kelvin sign) → `k`, `ı`/`İ` → `i`, full-width forms U+FF01–FF5E and the mathematical
/// alphanumerics (`𝐩`) → ASCII. Other characters stay as they are (and are no letter of ours).
fn fold(text: &str) -> String {
    text.chars()
        .flat_map(char::to_lowercase)
        .map(|c| match c {
            '\u{17F}' => 's',
            '\u{212A}' => 'k',
            '\u{131}' | '\u{130}' => 'i',
            '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
            '\u{1D400}'..='\u{1D6A3}' => {
                let n = (c as u32 - 0x1D400) % 52;
                let base = if n < 26 {
                    b'a' + n as u8
                } else {
                    b'a' + (n - 26) as u8
                };
                base as char
            }
            '\u{1D7CE}'..='\u{1D7FF}' => (b'0' + ((c as u32 - 0x1D7CE) % 10) as u8) as char,
            c => c,
        })
        .collect()
}

/// Whether `key` (decoded and folded, not one of ours) could be read as one of ours by anyone: a
/// client meant it, and guessing would take a snapshot it did not ask for, or answer for a task
/// it did not name. Refused when the key with everything but ASCII letters and digits dropped is
/// ours (`Probe`, `probe[]`, `probe%00`, `pro-be`, `ｐrobe`), or when any run of letters and
/// digits in it is (`amp;probe` from an HTML-escaped `&amp;probe=1`, `probe=1` from an escaped
/// `probe%3D1`, `x;probe`, `probe =1`).
fn is_look_alike(key: &str) -> bool {
    let folded: String = key.chars().filter(char::is_ascii_alphanumeric).collect();
    KEYS.contains(&folded.as_str()) || words(key).any(|(word, _)| KEYS.contains(&word))
}

/// Whether a value (decoded and folded, of a key not ours) holds a `key=value` pair of ours for
/// a reader that splits parameters at `;`, `,`, a newline or a decoded `&`, or that reads the
/// first `=` of `x=probe=1` as its own: refused when a run of ASCII letters and digits that is
/// one of our keys is followed, before the next letter or digit, by `=` (`y;probe=1`,
/// `a&task=other`, `probe=1`, `1,probe =1`). A key word alone (`?ref=probe`, `utm=task force`) is
/// a value like any other and stays allowed.
fn holds_a_pair_of_ours(value: &str) -> bool {
    words(value).any(|(word, gap)| KEYS.contains(&word) && gap.contains('='))
}

/// The runs of ASCII letters and digits in `text`, each with the text after it up to the next run.
fn words(text: &str) -> impl Iterator<Item = (&str, &str)> {
    let is_word = |c: char| c.is_ascii_alphanumeric();
    let mut rest = text;
    std::iter::from_fn(move || {
        let start = rest.find(is_word)?;
        let run = &rest[start..];
        let end = run.find(|c: char| !is_word(c)).unwrap_or(run.len());
        let after = &run[end..];
        let gap_end = after.find(is_word).unwrap_or(after.len());
        rest = after;
        Some((&run[..end], &after[..gap_end]))
    })
}

fn flag(value: Option<&str>, why: &'static str) -> Result<bool, QueryError> {
    match value {
        None => Ok(false),
        Some("1" | "true") => Ok(true),
        Some(_) => Err(QueryError(why)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_writes_back() {
        let q = SnapshotQuery::parse("hash=ab&task=t%2D1&probe=1&x=y").unwrap();
        assert_eq!(
            q,
            SnapshotQuery {
                hash: Some("ab".into()),
                task: Some(TaskId::new("t-1").unwrap()),
                probe: true,
                repin: false,
                format: None,
            }
        );
        assert_eq!(q.to_query_string(), "hash=ab&task=t-1&probe=1");
        assert_eq!(SnapshotQuery::parse(&q.to_query_string()).unwrap(), q);
        assert_eq!(SnapshotQuery::parse("").unwrap(), SnapshotQuery::default());
        assert!(SnapshotQuery::parse("repin=1").unwrap().repin);
        assert!(SnapshotQuery::parse("probe=true&repin=true").unwrap().repin);
        let q = SnapshotQuery::parse("hash=ab&format=pprof").unwrap();
        assert_eq!(q.format, Some(ProfileFormat::Pprof));
        assert_eq!(q.to_query_string(), "hash=ab&format=pprof");
        assert_eq!(
            SnapshotQuery::parse("x=1;y&cache=2").unwrap(),
            SnapshotQuery::default()
        );
        // Cache busters that name nothing of ours are still ignored.
        assert_eq!(
            SnapshotQuery::parse("_=1&t=2&cachebust=3&probes=1&tasks=x&rehash=1").unwrap(),
            SnapshotQuery::default()
        );
        // A key word as a plain value (no `=` after it) is a value like any other.
        assert_eq!(
            SnapshotQuery::parse("ref=probe&utm_source=task%20force&q=a,hash;x=1").unwrap(),
            SnapshotQuery::default()
        );
    }

    /// Anything but a clear yes or no is refused, so a client that meant to probe never costs
    /// the app a snapshot.
    #[test]
    fn unclear_queries_are_refused() {
        for query in [
            "hash=a&hash=b",
            "task=a&task=a",
            "probe=yes",
            "probe=TRUE",
            "probe=1;x=1",
            "probe=",
            "probe",
            "probe=2",
            "probe=0",
            "probe=1&probe=1",
            "repin=yes",
            "repin=1&repin=1",
            "task=t1;x",
            "task=t1%0d%0aX-Evil:%201",
            "task=",
            "task=a/b",
            "hash=ab;c",
            "Probe=1",
            "PROBE=1",
            "probe[]=1",
            "probe%00=1",
            "probe;=1",
            ";probe=yes",
            "Task=t2",
            "task%5B%5D=t2",
            "Repin=1",
            "HASH=ab",
            // Issue 21: read as ours by an HTML-unescaping or decoding reader.
            "hash=ab&amp;probe=1",
            "hash=ab&probe%3D1",
            "hash=ab&probe%3Dtrue",
            "hash=ab&amp;task=other",
            "hash=ab&task%3Dother",
            "hash=ab&amp;repin=1",
            "hash=ab&amp;hash=cd",
            "x;probe=1",
            "probe%20=1",
            "probe+=1",
            "pro-be=1",
            "task_id=t2",
            "format=json",
            "format=PPROF",
            "format=",
            "format=pprof&format=pprof",
            "Format=pprof",
            "format[]=pprof",
            // Issue 21, re-run: a pair of ours inside an unknown key's value, for readers that
            // split at `;`, `,`, newlines or a decoded `&`, or decode twice.
            "hash=ab&x=y;probe=1",
            "hash=ab&x=y;task=other",
            "hash=ab&x=a%26probe%3D1",
            "hash=ab&x=y%3Bprobe=1",
            "hash=ab&x=1%3Bprobe%3D1",
            "hash=ab&utm=%3Bprobe%3D1",
            "hash=ab&x=probe=1",
            "hash=ab&x=y%0Aprobe=1",
            "hash=ab&x=1,probe=1",
            "hash=ab&x=1,Repin%20=1",
            "hash=ab&x=a%2526task%253Dother",
            "hash=ab&%2570robe=1",
            // Keys that Unicode case folding or compatibility mapping turns into ours.
            "hash=ab&%EF%BD%90robe=1",
            "hash=ab&tas%E2%84%AA=other",
            "hash=ab&ha%C5%BFh=x",
            "hash=ab&rep%C4%B1n=1",
            "hash=ab&%F0%9D%90%A9robe=1",
            "hash=ab&+a%EF%BD%90hash%EF%BD%90[]=hash",
        ] {
            assert!(SnapshotQuery::parse(query).is_err(), "{query}");
        }
    }
}
