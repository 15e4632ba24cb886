//! Building the snapshot URL a token is used in.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::Error;

/// Everything but RFC 3986's unreserved characters is encoded in a query value.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// `base` joined with `path` (exactly one slash between them), then `?hash=HEX` and, when given,
/// `&task=ID` percent-encoded.
pub(crate) fn snapshot_url(
    base: &str,
    path: &str,
    hash: &str,
    task: Option<&str>,
) -> Result<String, Error> {
    let scheme_end = ["http://", "https://"]
        .iter()
        .find(|scheme| {
            base.len() >= scheme.len() && base[..scheme.len()].eq_ignore_ascii_case(scheme)
        })
        .map(|scheme| scheme.len())
        .ok_or_else(|| {
            Error::Config(format!(
                "--url must start with http:// or https://, got {:?}",
                heapgate_keys::redact_userinfo(base)
            ))
        })?;
    if base.len() == scheme_end || base[scheme_end..].starts_with('/') {
        return Err(Error::Config(format!(
            "--url has no host: {:?}",
            heapgate_keys::redact_userinfo(base)
        )));
    }
    if let Some(bad) = base
        .chars()
        .find(|c| matches!(c, '?' | '#') || c.is_whitespace())
    {
        return Err(Error::Config(format!(
            "--url must be a plain base URL without {bad:?}; the query is added by heapgate"
        )));
    }
    if let Some(bad) = path
        .chars()
        .find(|c| matches!(c, '?' | '#') || c.is_whitespace())
    {
        return Err(Error::Config(format!("--path must not contain {bad:?}")));
    }
    let mut url = String::with_capacity(base.len() + path.len() + 80);
    url.push_str(base.trim_end_matches('/'));
    url.push('/');
    url.push_str(path.trim_start_matches('/'));
    url.push_str("?hash=");
    url.push_str(hash);
    if let Some(task) = task {
        url.push_str("&task=");
        url.extend(utf8_percent_encode(task, QUERY_VALUE));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: &str = "ab";

    #[test]
    fn joins_with_exactly_one_slash() {
        for (base, path) in [
            ("http://h:8080", "/heapdump"),
            ("http://h:8080/", "/heapdump"),
            ("http://h:8080/", "heapdump"),
            ("http://h:8080", "heapdump"),
        ] {
            assert_eq!(
                snapshot_url(base, path, H, None).unwrap(),
                "http://h:8080/heapdump?hash=ab"
            );
        }
        assert_eq!(
            snapshot_url("https://svc.example/api/", "/debug/heap", H, None).unwrap(),
            "https://svc.example/api/debug/heap?hash=ab"
        );
    }

    #[test]
    fn encodes_the_task() {
        assert_eq!(
            snapshot_url("http://h", "/heapdump", H, Some("8f03e4 a&b=c/é")).unwrap(),
            "http://h/heapdump?hash=ab&task=8f03e4%20a%26b%3Dc%2F%C3%A9"
        );
    }

    #[test]
    fn refuses_what_cannot_be_joined() {
        for base in [
            "h:8080",
            "ftp://h",
            "http://",
            "http:///x",
            "http://h/?x=1",
            "http://h/#f",
            "http://h /",
        ] {
            assert!(snapshot_url(base, "/heapdump", H, None).is_err(), "{base}");
        }
        assert!(snapshot_url("http://h", "/heap?x", H, None).is_err());
    }
}
