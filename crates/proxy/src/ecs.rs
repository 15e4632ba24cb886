//! The ECS task metadata endpoint (v4), `${ECS_CONTAINER_METADATA_URI_V4}/task`: read once at
//! start for the two things the sidecar takes from it, the task's ARN (its id, [`crate::task`])
//! and `Limits.Memory` (the ceiling the app and this sidecar share, for the headroom rule; on
//! Fargate, the task size).

use std::time::Duration;

use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// Largest metadata response read.
const MAX_METADATA_BYTES: usize = 1 << 20;
/// Attempts, each within [`ATTEMPT_TIMEOUT`]: the agent may start after us.
const ATTEMPTS: u32 = 3;
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);

/// What the task document says that the sidecar uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TaskMetadata {
    /// `TaskARN`.
    pub(crate) arn: String,
    /// `Limits.Memory`, in bytes (the document says MiB), when the task has one.
    pub(crate) memory: Option<u64>,
}

/// The task document under `base`, or why it could not be read: where it was asked for, and
/// what it answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EcsTask {
    pub(crate) url: String,
    pub(crate) read: Result<TaskMetadata, String>,
}

impl EcsTask {
    /// Reads `<base>/task`, retried briefly (0.5 s, then 1 s between attempts).
    pub(crate) async fn read(base: &str) -> EcsTask {
        let url = format!("{}/task", base.trim_end_matches('/'));
        let mut last = String::new();
        for attempt in 1..=ATTEMPTS {
            match tokio::time::timeout(ATTEMPT_TIMEOUT, get(&url)).await {
                Ok(Ok(body)) => {
                    let read = parse(&body);
                    return EcsTask { url, read };
                }
                Ok(Err(reason)) => last = reason,
                Err(_) => last = "timed out".to_owned(),
            }
            if attempt < ATTEMPTS {
                tokio::time::sleep(Duration::from_millis(500 * u64::from(attempt))).await;
            }
        }
        EcsTask {
            url,
            read: Err(last),
        }
    }
}

fn parse(body: &[u8]) -> Result<TaskMetadata, String> {
    #[derive(serde::Deserialize)]
    struct Task {
        #[serde(rename = "TaskARN")]
        arn: String,
        #[serde(rename = "Limits", default)]
        limits: Option<Limits>,
    }
    #[derive(serde::Deserialize)]
    struct Limits {
        #[serde(rename = "Memory", default)]
        memory: Option<serde_json::Value>,
    }
    let task: Task = serde_json::from_slice(body).map_err(|e| format!("bad JSON: {e}"))?;
    let memory = task
        .limits
        .and_then(|l| l.memory)
        .and_then(|m| m.as_u64())
        .filter(|mib| *mib > 0)
        .map(|mib| mib << 20);
    Ok(TaskMetadata {
        arn: task.arn,
        memory,
    })
}

async fn get(url: &str) -> Result<bytes::Bytes, String> {
    let uri: http::Uri = url.parse().map_err(|_| "not a valid URL".to_owned())?;
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<bytes::Bytes>>();
    let response = client.get(uri).await.map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(format!("HTTP {}", response.status()));
    }
    Ok(Limited::new(response.into_body(), MAX_METADATA_BYTES)
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_arn_and_the_task_limit_in_mib() {
        let fargate = br#"{"TaskARN":"arn:aws:ecs:us-west-2:1:task/c/abc","Limits":{"CPU":0.25,"Memory":512},"Containers":[]}"#;
        assert_eq!(
            parse(fargate).unwrap(),
            TaskMetadata {
                arn: "arn:aws:ecs:us-west-2:1:task/c/abc".to_owned(),
                memory: Some(512 << 20)
            }
        );
        assert_eq!(parse(br#"{"TaskARN":"x"}"#).unwrap().memory, None);
        assert_eq!(
            parse(br#"{"TaskARN":"x","Limits":{"Memory":0}}"#)
                .unwrap()
                .memory,
            None
        );
        assert!(parse(b"<html>").is_err());
        assert!(parse(br#"{"Limits":{"Memory":512}}"#).is_err());
    }

    #[tokio::test]
    async fn an_unreachable_endpoint_is_reported_with_its_url() {
        // Port 1 on loopback refuses at once; three attempts take 1.5 s of backoff.
        let task = EcsTask::read("http://127.0.0.1:1/v4/abc/").await;
        assert_eq!(task.url, "http://127.0.0.1:1/v4/abc/task");
        assert!(task.read.is_err());
    }
}
