//! Landing on one task behind a load balancer: the policy `heapgate fetch` and the gateway share.
//!
//! A balancer picks a task per connection, so a client reaches the task it wants by asking on new
//! connections until that task answers; the others answer 421 (or name themselves) without
//! taking anything. [`Landing`] decides what each answer means: deliver it, pin the task a probe
//! found, wait as a busy task asks, retry elsewhere at once, back off after a transient failure,
//! or stop because retrying cannot help. It counts attempts against a budget and, when the budget
//! is spent, says what it saw ([`NotReached`]). It does no I/O and reads no clock: the caller
//! sends the requests and sleeps the delays it is given.

use std::fmt;
use std::time::Duration;

use crate::task::TaskId;

/// Attempts per snapshot unless configured otherwise: enough to land on one of a few dozen tasks
/// behind a round-robin or random balancer.
pub const DEFAULT_ATTEMPTS: u32 = 30;
/// The longest `Retry-After` obeyed; a longer one is cut to this, and the caller is told.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(600);
/// First pause after a 502/503/504 or a transport error; it doubles up to [`BACKOFF_MAX`].
pub const BACKOFF_FIRST: Duration = Duration::from_millis(250);
pub const BACKOFF_MAX: Duration = Duration::from_secs(4);
/// Other tasks named in a [`NotReached`] report before it says `…`.
const LISTED_TASKS: usize = 8;
/// Why a 200 that names no task stops the landing at once.
pub const NOT_HEAPGATE: &str = "a 200 without X-Heapgate-Task is not heapgate-proxy's answer; \
     check that the URL is the sidecar's or the gateway's (not the app's) and that the path is its \
     snapshot path";

/// What one attempt produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// No answer: connection refused or reset, DNS, a timeout. The text says which.
    Transport(String),
    /// The server's TLS certificate was refused: retrying cannot change that.
    Certificate(String),
    /// A response head.
    Head(Head),
}

/// The parts of a response head that decide what happens next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    status: u16,
    task: Option<TaskId>,
    retry_after: Option<String>,
}

impl Head {
    /// `task` is the task the answer names (see [`crate::names_task`] for when to believe
    /// `X-Heapgate-Task`); `retry_after` is the raw `Retry-After`.
    pub fn new(status: u16, task: Option<TaskId>, retry_after: Option<String>) -> Head {
        Head {
            status,
            task,
            retry_after,
        }
    }

    pub fn status(&self) -> u16 {
        self.status
    }

    pub fn task(&self) -> Option<&TaskId> {
        self.task.as_ref()
    }
}

/// Why to try again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Retry {
    /// Another task answered (or one that did not say which it is): ours may be one new
    /// connection away.
    Elsewhere(Option<TaskId>),
    /// A transient failure (502, 503, 504, no answer).
    Unavailable,
}

/// The decision on one answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// The task wanted (or, with none chosen yet, the first to answer) sent what was asked for:
    /// use this answer. It is now the target.
    Deliver(TaskId),
    /// A probe was answered by this task: it is now the target. A probe is not an attempt at
    /// the snapshot, so it is not counted.
    Pinned(TaskId),
    /// The wanted task is busy and asks to wait `delay`; `asked` is what it asked for when that
    /// was more than [`MAX_RETRY_AFTER`]. A gateway hands this answer back instead of holding its
    /// client for minutes.
    Busy { delay: Duration, asked: Option<u64> },
    /// Try again after `delay` (tens of milliseconds for another task, the backoff otherwise).
    Retry { delay: Duration, why: Retry },
    /// Retrying cannot help.
    Stop(String),
}

/// The land-on-a-task state machine; see the module docs.
#[derive(Debug, Clone)]
pub struct Landing {
    target: Option<TaskId>,
    probe: bool,
    budget: u32,
    attempts: u32,
    backoff: Duration,
    others: Vec<TaskId>,
    unnamed: u32,
    last: Option<String>,
    random: u64,
}

impl Landing {
    /// `target`: the task wanted, `None` for whichever answers first. `probe`: requests ask
    /// `probe=1` (only name the task) until a task is pinned. `budget`: attempts allowed (at
    /// least 1). `seed` varies the jitter between clients.
    pub fn new(target: Option<TaskId>, probe: bool, budget: u32, seed: u64) -> Landing {
        Landing {
            target,
            probe,
            budget: budget.max(1),
            attempts: 0,
            backoff: BACKOFF_FIRST,
            others: Vec::new(),
            unnamed: 0,
            last: None,
            random: seed | 1,
        }
    }

    /// The task to ask for now (`task=`), if any.
    pub fn target(&self) -> Option<&TaskId> {
        self.target.as_ref()
    }

    /// Whether the next request is a probe (`probe=1`).
    pub fn probing(&self) -> bool {
        self.probe
    }

    /// Starts an attempt: its number, or `None` when the budget is spent (then see
    /// [`Landing::not_reached`]).
    pub fn next_attempt(&mut self) -> Option<u32> {
        (self.attempts < self.budget).then(|| {
            self.attempts += 1;
            self.attempts
        })
    }

    /// Whether another attempt may follow this one (so a caller need not wait after the last).
    pub fn has_attempts_left(&self) -> bool {
        self.attempts < self.budget
    }

    /// Attempts made so far.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Decides what to do with `answer` to the current attempt.
    pub fn answer(&mut self, answer: &Answer) -> Step {
        let step = self.decide(answer);
        match &step {
            Step::Deliver(task) => {
                self.target = Some(task.clone());
                self.probe = false;
            }
            Step::Pinned(task) => {
                self.target = Some(task.clone());
                self.probe = false;
                self.attempts -= 1;
            }
            Step::Retry {
                why: Retry::Elsewhere(task),
                ..
            } => match task {
                Some(task) if Some(task) != self.target.as_ref() => {
                    if !self.others.contains(task) {
                        self.others.push(task.clone());
                    }
                }
                Some(_) => {}
                None => self.unnamed += 1,
            },
            _ => {}
        }
        if !matches!(step, Step::Deliver(_) | Step::Pinned(_)) {
            self.last = Some(self.describe(answer));
        }
        step
    }

    /// The delivery of an answer this policy accepted failed part-way (the stream broke): the
    /// pause before trying again, which uses an attempt like any other.
    pub fn delivery_failed(&mut self, why: &str) -> Duration {
        self.last = Some(why.to_owned());
        self.next_backoff()
    }

    /// `421 Misdirected Request from task t1`, `200 OK from task t1, not t2`, or the transport
    /// error: one answer as a progress line or report shows it.
    pub fn describe(&self, answer: &Answer) -> String {
        match answer {
            Answer::Transport(why) | Answer::Certificate(why) => why.clone(),
            Answer::Head(head) => {
                let status = status_text(head.status);
                match (&head.task, &self.target) {
                    (Some(task), Some(target)) if task != target && head.status < 300 => {
                        format!("{status} from task {task}, not {target}")
                    }
                    (Some(task), _) => format!("{status} from task {task}"),
                    (None, _) => status,
                }
            }
        }
    }

    /// What was seen, once the budget is spent.
    pub fn not_reached(&self) -> NotReached {
        NotReached {
            target: self.target.clone(),
            probe: self.probe,
            attempts: self.attempts,
            others: self.others.clone(),
            unnamed: self.unnamed,
            last: self.last.clone(),
        }
    }

    fn decide(&mut self, answer: &Answer) -> Step {
        let head = match answer {
            Answer::Transport(_) => return self.backoff(),
            Answer::Certificate(_) => {
                return Step::Stop(
                    "the server's TLS certificate was refused (a private CA can be trusted with \
                     SSL_CERT_FILE)"
                        .to_owned(),
                );
            }
            Answer::Head(head) => head,
        };
        let status = head.status;
        let task = head.task.as_ref();
        // A named task other than ours: whatever it says about itself (busy, broken, or a
        // snapshot it took despite `task=`), ours may be one connection away. Token problems
        // are not per-task, so 400 and 403 still stop below.
        if let (Some(target), Some(task)) = (&self.target, task)
            && task != target
            && (matches!(status, 200..=299 | 421 | 429) || status >= 500)
        {
            return self.elsewhere(Some(task.clone()));
        }
        match status {
            // The target's snapshot; or, with none chosen, the first task's (a server that
            // ignores `probe=1` took one: keep it).
            200 => match task {
                Some(task) => Step::Deliver(task.clone()),
                // A sidecar names its task on every snapshot answer, so a 200 that names none
                // came from something else (the app itself, a wrong path): never keep it, and
                // never ask again, which would only hand the token to that again.
                None => Step::Stop(NOT_HEAPGATE.to_owned()),
            },
            204 if !self.probe => Step::Stop("unexpected 204 to a snapshot request".to_owned()),
            204 => match task {
                Some(task) => Step::Pinned(task.clone()),
                None => Step::Stop(
                    "the probe answer (204) names no task (no X-Heapgate-Task): is the URL \
                     served by heapgate-proxy?"
                        .to_owned(),
                ),
            },
            421 => self.elsewhere(task.cloned()),
            429 => match head.retry_after.as_deref().map(str::trim).map(str::parse) {
                Some(Ok(seconds)) => {
                    let asked = Duration::from_secs(seconds);
                    Step::Busy {
                        delay: asked.min(MAX_RETRY_AFTER),
                        asked: (asked > MAX_RETRY_AFTER).then_some(seconds),
                    }
                }
                _ => self.backoff(),
            },
            502..=504 => self.backoff(),
            400 => Step::Stop(
                "bad request (400): the server refused the token's form; check the URL and --path"
                    .to_owned(),
            ),
            403 => {
                Step::Stop("token rejected: check the secret, --value and the clocks".to_owned())
            }
            404 => Step::Stop("not found (404): check the URL and --path".to_owned()),
            507 => Step::Stop(
                "refused (507): a heap snapshot would not fit in this task's memory; take its \
                 sampling heap profile instead"
                    .to_owned(),
            ),
            300..=399 => Step::Stop(format!(
                "redirected ({status}): heapgate does not send a token on to another address; \
                 use the final address"
            )),
            _ => Step::Stop(format!("unexpected answer {}", status_text(status))),
        }
    }

    fn elsewhere(&mut self, task: Option<TaskId>) -> Step {
        // 10 to 59 ms: spreads immediate retries without slowing them (xorshift64).
        self.random ^= self.random << 13;
        self.random ^= self.random >> 7;
        self.random ^= self.random << 17;
        Step::Retry {
            delay: Duration::from_millis(10 + self.random % 50),
            why: Retry::Elsewhere(task),
        }
    }

    fn backoff(&mut self) -> Step {
        Step::Retry {
            delay: self.next_backoff(),
            why: Retry::Unavailable,
        }
    }

    fn next_backoff(&mut self) -> Duration {
        let delay = self.backoff;
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
        delay
    }
}

/// `421 Misdirected Request`; the number alone for statuses without a reason phrase.
fn status_text(status: u16) -> String {
    let reason = http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason());
    match reason {
        Some(reason) => format!("{status} {reason}"),
        None => status.to_string(),
    }
}

/// The attempt budget was spent: what the attempts saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotReached {
    target: Option<TaskId>,
    probe: bool,
    attempts: u32,
    others: Vec<TaskId>,
    unnamed: u32,
    last: Option<String>,
}

/// `task t2 not reached in 30 attempts (2 other tasks answered: t1, t3; last: …)`.
impl fmt::Display for NotReached {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tries = if self.attempts == 1 {
            "attempt"
        } else {
            "attempts"
        };
        match (&self.target, self.probe) {
            (Some(task), _) => write!(f, "task {task} not reached in {} {tries}", self.attempts)?,
            (None, true) => write!(f, "no task answered the probe in {} {tries}", self.attempts)?,
            (None, false) => write!(f, "no task answered in {} {tries}", self.attempts)?,
        }
        let mut notes = Vec::new();
        if !self.others.is_empty() {
            let n = self.others.len();
            let mut listed: Vec<&str> = self
                .others
                .iter()
                .take(LISTED_TASKS)
                .map(TaskId::as_str)
                .collect();
            if n > LISTED_TASKS {
                listed.push("…");
            }
            let tasks = if n == 1 { "task" } else { "tasks" };
            notes.push(format!("{n} other {tasks} answered: {}", listed.join(", ")));
        }
        if self.unnamed > 0 {
            let answers = if self.unnamed == 1 {
                "answer"
            } else {
                "answers"
            };
            notes.push(format!("{} {answers} named no task", self.unnamed));
        }
        if let Some(last) = &self.last {
            notes.push(format!("last: {last}"));
        }
        if !notes.is_empty() {
            write!(f, " ({})", notes.join("; "))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(task: &str) -> TaskId {
        TaskId::new(task).unwrap()
    }

    fn head(status: u16, task: Option<&str>) -> Answer {
        Answer::Head(Head::new(status, task.map(id), None))
    }

    fn busy(retry_after: &str) -> Answer {
        Answer::Head(Head::new(429, Some(id("t2")), Some(retry_after.to_owned())))
    }

    fn to(target: Option<&str>) -> Landing {
        Landing::new(target.map(id), target.is_none(), 30, 1)
    }

    fn step(target: Option<&str>, answer: &Answer) -> Step {
        let mut landing = to(target);
        landing.next_attempt();
        landing.answer(answer)
    }

    fn is_elsewhere(step: &Step, task: Option<&str>) -> bool {
        matches!(step, Step::Retry { delay, why: Retry::Elsewhere(t) }
            if t.as_ref().map(TaskId::as_str) == task && delay.as_millis() < 60)
    }

    fn is_backoff(step: &Step) -> bool {
        matches!(
            step,
            Step::Retry {
                why: Retry::Unavailable,
                ..
            }
        )
    }

    #[test]
    fn the_wanted_task_is_delivered_and_others_retried() {
        let t2 = Some("t2");
        assert_eq!(step(t2, &head(200, t2)), Step::Deliver(id("t2")));
        assert!(is_elsewhere(&step(t2, &head(200, Some("t1"))), Some("t1")));
        assert!(is_elsewhere(&step(t2, &head(421, Some("t3"))), Some("t3")));
        assert!(is_elsewhere(&step(t2, &head(421, None)), None));
    }

    #[test]
    fn another_tasks_trouble_is_not_ours() {
        let t2 = Some("t2");
        for status in [429, 502, 503, 504, 500, 204] {
            assert!(
                is_elsewhere(&step(t2, &head(status, Some("t1"))), Some("t1")),
                "{status}"
            );
        }
        // Token problems are the same on every task.
        for status in [400, 403] {
            assert!(matches!(step(t2, &head(status, Some("t1"))), Step::Stop(_)));
        }
    }

    #[test]
    fn probing_pins_the_task_that_answers_without_using_an_attempt() {
        let mut landing = to(None);
        assert!(landing.probing());
        assert_eq!(landing.next_attempt(), Some(1));
        assert_eq!(
            landing.answer(&head(204, Some("t1"))),
            Step::Pinned(id("t1"))
        );
        assert_eq!(landing.target(), Some(&id("t1")));
        assert!(!landing.probing());
        assert_eq!(landing.next_attempt(), Some(1));

        assert!(
            matches!(step(None, &head(204, None)), Step::Stop(m) if m.contains("X-Heapgate-Task"))
        );
        // A server without probe support sends a snapshot: it is kept.
        assert_eq!(step(None, &head(200, Some("t1"))), Step::Deliver(id("t1")));
        assert!(matches!(
            step(Some("t2"), &head(204, Some("t2"))),
            Step::Stop(_)
        ));
        // A probe for a given task (the gateway forwards its client's) pins it when it answers.
        let mut landing = Landing::new(Some(id("t2")), true, 30, 1);
        landing.next_attempt();
        assert_eq!(
            landing.answer(&head(204, Some("t2"))),
            Step::Pinned(id("t2"))
        );
    }

    #[test]
    fn busy_waits_as_told_up_to_the_cap() {
        let t2 = Some("t2");
        let wait = |delay, asked| Step::Busy {
            delay: Duration::from_secs(delay),
            asked,
        };
        assert_eq!(step(t2, &busy("1")), wait(1, None));
        assert_eq!(step(t2, &busy(" 600 ")), wait(600, None));
        assert_eq!(step(t2, &busy("3600")), wait(600, Some(3600)));
        for unusable in ["", "soon", "-1", "Wed, 21 Oct 2015 07:28:00 GMT"] {
            assert!(is_backoff(&step(t2, &busy(unusable))), "{unusable}");
        }
        assert!(is_backoff(&step(t2, &head(429, Some("t2")))));
    }

    /// The app (or anything but a sidecar) answering 200 gets the token once, never again.
    #[test]
    fn a_200_that_names_no_task_stops_at_once() {
        for target in [None, Some("t2")] {
            assert_eq!(
                step(target, &head(200, None)),
                Step::Stop(NOT_HEAPGATE.to_owned()),
                "{target:?}"
            );
        }
    }

    #[test]
    fn transient_failures_back_off_doubling_to_a_cap() {
        for answer in [
            Answer::Transport("connection refused".into()),
            head(502, None),
            head(503, None),
            head(504, Some("t2")),
        ] {
            assert!(is_backoff(&step(Some("t2"), &answer)), "{answer:?}");
            assert!(is_backoff(&step(None, &answer)), "{answer:?}");
        }
        let mut landing = to(Some("t2"));
        let delays: Vec<u128> = (0..7)
            .map(|_| match landing.answer(&head(503, None)) {
                Step::Retry { delay, .. } => delay.as_millis(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(delays, [250, 500, 1000, 2000, 4000, 4000, 4000]);
    }

    #[test]
    fn everything_else_stops_with_a_reason() {
        let stop = |status| match step(Some("t2"), &head(status, Some("t2"))) {
            Step::Stop(message) => message,
            other => panic!("{status}: {other:?}"),
        };
        assert_eq!(
            stop(403),
            "token rejected: check the secret, --value and the clocks"
        );
        assert!(stop(400).contains("400"));
        assert!(stop(404).contains("--path"));
        assert!(stop(302).contains("redirected (302)"));
        assert_eq!(stop(500), "unexpected answer 500 Internal Server Error");
        assert_eq!(stop(418), "unexpected answer 418 I'm a teapot");
        assert!(matches!(
            step(Some("t2"), &Answer::Certificate("bad cert".into())),
            Step::Stop(m) if m.contains("SSL_CERT_FILE")
        ));
    }

    #[test]
    fn the_budget_ends_in_a_report_of_what_answered() {
        let mut landing = Landing::new(Some(id("t2")), false, 5, 9);
        let answers = [
            head(421, Some("t1")),
            head(421, Some("t3")),
            head(421, Some("t1")),
            head(421, None),
            Answer::Transport("connection refused".into()),
        ];
        for answer in &answers {
            assert!(landing.next_attempt().is_some());
            landing.answer(answer);
        }
        assert!(!landing.has_attempts_left());
        assert_eq!(landing.next_attempt(), None);
        assert_eq!(
            landing.not_reached().to_string(),
            "task t2 not reached in 5 attempts (2 other tasks answered: t1, t3; \
             1 answer named no task; last: connection refused)"
        );
        let mut probe = to(None);
        probe.next_attempt();
        probe.answer(&Answer::Transport("connection refused".into()));
        assert_eq!(
            probe.not_reached().to_string(),
            "no task answered the probe in 1 attempt (last: connection refused)"
        );
        let many = Landing {
            others: (0..10).map(|i| id(&format!("t{i}"))).collect(),
            ..to(Some("x"))
        };
        assert!(many.not_reached().to_string().contains("t7, …"));
    }

    #[test]
    fn answers_are_described_as_progress_lines_show_them() {
        let landing = to(Some("t2"));
        assert_eq!(
            landing.describe(&head(200, Some("t1"))),
            "200 OK from task t1, not t2"
        );
        assert_eq!(
            landing.describe(&head(421, Some("t1"))),
            "421 Misdirected Request from task t1"
        );
        assert_eq!(
            landing.describe(&head(503, None)),
            "503 Service Unavailable"
        );
    }

    #[test]
    fn jitter_is_tens_of_milliseconds() {
        for seed in [0, 1, 49, 50, u64::MAX] {
            let mut landing = Landing::new(Some(id("t2")), false, 30, seed);
            for _ in 0..100 {
                assert!(is_elsewhere(&landing.answer(&head(421, None)), None));
            }
        }
    }
}
