//! The app's memory limit, for the headroom guard: `--app-memory-limit`, else the ECS task's.
//!
//! On ECS the task metadata endpoint v4 (`${ECS_CONTAINER_METADATA_URI_V4}/task`) gives the
//! task's `Limits.Memory` in MiB, the ceiling the app and this sidecar share (on Fargate, the
//! task size). On Kubernetes, pass the app container's limit through the downward API into
//! `HEAPGATE_APP_MEMORY_LIMIT` (`resourceFieldRef: {containerName: app, resource:
//! limits.memory}` gives plain bytes).

use std::time::Duration;

use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

const MAX_METADATA_BYTES: usize = 1 << 20;

/// The task's memory limit in bytes from the ECS metadata at `base`, if it has one.
pub(crate) async fn ecs_task_memory(base: &str) -> Result<Option<u64>, String> {
    let url = format!("{}/task", base.trim_end_matches('/'));
    let body = tokio::time::timeout(Duration::from_secs(2), get(&url))
        .await
        .map_err(|_| "timed out".to_owned())??;
    task_memory(&body)
}

fn task_memory(body: &[u8]) -> Result<Option<u64>, String> {
    let task: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("bad JSON: {e}"))?;
    Ok(task
        .pointer("/Limits/Memory")
        .and_then(serde_json::Value::as_u64)
        .filter(|mib| *mib > 0)
        .map(|mib| mib << 20))
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
    fn reads_the_task_limit_in_mib() {
        let fargate = br#"{"TaskARN":"arn:aws:ecs:us-west-2:1:task/c/abc","Limits":{"CPU":0.25,"Memory":512},"Containers":[]}"#;
        assert_eq!(task_memory(fargate).unwrap(), Some(512 << 20));
        assert_eq!(task_memory(br#"{"TaskARN":"x"}"#).unwrap(), None);
        assert!(task_memory(b"<html>").is_err());
    }
}
