//! The snapshot path's query parsing on arbitrary input: never panics, a repeated `hash` or
//! `task` is always refused, a key that any reader could take for one of ours (`amp;probe`,
//! `probe=1` from `probe%3D1`, `Probe`) is always refused, so is a pair of ours inside another
//! key's value (`x=y;probe=1`), and what it accepts agrees with an independent reading.
#![no_main]

use heapgate_protocol::SnapshotQuery;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(query) = std::str::from_utf8(data) else { return };
    let parsed = SnapshotQuery::parse(query);
    let pairs: Vec<(String, String)> = form_urlencoded_pairs(query);
    let count = |key: &str| pairs.iter().filter(|(k, _)| k == key).count();
    let look_alike = pairs.iter().any(|(k, _)| {
        let lower = k.to_ascii_lowercase();
        !KEYS.contains(&k.as_str())
            && lower
                .split(|c: char| !c.is_ascii_alphanumeric())
                .chain(std::iter::once(
                    lower.chars().filter(char::is_ascii_alphanumeric).collect::<String>().as_str(),
                ))
                .any(|word| KEYS.contains(&word))
    });
    if look_alike {
        assert!(parsed.is_err(), "a key read as one of ours must be refused: {query:?}");
    }
    // A pair of ours inside another key's value (`x=y;probe=1`, `x=a%26probe%3D1`): one of our
    // keys as a word followed by `=` before the next letter or digit.
    let pair_in_value = pairs.iter().any(|(k, v)| {
        !KEYS.contains(&k.as_str()) && {
            let lower = v.to_ascii_lowercase();
            let mut rest = lower.as_str();
            let mut found = false;
            while let Some(start) = rest.find(|c: char| c.is_ascii_alphanumeric()) {
                let run = &rest[start..];
                let end = run.find(|c: char| !c.is_ascii_alphanumeric()).unwrap_or(run.len());
                let after = &run[end..];
                let gap = &after[..after.find(|c: char| c.is_ascii_alphanumeric()).unwrap_or(after.len())];
                found |= KEYS.contains(&&run[..end]) && gap.contains('=');
                rest = after;
            }
            found
        }
    });
    if pair_in_value {
        assert!(parsed.is_err(), "a pair of ours inside a value must be refused: {query:?}");
    }
    if count("hash") > 1 || count("task") > 1 {
        assert!(parsed.is_err(), "repeated hash/task must be refused: {query:?}");
    } else if let Ok(parsed) = parsed {
        let first = |key: &str| pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
        assert_eq!(parsed.hash, first("hash"));
        assert_eq!(parsed.task.as_ref().map(|t| t.as_str().to_owned()), first("task"));
        // What it accepts, it writes back to the same meaning.
        assert_eq!(SnapshotQuery::parse(&parsed.to_query_string()).ok(), Some(parsed));
    }
});

const KEYS: [&str; 5] = ["hash", "task", "probe", "repin", "format"];

/// An independent reading of `application/x-www-form-urlencoded`, for comparison.
fn form_urlencoded_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() && hex(bytes[i + 1]).is_some() && hex(bytes[i + 2]).is_some() => {
                out.push(hex(bytes[i + 1]).unwrap_or(0) * 16 + hex(bytes[i + 2]).unwrap_or(0));
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}
