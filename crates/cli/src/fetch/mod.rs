//! `heapgate fetch`: a series of snapshots from one task behind a load balancer.
//!
//! Each attempt mints a fresh token (a series can cross an hour) and opens a new connection
//! (balancers pick a task per connection), and what happens next is decided by
//! [`policy::classify`]. A snapshot is written to `<name>.part` and given its final name only
//! when complete; every other ending, Ctrl-C and SIGTERM included, deletes the `.part`.

pub(crate) mod attempt;
mod policy;
mod progress;
mod report;
mod save;

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use heapgate_snapshot::Encoding;
use heapgate_token::Keys;
use indicatif::HumanBytes;
use reqwest::{Client, Response};
use tokio::time::{Instant, sleep, sleep_until};

use self::attempt::{Failure, Meta};
use self::policy::{Action, Answer, Backoff, MAX_RETRY_AFTER, classify, jitter};
use self::progress::Progress;
use self::save::Part;
use crate::args::FetchArgs;
use crate::url::snapshot_url;
use crate::{Error, Io, output_error};

/// How many other task ids an error message lists before `…`.
const LISTED_TASKS: usize = 8;

pub(crate) fn run(
    args: &FetchArgs,
    keys: &Keys,
    value: &str,
    io: &mut Io<'_>,
) -> Result<(), Error> {
    // Configuration errors exit 2 before anything is sent.
    snapshot_url(&args.base_url, &args.path, "", args.task.as_deref())?;
    if args.task.as_deref() == Some("") {
        return Err(Error::Config("--task must not be empty".to_owned()));
    }
    std::fs::create_dir_all(&args.out)
        .map_err(|e| Error::Config(format!("cannot create --out {}: {e}", args.out.display())))?;
    let https = args
        .base_url
        .get(..8)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("https://"));

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Failed(format!("cannot start the async runtime: {e}")))?;
    let (saved, task, warnings) = runtime.block_on(async {
        // Handlers first: from here on, a signal never leaves a .part behind.
        let mut signals = Signals::new()?;
        let mut fetcher = Fetcher {
            args,
            keys,
            value,
            client: attempt::client(https)?,
            now: io.now,
            stdout: &mut *io.stdout,
            progress: Progress::new(&mut *io.stderr, io.stderr_is_terminal),
            target: args.task.clone(),
            warnings: Vec::new(),
        };
        tokio::select! {
            result = fetcher.series() => result.map(|saved| (saved, fetcher.target, fetcher.warnings)),
            signal = signals.recv() => Err(Error::Interrupted(signal)),
        }
    })?;
    match &args.html {
        Some(out) => report::write(args, out, &saved, task.as_deref(), &warnings, io),
        None => Ok(()),
    }
}

struct Fetcher<'a, 'io> {
    args: &'a FetchArgs,
    keys: &'a Keys,
    value: &'a str,
    client: Client,
    now: &'io dyn Fn() -> DateTime<Utc>,
    stdout: &'io mut dyn Write,
    progress: Progress<'io>,
    /// `--task`, or the pinned task once a probe was answered.
    target: Option<String>,
    /// Warnings about the series, for the report.
    warnings: Vec<String>,
}

/// A snapshot on disk.
struct Saved {
    path: PathBuf,
    series: Option<String>,
}

impl Fetcher<'_, '_> {
    /// `--count` snapshots, `--interval` apart (start to start).
    async fn series(&mut self) -> Result<Vec<PathBuf>, Error> {
        let count = self.args.count;
        let interval: Duration = self.args.interval.into();
        let mut previous: Option<Saved> = None;
        let mut saved_paths = Vec::new();
        let mut next_start = Instant::now();
        for n in 1..=count {
            if n > 1 {
                let wait = next_start.saturating_duration_since(Instant::now());
                if wait.is_zero() && !interval.is_zero() {
                    self.progress.line(&format!(
                        "snapshot {} took longer than --interval; starting snapshot {n} of {count} now",
                        n - 1
                    ));
                } else if !wait.is_zero() {
                    self.progress
                        .line(&format!("snapshot {n} of {count} in {}", human(wait)));
                    sleep_until(next_start).await;
                }
            }
            next_start = Instant::now() + interval;
            let saved = self.snapshot().await.map_err(|e| match e {
                Error::Failed(message) if count > 1 => {
                    Error::Failed(format!("snapshot {n} of {count}: {message}"))
                }
                other => other,
            })?;
            writeln!(self.stdout, "{}", saved.path.display())
                .and_then(|()| self.stdout.flush())
                .map_err(|e| output_error(&e))?;
            if let (Some(before), Some(now)) = (
                previous.as_ref().and_then(|p| p.series.as_deref()),
                saved.series.as_deref(),
            ) {
                if before != now {
                    let message = format!(
                        "snapshots {} and {n} are not comparable: series {before} became {now} \
                         (the app restarted or the proxy reopened its inspector session)",
                        n - 1
                    );
                    self.progress.warn(&message);
                    self.warnings.push(message);
                }
            }
            saved_paths.push(saved.path.clone());
            previous = Some(saved);
        }
        Ok(saved_paths)
    }

    /// One snapshot from the target task, retrying up to `--max-attempts` requests.
    async fn snapshot(&mut self) -> Result<Saved, Error> {
        let max = self.args.max_attempts;
        let mut backoff = Backoff::default();
        let mut others: Vec<String> = Vec::new();
        let mut unnamed = 0_u32;
        let mut last = String::new();
        let mut attempts = 0;
        while attempts < max {
            attempts += 1;
            let probing = self.target.is_none();
            let url = self.url(probing)?;
            let label = format!("attempt {attempts}/{max}");
            let accept = if self.args.no_compression {
                "identity"
            } else {
                attempt::ACCEPT_COMPRESSED
            };
            let (answer, response, meta) = match attempt::send(&self.client, &url, accept).await {
                Ok(response) => {
                    let (head, meta) = attempt::head_of(&response);
                    (Answer::Head(head), Some(response), meta)
                }
                Err(e) => {
                    let answer = if attempt::is_certificate_error(&e) {
                        Answer::Certificate
                    } else {
                        Answer::Transport
                    };
                    last = attempt::describe(e);
                    (answer, None, Meta::default())
                }
            };
            let (status, from) = match &answer {
                Answer::Head(head) => (
                    attempt::status_text(head.status),
                    match (head.task.as_deref(), self.target.as_deref()) {
                        (Some(task), Some(target)) if task != target && head.status < 300 => {
                            format!(" from task {task}, not {target}")
                        }
                        (Some(task), _) => format!(" from task {task}"),
                        (None, _) => String::new(),
                    },
                ),
                Answer::Transport | Answer::Certificate => (last.clone(), String::new()),
            };
            let action = classify(&answer, self.target.as_deref());
            if !matches!(action, Action::Save(_) | Action::Pin(_)) {
                last = format!("{status}{from}");
            }
            match (action, response) {
                (Action::Pin(task), _) => {
                    self.progress.line(&format!("pinned task {task}"));
                    self.target = Some(task);
                    attempts -= 1; // a probe is not an attempt at the snapshot
                }
                (Action::Save(task), Some(mut response)) => {
                    if probing {
                        self.progress.line(&format!(
                            "pinned task {task} (it sent a snapshot instead of answering the probe)"
                        ));
                        self.target = Some(task.clone());
                    }
                    match self.save(&mut response, &task, &meta).await {
                        Ok(saved) => return Ok(saved),
                        Err(Failure::Stop(message)) => return Err(Error::Failed(message)),
                        Err(Failure::Retry(message)) => {
                            let text = format!("{label}: task {task}: {message}");
                            self.pause(&text, "retrying in", backoff.next_delay(), attempts < max)
                                .await;
                            last = message;
                        }
                    }
                }
                (Action::Save(_), None) => unreachable!("a save needs a response"),
                (Action::Elsewhere(task), _) => {
                    match task {
                        Some(task) if Some(task.as_str()) != self.target.as_deref() => {
                            if !others.contains(&task) {
                                others.push(task);
                            }
                        }
                        Some(_) => {}
                        None => unnamed += 1,
                    }
                    let text = format!("{label}: {status}{from}");
                    let delay = jitter(fastrand::u64(..));
                    self.pause(&text, "retrying in", delay, attempts < max)
                        .await;
                }
                (Action::Wait { delay, asked }, _) => {
                    let capped = asked.map_or_else(String::new, |asked| {
                        format!(
                            " (Retry-After {asked} s is capped at {})",
                            human(MAX_RETRY_AFTER)
                        )
                    });
                    let text = format!("{label}: {status}{from}{capped}");
                    self.pause(&text, "waiting", delay, attempts < max).await;
                }
                (Action::Backoff, _) => {
                    let text = format!("{label}: {status}{from}");
                    self.pause(&text, "retrying in", backoff.next_delay(), attempts < max)
                        .await;
                }
                (Action::Stop(message), _) => {
                    let message = match answer {
                        Answer::Head(_) if from.is_empty() => message,
                        _ => format!("{message} ({status}{from})"),
                    };
                    return Err(Error::Failed(message));
                }
            }
        }
        Err(Error::Failed(not_reached(
            self.target.as_deref(),
            attempts,
            &others,
            unnamed,
            &last,
        )))
    }

    /// Logs an attempt's outcome and, unless it was the last attempt, waits before the next.
    async fn pause(&mut self, text: &str, verb: &str, delay: Duration, again: bool) {
        if again {
            self.progress
                .line(&format!("{text}; {verb} {}", human(delay)));
            sleep(delay).await;
        } else {
            self.progress.line(text);
        }
    }

    /// A fresh token every time: a retry or a series can cross the hour.
    fn url(&self, probing: bool) -> Result<String, Error> {
        let hash = heapgate_token::mint(self.keys.signing(), self.value, (self.now)()).to_string();
        let mut url = snapshot_url(
            &self.args.base_url,
            &self.args.path,
            &hash,
            self.target.as_deref(),
        )?;
        if probing {
            url.push_str("&probe=1");
        }
        Ok(url)
    }

    /// Streams the answer of `task` to `<name>.part`, then gives it its final name.
    async fn save(
        &mut self,
        response: &mut Response,
        task: &str,
        meta: &Meta,
    ) -> Result<Saved, Failure> {
        let encoding = attempt::encoding_of(response)?;
        let keep = self.args.keep_compressed;
        let mut name = meta
            .filename
            .as_deref()
            .and_then(save::sanitize)
            .unwrap_or_else(|| save::fallback_name(task, (self.now)()));
        if keep {
            name.push_str(encoding.suffix());
        }
        let mut part = Part::create(&self.args.out, &name).map_err(|e| {
            Failure::Stop(format!(
                "cannot create a file for {name} in {}: {e}",
                self.args.out.display()
            ))
        })?;
        let started = Instant::now();
        self.progress.building(task);
        let downloaded =
            attempt::download(response, encoding, keep, &mut part, &mut self.progress).await;
        self.progress.done();
        let downloaded = downloaded?;
        let part_path = part.path().to_owned();
        let path = part.finish().map_err(|e| {
            Failure::Stop(format!(
                "cannot give {} its final name: {e}",
                part_path.display()
            ))
        })?;
        let size = match encoding {
            Encoding::Plain => HumanBytes(downloaded.plain).to_string(),
            _ => format!(
                "{} as {} on the wire, {:.1}x smaller",
                HumanBytes(downloaded.plain),
                HumanBytes(downloaded.wire),
                downloaded.plain as f64 / downloaded.wire.max(1) as f64
            ),
        };
        let redacted = meta.redacted.as_deref().map_or_else(String::new, |what| {
            format!("; {what} redacted by the proxy")
        });
        self.progress.line(&format!(
            "saved {} ({size} in {}) from task {task}{redacted}",
            path.display(),
            human(started.elapsed())
        ));
        Ok(Saved {
            path,
            series: meta.series.clone(),
        })
    }
}

/// `250 ms`, `1.5 s`, `42 s`, `9m 58s`: short, and never rounding half a second to a second.
fn human(duration: Duration) -> String {
    let ms = duration.as_millis();
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms < 10_000 && ms % 1000 != 0 {
        format!("{:.1} s", duration.as_secs_f64())
    } else if ms < 60_000 {
        format!("{} s", duration.as_secs())
    } else {
        humantime::format_duration(Duration::from_secs(duration.as_secs())).to_string()
    }
}

/// `task t2 not reached in 30 attempts (2 other tasks answered: t1, t3; last: …)`.
fn not_reached(
    target: Option<&str>,
    attempts: u32,
    others: &[String],
    unnamed: u32,
    last: &str,
) -> String {
    let mut notes = Vec::new();
    match others.len() {
        0 => {}
        n => {
            let mut listed = others[..n.min(LISTED_TASKS)].join(", ");
            if n > LISTED_TASKS {
                listed.push_str(", …");
            }
            let tasks = if n == 1 { "task" } else { "tasks" };
            notes.push(format!("{n} other {tasks} answered: {listed}"));
        }
    }
    if unnamed > 0 {
        let answers = if unnamed == 1 { "answer" } else { "answers" };
        notes.push(format!("{unnamed} {answers} named no task"));
    }
    if !last.is_empty() {
        notes.push(format!("last: {last}"));
    }
    let tries = if attempts == 1 { "attempt" } else { "attempts" };
    let notes = if notes.is_empty() {
        String::new()
    } else {
        format!(" ({})", notes.join("; "))
    };
    match target {
        Some(task) => format!("task {task} not reached in {attempts} {tries}{notes}"),
        None => format!("no task answered the probe in {attempts} {tries}{notes}"),
    }
}

/// SIGINT and SIGTERM, registered before any request so neither can kill us mid-download.
struct Signals {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl Signals {
    #[cfg(unix)]
    fn new() -> Result<Self, Error> {
        use tokio::signal::unix::{SignalKind, signal};
        let register =
            |kind| signal(kind).map_err(|e| Error::Failed(format!("cannot handle signals: {e}")));
        Ok(Signals {
            interrupt: register(SignalKind::interrupt())?,
            terminate: register(SignalKind::terminate())?,
        })
    }

    #[cfg(not(unix))]
    fn new() -> Result<Self, Error> {
        Ok(Signals {})
    }

    /// The name of the first signal received.
    #[cfg(unix)]
    async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.interrupt.recv() => "SIGINT",
            _ = self.terminate.recv() => "SIGTERM",
        }
    }

    #[cfg(not(unix))]
    async fn recv(&mut self) -> &'static str {
        let _ = tokio::signal::ctrl_c().await;
        "Ctrl-C"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_well() {
        let cases = [
            (Duration::from_millis(37), "37 ms"),
            (Duration::from_millis(500), "500 ms"),
            (Duration::from_millis(1500), "1.5 s"),
            (Duration::from_secs(8), "8 s"),
            (Duration::from_millis(42_300), "42 s"),
            (Duration::from_secs(600), "10m"),
            (Duration::from_millis(598_700), "9m 58s"),
        ];
        for (duration, text) in cases {
            assert_eq!(human(duration), text);
        }
    }

    #[test]
    fn not_reached_names_the_task_and_the_others() {
        let others = ["t1".to_owned(), "t3".to_owned()];
        assert_eq!(
            not_reached(
                Some("t2"),
                30,
                &others,
                0,
                "421 Misdirected Request from task t3"
            ),
            "task t2 not reached in 30 attempts (2 other tasks answered: t1, t3; \
             last: 421 Misdirected Request from task t3)"
        );
        assert_eq!(
            not_reached(Some("t2"), 5, &others[..1], 2, ""),
            "task t2 not reached in 5 attempts (1 other task answered: t1; 2 answers named no task)"
        );
        assert_eq!(
            not_reached(None, 1, &[], 0, "connection refused"),
            "no task answered the probe in 1 attempt (last: connection refused)"
        );
        let many: Vec<String> = (0..10).map(|i| format!("t{i}")).collect();
        assert!(
            not_reached(Some("x"), 30, &many, 0, "")
                .contains("10 other tasks answered: t0, t1, t2, t3, t4, t5, t6, t7, …")
        );
    }
}
