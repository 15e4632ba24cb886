//! This instance's identity: the id that `task=` is compared with and that names snapshots.
//!
//! Behind a load balancer, a client can only land on the task it wants by asking and being told
//! "not me" (421), so every instance must know a stable, unique id: `--task-id` when given, else
//! the ECS task id from the task metadata ([`crate::ecs`]), else the hostname (a pod name on
//! Kubernetes).

use heapgate_protocol::{InvalidTaskId, TaskId};

use crate::config::TaskIdSource;
use crate::ecs::EcsTask;

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

/// This instance's identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Identity {
    pub(crate) id: TaskId,
    pub(crate) origin: TaskIdOrigin,
}

/// Determines the task id: the given one, else the ECS task's (`ecs`, read when on ECS), else
/// `hostname`.
pub(crate) fn discover(
    source: &TaskIdSource,
    ecs: Option<&EcsTask>,
    hostname: Option<String>,
) -> Result<Identity, TaskIdError> {
    if let TaskIdSource::Given(id) = source {
        return Ok(Identity {
            id: id.clone(),
            origin: TaskIdOrigin::Flag,
        });
    }
    if let Some(ecs) = ecs {
        let metadata = ecs.read.as_ref().map_err(|reason| TaskIdError::Metadata {
            url: ecs.url.clone(),
            reason: reason.clone(),
        })?;
        return Ok(Identity {
            id: task_id_from_arn(&metadata.arn)?,
            origin: TaskIdOrigin::EcsMetadata,
        });
    }
    match hostname.filter(|h| !h.is_empty()) {
        Some(host) => Ok(Identity {
            id: TaskId::new(&host)?,
            origin: TaskIdOrigin::Hostname,
        }),
        None => Err(TaskIdError::Missing),
    }
}

/// The id is the text after the last `/` of the ARN (`…:task/cluster/ID` or legacy `…:task/ID`).
fn task_id_from_arn(arn: &str) -> Result<TaskId, TaskIdError> {
    Ok(TaskId::new(arn.rsplit('/').next().unwrap_or(arn))?)
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

    #[test]
    fn flag_wins_then_ecs_then_hostname() {
        let ecs = |read| EcsTask {
            url: "http://169.254.170.2/v4/abc/task".to_owned(),
            read,
        };
        let on_ecs = ecs(Ok(crate::ecs::TaskMetadata {
            arn: "arn:aws:ecs:us-west-2:1:task/c/abc".to_owned(),
            memory: None,
        }));
        let given = TaskIdSource::Given(TaskId::new("t1").unwrap());
        let found = discover(&given, Some(&ecs(Err("refused".into()))), Some("h".into())).unwrap();
        assert_eq!(
            (found.id.as_str(), found.origin),
            ("t1", TaskIdOrigin::Flag)
        );
        let found = discover(&TaskIdSource::Discover, Some(&on_ecs), Some("h".into())).unwrap();
        assert_eq!(
            (found.id.as_str(), found.origin),
            ("abc", TaskIdOrigin::EcsMetadata)
        );
        assert_eq!(
            discover(
                &TaskIdSource::Discover,
                Some(&ecs(Err("refused".into()))),
                Some("h".into())
            ),
            Err(TaskIdError::Metadata {
                url: "http://169.254.170.2/v4/abc/task".to_owned(),
                reason: "refused".to_owned()
            })
        );
        let found = discover(&TaskIdSource::Discover, None, Some("pod-1".into())).unwrap();
        assert_eq!(
            (found.id.as_str(), found.origin),
            ("pod-1", TaskIdOrigin::Hostname)
        );
        assert_eq!(
            discover(&TaskIdSource::Discover, None, None).unwrap_err(),
            TaskIdError::Missing
        );
    }
}
