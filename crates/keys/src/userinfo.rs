//! Credentials out of URLs before they are printed.

/// `text` with any `user:password@` in its URL authority replaced by `***@`, for error messages
/// and logs that quote a URL an operator gave (`ws://user:pass@host/…` must never be printed).
///
/// Everything after the scheme up to the *last* `@` goes: a password may hold `/`, `?` or `#`
/// unescaped, so the authority cannot be trusted to end where a URL parser says.
pub fn redact_userinfo(text: &str) -> std::borrow::Cow<'_, str> {
    let Some(at) = text.rfind('@') else {
        return text.into();
    };
    let after_scheme = text
        .find(':')
        .filter(|&colon| {
            text[..colon]
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
                && text[colon + 1..].starts_with('/')
        })
        .map_or(0, |colon| colon + 1);
    let start = after_scheme + text[after_scheme..at].len()
        - text[after_scheme..at].trim_start_matches('/').len();
    format!("{}***{}", &text[..start], &text[at..]).into()
}

#[cfg(test)]
mod tests {
    use super::redact_userinfo;

    #[test]
    fn userinfo_never_survives() {
        for (text, shown) in [
            (
                "ws://user:pass@127.0.0.1:9229/x",
                "ws://***@127.0.0.1:9229/x",
            ),
            ("http://a@b@host", "http://***@host"),
            ("user:pass@host:1", "***@host:1"),
            (
                "http://user:S3cr3t/pw@127.0.0.1:3000",
                "http://***@127.0.0.1:3000",
            ),
            (
                "http://user:S3cr3t#pw@127.0.0.1:3000",
                "http://***@127.0.0.1:3000",
            ),
            ("http:/u:S3cr3t@127.0.0.1:1", "http:/***@127.0.0.1:1"),
            ("user:S3cr3t/pw@h:1", "***@h:1"),
            ("t1=http://u:S3cr3t@h", "***@h"),
            ("http://127.0.0.1:3000", "http://127.0.0.1:3000"),
            ("", ""),
        ] {
            assert_eq!(redact_userinfo(text), shown, "{text}");
        }
    }
}
