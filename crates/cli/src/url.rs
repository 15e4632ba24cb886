//! Building the snapshot URL a token is used in.

use heapgate_protocol::SnapshotQuery;

use crate::Error;

/// `base` joined with `path` (exactly one slash between them), then the query as every heapgate
/// client writes it (`?hash=HEX&task=ID&probe=1`).
pub(crate) fn snapshot_url(base: &str, path: &str, query: &SnapshotQuery) -> Result<String, Error> {
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
    let query = query.to_query_string();
    if !query.is_empty() {
        url.push('?');
        url.push_str(&query);
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use heapgate_protocol::TaskId;

    use super::*;

    fn query(task: Option<&str>) -> SnapshotQuery {
        SnapshotQuery {
            hash: Some("ab".to_owned()),
            task: task.map(|t| TaskId::new(t).unwrap()),
            ..SnapshotQuery::default()
        }
    }

    #[test]
    fn joins_with_exactly_one_slash() {
        for (base, path) in [
            ("http://h:8080", "/heapdump"),
            ("http://h:8080/", "/heapdump"),
            ("http://h:8080/", "heapdump"),
            ("http://h:8080", "heapdump"),
        ] {
            assert_eq!(
                snapshot_url(base, path, &query(None)).unwrap(),
                "http://h:8080/heapdump?hash=ab"
            );
        }
        assert_eq!(
            snapshot_url("https://svc.example/api/", "/debug/heap", &query(None)).unwrap(),
            "https://svc.example/api/debug/heap?hash=ab"
        );
        assert_eq!(
            snapshot_url("http://h", "/heapdump", &SnapshotQuery::default()).unwrap(),
            "http://h/heapdump"
        );
    }

    #[test]
    fn adds_the_task_and_probe() {
        let mut probe = query(Some("8f03e4.a_b-c"));
        probe.probe = true;
        assert_eq!(
            snapshot_url("http://h", "/heapdump", &probe).unwrap(),
            "http://h/heapdump?hash=ab&task=8f03e4.a_b-c&probe=1"
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
            assert!(
                snapshot_url(base, "/heapdump", &query(None)).is_err(),
                "{base}"
            );
        }
        assert!(snapshot_url("http://h", "/heap?x", &query(None)).is_err());
    }
}
