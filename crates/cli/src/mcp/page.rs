//! Answers that fit: every tool builds a whole [`Answer`] (a verdict, fixed fields and a list),
//! the server keeps it under a handle, and [`Answers::page`] cuts the list so that the text of
//! one call stays under `--max-bytes`. `next_cursor` (`<handle>:<offset>`) brings the next
//! page of the same answer without recomputing it.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use rmcp::model::{CallToolResult, ContentBlock};
use serde_json::{Map, Value};

/// Answers kept for cursors; the oldest are dropped first.
const KEPT: usize = 32;

/// Room for the page numbers in the verdict and the cursor, which grow with the page.
const SLACK: usize = 48;

/// One tool's whole answer.
pub(crate) struct Answer {
    /// The first sentence of every page.
    pub(crate) verdict: String,
    /// Fields every page carries (`file`, `kind`, `warnings`…).
    pub(crate) head: Map<String, Value>,
    /// The list that is paged.
    pub(crate) items: Vec<Value>,
    /// What refers back to it: a file path, a diff's files, for reuse by later calls.
    pub(crate) key: Option<String>,
}

/// The last handle given, and the kept answers by handle, oldest first.
#[derive(Default)]
struct Kept {
    last: u64,
    answers: VecDeque<(u64, Arc<Answer>)>,
}

#[derive(Default)]
pub(crate) struct Answers {
    kept: Mutex<Kept>,
}

impl Answers {
    /// Keeps `answer` and returns its first page.
    pub(crate) fn first_page(&self, answer: Answer, max_bytes: usize) -> CallToolResult {
        let answer = Arc::new(answer);
        let handle = {
            let mut kept = self.lock();
            kept.last += 1;
            let handle = kept.last;
            kept.answers.push_back((handle, answer.clone()));
            while kept.answers.len() > KEPT {
                kept.answers.pop_front();
            }
            handle
        };
        render(handle, &answer, 0, max_bytes)
    }

    /// The answer kept under `key`, if any (a repeated call on the same files).
    pub(crate) fn find(&self, key: &str) -> Option<(u64, Arc<Answer>)> {
        self.lock()
            .answers
            .iter()
            .rev()
            .find(|(_, a)| a.key.as_deref() == Some(key))
            .cloned()
    }

    /// The page of a kept answer at `offset`.
    pub(crate) fn again(
        &self,
        handle: u64,
        answer: &Answer,
        offset: usize,
        max_bytes: usize,
    ) -> CallToolResult {
        render(handle, answer, offset, max_bytes)
    }

    /// The page a cursor names, or a one-line error.
    pub(crate) fn page(&self, cursor: &str, max_bytes: usize) -> Result<CallToolResult, String> {
        let parsed = cursor
            .split_once(':')
            .and_then(|(h, o)| Some((h.parse::<u64>().ok()?, o.parse::<usize>().ok()?)));
        let Some((handle, offset)) = parsed else {
            return Err(format!(
                "cursor {} is not one this server gave; pass next_cursor exactly as received",
                super::roots::quoted(cursor)
            ));
        };
        let answer = self
            .lock()
            .answers
            .iter()
            .find(|(h, _)| *h == handle)
            .map(|(_, a)| a.clone());
        match answer {
            Some(answer) if offset <= answer.items.len() => {
                Ok(render(handle, &answer, offset, max_bytes))
            }
            Some(_) => Err(format!("cursor {cursor} is past the end of its answer")),
            None => Err(format!(
                "cursor {cursor} has expired (only the last {KEPT} answers are kept); repeat \
                 the call without a cursor"
            )),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Kept> {
        self.kept
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The page of `answer` from `offset`: as many items as keep the text (the verdict line plus
/// the structured content as JSON) within `max_bytes`, at least one.
fn render(handle: u64, answer: &Answer, offset: usize, max_bytes: usize) -> CallToolResult {
    let total = answer.items.len();
    let page_of = |items: Vec<Value>, next: Option<usize>| {
        let mut out = Map::new();
        let shown = items.len();
        let verdict = if offset == 0 && next.is_none() {
            answer.verdict.clone()
        } else {
            format!(
                "{} (items {}–{} of {total})",
                answer.verdict,
                offset + usize::from(shown > 0),
                offset + shown
            )
        };
        out.insert("verdict".into(), Value::String(verdict));
        for (k, v) in &answer.head {
            out.insert(k.clone(), v.clone());
        }
        out.insert("items".into(), Value::Array(items));
        out.insert("offset".into(), Value::from(offset));
        out.insert("total".into(), Value::from(total));
        if let Some(n) = next {
            out.insert("next_cursor".into(), Value::String(format!("{handle}:{n}")));
        }
        Value::Object(out)
    };
    let text_of = |value: &Value| {
        let verdict = value["verdict"].as_str().unwrap_or_default();
        format!("{verdict}\n{value}")
    };
    // Grow the page one item at a time; the sizes add up as the JSON does (a comma each).
    let base = text_of(&page_of(Vec::new(), Some(total))).len();
    let mut used = base;
    let mut end = offset;
    while end < total {
        let size = answer.items[end].to_string().len() + 1;
        if end > offset && used + size + SLACK > max_bytes {
            break;
        }
        used += size;
        end += 1;
    }
    let next = (end < total).then_some(end);
    let value = page_of(answer.items[offset..end].to_vec(), next);
    let text = text_of(&value);
    let mut result = CallToolResult::structured(value);
    result.content = vec![ContentBlock::text(text)];
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(n: usize) -> Answer {
        Answer {
            verdict: "Something grew.".into(),
            head: Map::new(),
            items: (0..n)
                .map(|i| serde_json::json!({"name": format!("Class{i}"), "count": i}))
                .collect(),
            key: None,
        }
    }

    fn text(result: &CallToolResult) -> String {
        result.content[0].as_text().unwrap().text.clone()
    }

    #[test]
    fn pages_stay_under_the_budget_and_reach_the_end() {
        let answers = Answers::default();
        let first = answers.first_page(answer(500), 1024);
        assert!(text(&first).len() <= 1024, "{}", text(&first).len());
        let mut seen = first.structured_content.as_ref().unwrap()["items"]
            .as_array()
            .unwrap()
            .len();
        let mut cursor = first.structured_content.unwrap()["next_cursor"].clone();
        assert!(cursor.is_string());
        while let Value::String(c) = cursor {
            let page = answers.page(&c, 1024).unwrap();
            assert!(text(&page).len() <= 1024);
            let content = page.structured_content.unwrap();
            seen += content["items"].as_array().unwrap().len();
            cursor = content["next_cursor"].clone();
        }
        assert_eq!(seen, 500);
        assert!(answers.page("7:0", 1024).unwrap_err().contains("expired"));
        assert!(answers.page("x", 1024).unwrap_err().contains("not one"));
    }
}
