//! This instance's identity: the id that `task=` is compared with and that names snapshots.
//!
//! Behind a load balancer, a client can only land on the task it wants by asking and being told
//! "not me" (421), so every instance must know a stable, unique id: `--task-id` when given, else
//! the ECS task id from the task metadata endpoint (v4), else the hostname (a pod name on
//! Kubernetes).

use std::time::Duration;

use heapgate_protocol::{InvalidTaskId, TaskId};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::config::TaskIdSource;

/// Largest metadata response read.
const MAX_METADATA_BYTES: usize = 1 << 20;

/// Why a task id could not be determined.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TaskIdError {
    #[error(transparent)]
    Invalid(#[from] InvalidTaskId),
    #[error("cannot read the ECS task metadata at {url}: {reason}; set --task-id")]
    Metadata { url: String, reason: String },
    #[error("no task id: pass --task-id (no ECS metadata endpoint and no hostname)")]
    Missing,
}

/// Where the task id came from, for the startup log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TaskIdOrigin {
    Flag,
    EcsMetadata,
    Hostname,
}

/// This instance's identity, and the task's memory when the ECS metadata said it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Identity {
    pub(crate) id: TaskId,
    pub(crate) origin: TaskIdOrigin,
    /// `Limits.Memory` of the task, bytes, when read from the metadata (one request for both).
    pub(crate) ecs_memory: Option<u64>,
}

/// Determines the task id: the given one, else ECS metadata at `ecs_metadata_uri`, else
/// `hostname`.
pub(crate) async fn discover(
    source: &TaskIdSource,
    ecs_metadata_uri: Option<&str>,
    hostname: Option<String>,
) -> Result<Identity, TaskIdError> {
    let identity = |id, origin| Identity {
        id,
        origin,
        ecs_memory: None,
    };
    if let TaskIdSource::Given(id) = source {
        return Ok(identity(id.clone(), TaskIdOrigin::Flag));
    }
    if let Some(base) = ecs_metadata_uri.filter(|u| !u.is_empty()) {
        let url = format!("{}/task", base.trim_end_matches('/'));
        let (arn, memory) = fetch_task_arn(&url)
            .await
            .map_err(|reason| TaskIdError::Metadata {
                url: url.clone(),
                reason,
            })?;
        return Ok(Identity {
            ecs_memory: memory,
            ..identity(task_id_from_arn(&arn)?, TaskIdOrigin::EcsMetadata)
        });
    }
    match hostname.filter(|h| !h.is_empty()) {
        Some(host) => Ok(identity(TaskId::new(&host)?, TaskIdOrigin::Hostname)),
        None => Err(TaskIdError::Missing),
    }
}

/// The id is the text after the last `/` of the ARN (`…:task/cluster/ID` or legacy `…:task/ID`).
fn task_id_from_arn(arn: &str) -> Result<TaskId, TaskIdError> {
    Ok(TaskId::new(arn.rsplit('/').next().unwrap_or(arn))?)
}

/// `TaskARN` (and `Limits.Memory`) from the metadata endpoint, retried briefly: the agent may
/// start after us.
async fn fetch_task_arn(url: &str) -> Result<(String, Option<u64>), String> {
    const ATTEMPTS: u32 = 3;
    let mut last = String::new();
    for attempt in 1..=ATTEMPTS {
        match tokio::time::timeout(Duration::from_secs(2), get_task_arn(url)).await {
            Ok(Ok(arn)) => return Ok(arn),
            Ok(Err(reason)) => last = reason,
            Err(_) => last = "timed out".to_owned(),
        }
        if attempt < ATTEMPTS {
            tokio::time::sleep(Duration::from_millis(500 * u64::from(attempt))).await;
        }
    }
    Err(last)
}

async fn get_task_arn(url: &str) -> Result<(String, Option<u64>), String> {
    let uri: http::Uri = url.parse().map_err(|_| "not a valid URL".to_owned())?;
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<bytes::Bytes>>();
    let response = client.get(uri).await.map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(format!("HTTP {}", response.status()));
    }
    let body = Limited::new(response.into_body(), MAX_METADATA_BYTES)
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    #[derive(serde::Deserialize)]
    struct Task {
        #[serde(rename = "TaskARN")]
        task_arn: String,
    }
    let task: Task = serde_json::from_slice(&body).map_err(|e| format!("bad JSON: {e}"))?;
    let memory = crate::headroom::limit::task_memory(&body).ok().flatten();
    Ok((task.task_arn, memory))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_from_arns() {
        let arn =
            "arn:aws:ecs:us-west-2:111122223333:task/default/8f03e41243824aea923aca126495f665";
        assert_eq!(
            task_id_from_arn(arn).unwrap().as_str(),
            "8f03e41243824aea923aca126495f665"
        );
        let legacy = "arn:aws:ecs:us-west-2:111122223333:task/1dc5c17a-422b-4dc4-b493-371970c6c4d6";
        assert_eq!(
            task_id_from_arn(legacy).unwrap().as_str(),
            "1dc5c17a-422b-4dc4-b493-371970c6c4d6"
        );
    }

    #[tokio::test]
    async fn flag_wins_then_hostname() {
        let given = TaskIdSource::Given(TaskId::new("t1").unwrap());
        let found = discover(&given, Some("http://127.0.0.1:1"), Some("h".into()))
            .await
            .unwrap();
        assert_eq!(
            (found.id.as_str(), found.origin),
            ("t1", TaskIdOrigin::Flag)
        );
        let found = discover(&TaskIdSource::Discover, None, Some("pod-1".into()))
            .await
            .unwrap();
        assert_eq!(
            (found.id.as_str(), found.origin),
            ("pod-1", TaskIdOrigin::Hostname)
        );
        assert_eq!(
            discover(&TaskIdSource::Discover, None, None)
                .await
                .unwrap_err(),
            TaskIdError::Missing
        );
    }
}
