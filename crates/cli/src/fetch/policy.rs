//! What to do with each answer: a pure decision, so every case is unit-tested without a server.

use std::time::Duration;

/// The longest `Retry-After` obeyed; a longer one is cut to this, and the user is told.
pub(crate) const MAX_RETRY_AFTER: Duration = Duration::from_secs(600);
/// First and largest pause after a 502/503/504 or a transport error.
const BACKOFF_FIRST: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(8);

/// What one attempt produced, as far as the decision needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Answer {
    /// No answer: connection refused or reset, DNS, a timeout, a TLS handshake cut short.
    Transport,
    /// The server's TLS certificate was refused: retrying cannot change that.
    Certificate,
    /// A response head.
    Head(Head),
}

/// The parts of a response head that decide what happens next.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Head {
    pub(crate) status: u16,
    /// The task that answered: `X-Heapgate-Task`, else the task named by the
    /// `Content-Disposition` filename.
    pub(crate) task: Option<String>,
    /// `Retry-After`, raw.
    pub(crate) retry_after: Option<String>,
}

/// The decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Action {
    /// A probe was answered by this task: target it from now on (no attempt used).
    Pin(String),
    /// The wanted task (or, when probing, the task to pin) sent its snapshot: save it.
    Save(String),
    /// Another task answered, or one that did not say which it is: retry at once on a new
    /// connection, after a few tens of milliseconds of jitter.
    Elsewhere(Option<String>),
    /// The task is busy: wait this long. `asked` is what the server asked for when it was more
    /// than [`MAX_RETRY_AFTER`].
    Wait { delay: Duration, asked: Option<u64> },
    /// Transient failure (502, 503, 504, transport): retry after the next backoff delay.
    Backoff,
    /// Retrying cannot help: give up with this message.
    Stop(String),
}

/// Decides what to do with `answer`; `target` is the pinned or requested task, `None` while
/// probing.
pub(crate) fn classify(answer: &Answer, target: Option<&str>) -> Action {
    let head = match answer {
        Answer::Transport => return Action::Backoff,
        Answer::Certificate => {
            return Action::Stop(
                "the server's TLS certificate was refused (a private CA can be trusted with \
                 SSL_CERT_FILE)"
                    .to_owned(),
            );
        }
        Answer::Head(head) => head,
    };
    let task = head.task.as_deref();
    let status = head.status;
    // A named task other than ours: whatever it says about itself (busy, broken, or a snapshot
    // it took despite `task=`), ours may be one connection away. Token problems are not
    // per-task, so 400 and 403 still stop below.
    if let (Some(target), Some(task)) = (target, task) {
        if task != target && (matches!(status, 200..=299 | 421 | 429) || status >= 500) {
            return Action::Elsewhere(Some(task.to_owned()));
        }
    }
    match status {
        200 => match (target, task) {
            (Some(target), Some(task)) if task == target => Action::Save(task.to_owned()),
            // A server that ignores `probe=1` took a snapshot: keep it, and pin its task.
            (None, Some(task)) => Action::Save(task.to_owned()),
            (_, task) => Action::Elsewhere(task.map(str::to_owned)),
        },
        204 => match (target, task) {
            (None, Some(task)) => Action::Pin(task.to_owned()),
            (None, None) => Action::Stop(
                "the probe answer (204) names no task (no X-Heapgate-Task): \
                 is BASE_URL served by heapgate-proxy?"
                    .to_owned(),
            ),
            (Some(_), _) => Action::Stop("unexpected 204 to a snapshot request".to_owned()),
        },
        421 => Action::Elsewhere(task.map(str::to_owned)),
        429 => match head
            .retry_after
            .as_deref()
            .map(str::trim)
            .map(str::parse::<u64>)
        {
            Some(Ok(seconds)) => {
                let asked = Duration::from_secs(seconds);
                if asked > MAX_RETRY_AFTER {
                    Action::Wait {
                        delay: MAX_RETRY_AFTER,
                        asked: Some(seconds),
                    }
                } else {
                    Action::Wait {
                        delay: asked,
                        asked: None,
                    }
                }
            }
            _ => Action::Backoff,
        },
        502..=504 => Action::Backoff,
        400 => Action::Stop(
            "bad request (400): the server refused the token's form; check BASE_URL and --path"
                .to_owned(),
        ),
        403 => Action::Stop("token rejected: check the secret, --value and the clocks".to_owned()),
        404 => Action::Stop("not found (404): check BASE_URL and --path".to_owned()),
        300..=399 => Action::Stop(format!(
            "redirected ({status}): heapgate does not send a token on to another address; \
             use the final address as BASE_URL"
        )),
        _ => Action::Stop(format!("unexpected answer {status}")),
    }
}

/// Bounded exponential backoff: 0.5 s, 1 s, 2 s, 4 s, then 8 s for good.
#[derive(Debug)]
pub(crate) struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            next: BACKOFF_FIRST,
        }
    }
}

impl Backoff {
    /// The delay to wait now; the following one doubles, up to the cap.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(BACKOFF_MAX);
        delay
    }
}

/// 10 to 59 ms, from a random number: spreads immediate retries without slowing them.
pub(crate) fn jitter(random: u64) -> Duration {
    Duration::from_millis(10 + random % 50)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(status: u16, task: Option<&str>) -> Answer {
        Answer::Head(Head {
            status,
            task: task.map(str::to_owned),
            retry_after: None,
        })
    }

    fn busy(retry_after: &str) -> Answer {
        Answer::Head(Head {
            status: 429,
            task: Some("t2".to_owned()),
            retry_after: Some(retry_after.to_owned()),
        })
    }

    #[test]
    fn the_wanted_task_is_saved_and_others_retried() {
        let t2 = Some("t2");
        assert_eq!(classify(&head(200, t2), t2), Action::Save("t2".to_owned()));
        assert_eq!(
            classify(&head(200, Some("t1")), t2),
            Action::Elsewhere(Some("t1".to_owned()))
        );
        assert_eq!(classify(&head(200, None), t2), Action::Elsewhere(None));
        assert_eq!(
            classify(&head(421, Some("t3")), t2),
            Action::Elsewhere(Some("t3".to_owned()))
        );
        assert_eq!(classify(&head(421, None), t2), Action::Elsewhere(None));
    }

    #[test]
    fn another_tasks_trouble_is_not_ours() {
        let t2 = Some("t2");
        for status in [429, 502, 503, 504, 500, 204] {
            assert_eq!(
                classify(&head(status, Some("t1")), t2),
                Action::Elsewhere(Some("t1".to_owned())),
                "{status}"
            );
        }
        // Token problems are the same on every task.
        for status in [400, 403] {
            assert!(matches!(
                classify(&head(status, Some("t1")), t2),
                Action::Stop(_)
            ));
        }
    }

    #[test]
    fn probing_pins_the_task_that_answers() {
        assert_eq!(
            classify(&head(204, Some("t1")), None),
            Action::Pin("t1".to_owned())
        );
        assert!(
            matches!(classify(&head(204, None), None), Action::Stop(m) if m.contains("X-Heapgate-Task"))
        );
        // A server without probe support sends a snapshot: it is kept.
        assert_eq!(
            classify(&head(200, Some("t1")), None),
            Action::Save("t1".to_owned())
        );
        assert_eq!(classify(&head(200, None), None), Action::Elsewhere(None));
        assert!(matches!(
            classify(&head(204, Some("t2")), Some("t2")),
            Action::Stop(_)
        ));
    }

    #[test]
    fn busy_waits_as_told_up_to_the_cap() {
        let t2 = Some("t2");
        assert_eq!(
            classify(&busy("1"), t2),
            Action::Wait {
                delay: Duration::from_secs(1),
                asked: None
            }
        );
        assert_eq!(
            classify(&busy(" 600 "), t2),
            Action::Wait {
                delay: MAX_RETRY_AFTER,
                asked: None
            }
        );
        assert_eq!(
            classify(&busy("3600"), t2),
            Action::Wait {
                delay: MAX_RETRY_AFTER,
                asked: Some(3600)
            }
        );
        for unusable in ["", "soon", "-1", "Wed, 21 Oct 2015 07:28:00 GMT"] {
            assert_eq!(classify(&busy(unusable), t2), Action::Backoff, "{unusable}");
        }
        assert_eq!(classify(&head(429, Some("t2")), t2), Action::Backoff);
    }

    #[test]
    fn transient_failures_back_off() {
        for answer in [
            Answer::Transport,
            head(502, None),
            head(503, None),
            head(504, Some("t2")),
        ] {
            assert_eq!(classify(&answer, Some("t2")), Action::Backoff, "{answer:?}");
            assert_eq!(classify(&answer, None), Action::Backoff, "{answer:?}");
        }
    }

    #[test]
    fn a_refused_certificate_stops() {
        assert!(matches!(
            classify(&Answer::Certificate, Some("t2")),
            Action::Stop(m) if m.contains("SSL_CERT_FILE")
        ));
    }

    #[test]
    fn everything_else_stops_with_a_reason() {
        let stop = |status| match classify(&head(status, Some("t2")), Some("t2")) {
            Action::Stop(message) => message,
            other => panic!("{status}: {other:?}"),
        };
        assert_eq!(
            stop(403),
            "token rejected: check the secret, --value and the clocks"
        );
        assert!(stop(400).contains("400"));
        assert!(stop(404).contains("--path"));
        assert!(stop(302).contains("redirected (302)"));
        assert_eq!(stop(500), "unexpected answer 500");
        assert_eq!(stop(418), "unexpected answer 418");
    }

    #[test]
    fn backoff_doubles_to_a_cap() {
        let mut backoff = Backoff::default();
        let delays: Vec<u64> = (0..7)
            .map(|_| backoff.next_delay().as_millis().try_into().unwrap())
            .collect();
        assert_eq!(delays, [500, 1000, 2000, 4000, 8000, 8000, 8000]);
    }

    #[test]
    fn jitter_is_tens_of_milliseconds() {
        for random in [0, 1, 49, 50, u64::MAX] {
            let ms = jitter(random).as_millis();
            assert!((10..60).contains(&ms), "{random}: {ms}");
        }
    }
}
