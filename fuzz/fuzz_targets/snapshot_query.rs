//! The snapshot path's query parsing on arbitrary input: never panics, and a repeated `hash` or
//! `task` is always refused.
#![no_main]

use heapgate_proxy::snapshot::parse_query;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(query) = std::str::from_utf8(data) else { return };
    let parsed = parse_query(query);
    let pairs: Vec<(String, String)> = form_urlencoded_pairs(query);
    let count = |key: &str| pairs.iter().filter(|(k, _)| k == key).count();
    if count("hash") > 1 || count("task") > 1 {
        assert!(parsed.is_err(), "repeated hash/task must be refused: {query:?}");
    } else {
        let parsed = parsed.expect("a query without repeats parses");
        let first = |key: &str| pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
        assert_eq!(parsed.hash, first("hash"));
        assert_eq!(parsed.task, first("task"));
    }
});

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
