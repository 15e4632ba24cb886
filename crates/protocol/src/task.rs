//! Task ids: what `task=` names and what a sidecar answers in `X-Heapgate-Task`.

use std::fmt;

/// Longest task (or series) id; ECS task ids are 32 hex characters.
pub const MAX_ID_LEN: usize = 128;

/// 1–128 characters of `[A-Za-z0-9._-]`: the syntax of task ids and series ids, safe in headers,
/// file names and log lines.
pub fn is_id_text(text: &[u8]) -> bool {
    (1..=MAX_ID_LEN).contains(&text.len())
        && text
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// A validated task id.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskId(String);

/// A text that is not a task id; shows at most [`MAX_ID_LEN`] characters of it, escaped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "task id {0:?} must be 1-{MAX_ID_LEN} characters of A-Z a-z 0-9 . _ - (it names files and headers)"
)]
pub struct InvalidTaskId(String);

impl TaskId {
    pub fn new(id: &str) -> Result<TaskId, InvalidTaskId> {
        if is_id_text(id.as_bytes()) {
            Ok(TaskId(id.to_owned()))
        } else {
            Err(InvalidTaskId(id.chars().take(MAX_ID_LEN).collect()))
        }
    }

    /// The id in a header value, if it is one: `None` for anything else, so a malformed or
    /// hostile header never becomes a task.
    pub fn from_header(value: &http::HeaderValue) -> Option<TaskId> {
        value
            .to_str()
            .ok()
            .map(str::trim)
            .and_then(|text| TaskId::new(text).ok())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// As a header value (always valid: the syntax is a subset of header text).
    pub fn header_value(&self) -> http::HeaderValue {
        http::HeaderValue::from_str(&self.0).expect("task ids are header-safe")
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syntax() {
        for good in ["t1", "a.b_c-D", &"x".repeat(128), "0123456789abcdef"] {
            assert!(TaskId::new(good).is_ok(), "{good}");
        }
        for bad in ["", "a/b", "a b", "t1\r\nX: 1", "é", &"x".repeat(129), "a;b"] {
            assert!(TaskId::new(bad).is_err(), "{bad:?}");
        }
        let long = TaskId::new(&"y".repeat(500)).unwrap_err().to_string();
        assert!(long.len() < 300, "{long}");
    }

    #[test]
    fn from_header_accepts_ids_only() {
        let value = |s: &str| http::HeaderValue::from_str(s).unwrap();
        assert_eq!(
            TaskId::from_header(&value(" t1 ")),
            Some(TaskId::new("t1").unwrap())
        );
        assert_eq!(TaskId::from_header(&value("t1, t2")), None);
        assert_eq!(
            TaskId::from_header(&http::HeaderValue::from_bytes(b"t\xff").unwrap()),
            None
        );
        assert_eq!(TaskId::new("t9").unwrap().header_value(), "t9");
    }
}
