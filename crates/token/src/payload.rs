//! The exact bytes the Node.js one-liner signs: `JSON.stringify({date, value})`.

use crate::Hour;

/// The payload string for `hour` and `value`, as `JSON.stringify({ date, value })` builds it.
///
/// Signing feeds the same bytes to the MAC piece by piece without allocating; this function is
/// for showing them (`heapgate verify --explain`) and for tests.
pub fn payload(hour: Hour, value: &str) -> String {
    let mut out = Vec::with_capacity(48 + value.len());
    feed(hour, value, &mut |piece| out.extend_from_slice(piece));
    // Only valid UTF-8 (the value's own bytes) and ASCII escapes are written.
    String::from_utf8(out).unwrap_or_default()
}

/// Writes the payload to `sink` in pieces.
pub(crate) fn feed(hour: Hour, value: &str, sink: &mut impl FnMut(&[u8])) {
    sink(b"{\"date\":\"");
    sink(hour.iso().as_bytes());
    sink(b"\",\"value\":\"");
    escape_json_string(value, sink);
    sink(b"\"}");
}

/// JSON.stringify's string escaping (ECMA-262 QuoteJSONString): `"` and `\` get a backslash,
/// the five C0 controls with short forms use them, the other C0 controls become lowercase
/// `\u00xx`. Everything else, DEL and U+2028/U+2029 included, is written as raw UTF-8. (Lone
/// surrogates, which JSON.stringify also escapes, cannot occur in a Rust `str`.)
fn escape_json_string(value: &str, sink: &mut impl FnMut(&[u8])) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = value.as_bytes();
    let mut clean_from = 0;
    for (i, &byte) in bytes.iter().enumerate() {
        let short: &[u8] = match byte {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            0x08 => b"\\b",
            0x0c => b"\\f",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x00..=0x1f => &[],
            _ => continue,
        };
        if clean_from < i {
            sink(&bytes[clean_from..i]);
        }
        clean_from = i + 1;
        if short.is_empty() {
            sink(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(byte >> 4)],
                HEX[usize::from(byte & 0xf)],
            ]);
        } else {
            sink(short);
        }
    }
    if clean_from < bytes.len() {
        sink(&bytes[clean_from..]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hour() -> Hour {
        Hour::containing("2021-06-01T10:15:00Z".parse().unwrap())
    }

    #[test]
    fn plain_value() {
        assert_eq!(
            payload(hour(), "heapdump"),
            r#"{"date":"2021-06-01T10:00:00.000Z","value":"heapdump"}"#
        );
    }

    #[test]
    fn escapes_like_json_stringify() {
        let value = "q\"b\\ \u{8}\u{c}\n\r\t \u{0}\u{1f} \u{7f} \u{2028}\u{2029} é 🦀";
        let expected = concat!(
            r#"{"date":"2021-06-01T10:00:00.000Z","value":""#,
            r#"q\"b\\ \b\f\n\r\t \u0000\u001f "#,
            "\u{7f} \u{2028}\u{2029} é 🦀",
            r#""}"#
        );
        assert_eq!(payload(hour(), value), expected);
    }

    #[test]
    fn empty_value() {
        assert_eq!(
            payload(hour(), ""),
            r#"{"date":"2021-06-01T10:00:00.000Z","value":""}"#
        );
    }
}
