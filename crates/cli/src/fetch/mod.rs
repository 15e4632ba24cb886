//! `heapgate fetch`: a series of snapshots from one task behind a load balancer.
//!
//! Each attempt mints a fresh token (a series can cross an hour) and opens a new connection
//! (balancers pick a task per connection), and what happens next is decided by
//! the land-on-a-task policy of `heapgate-protocol`, shared with the gateway. A snapshot is written to `<name>.part` and given its final name only
//! when complete; every other ending, Ctrl-C and SIGTERM included, deletes the `.part`.

pub(crate) mod attempt;
mod progress;
mod report;
mod save;

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use heapgate_protocol::{Answer, Landing, MAX_RETRY_AFTER, SnapshotQuery, Step, TaskId};
use heapgate_signals::Signals;
use heapgate_snapshot::Encoding;
use heapgate_token::Keys;
use indicatif::HumanBytes;
use reqwest::{Client, Response};
use tokio::time::{Instant, sleep, sleep_until};

use self::attempt::{Failure, Meta};
use self::progress::Progress;
use self::save::Part;
use crate::args::FetchArgs;
use crate::url::snapshot_url;
use crate::{Error, Io, output_error};

pub(crate) use self::save::task_from_filename;

pub(crate) fn run(
    args: &FetchArgs,
    keys: &Keys,
    value: &str,
    io: &mut Io<'_>,
) -> Result<(), Error> {
    take(args, keys, value, io, &Stop::Signals).map(|_| ())
}

/// What ends a series early, leaving no partial file: SIGINT or SIGTERM for the command; for
/// a server that embeds fetch (`heapgate mcp`), a flag its client's cancellation sets.
pub(crate) enum Stop {
    Signals,
    Flag(Arc<AtomicBool>),
}

/// Takes the series `args` asks for and returns the saved paths (also printed on stdout).
pub(crate) fn take(
    args: &FetchArgs,
    keys: &Keys,
    value: &str,
    io: &mut Io<'_>,
    stop: &Stop,
) -> Result<Vec<PathBuf>, Error> {
    // Configuration errors exit 2 before anything is sent.
    snapshot_url(&args.base_url, args.path(), &SnapshotQuery::default())?;
    let target = match args.task.as_deref() {
        Some(task) => Some(TaskId::new(task).map_err(|e| Error::Config(format!("--task: {e}")))?),
        None => None,
    };
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
        let mut signals = match stop {
            Stop::Signals => Some(
                Signals::new().map_err(|e| Error::Failed(format!("cannot handle signals: {e}")))?,
            ),
            Stop::Flag(_) => None,
        };
        let stopped = async {
            match (&mut signals, stop) {
                (Some(signals), _) => signals.recv().await,
                (None, Stop::Flag(flag)) => {
                    while !flag.load(Ordering::Relaxed) {
                        sleep(Duration::from_millis(100)).await;
                    }
                    "cancellation"
                }
                (None, Stop::Signals) => std::future::pending().await,
            }
        };
        let mut fetcher = Fetcher {
            args,
            keys,
            value,
            client: attempt::client(https)?,
            now: io.now,
            stdout: &mut *io.stdout,
            progress: Progress::new(&mut *io.stderr, io.stderr_is_terminal),
            target,
            warnings: Vec::new(),
        };
        tokio::select! {
            result = fetcher.series() => result.map(|saved| (saved, fetcher.target, fetcher.warnings)),
            signal = stopped => Err(Error::Interrupted(signal)),
        }
    })?;
    if let Some(out) = &args.html {
        report::write(
            args,
            out,
            &saved,
            task.as_ref().map(TaskId::as_str),
            &warnings,
            io,
        )?;
    }
    Ok(saved)
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
    target: Option<TaskId>,
    /// Warnings about the series, for the report.
    warnings: Vec<String>,
}

/// A snapshot on disk.
struct Saved {
    path: PathBuf,
    /// The inspector session it came from.
    session: Option<String>,
    /// When the request that got it was sent: `--interval` counts from here, so time spent
    /// waiting for a busy task before it never shortens the gap to the next snapshot.
    started: Instant,
}

impl Fetcher<'_, '_> {
    /// `--count` snapshots, `--interval` apart (start to start).
    async fn series(&mut self) -> Result<Vec<PathBuf>, Error> {
        let count = self.args.count;
        let interval: Duration = self.args.interval.into();
        let mut previous: Option<Saved> = None;
        let mut saved_paths = Vec::new();
        let noun = self.args.instrument().as_str();
        for n in 1..=count {
            if let Some(previous) = &previous {
                let next_start = previous.started + interval;
                let wait = next_start.saturating_duration_since(Instant::now());
                if wait.is_zero() && !interval.is_zero() {
                    self.progress.line(&format!(
                        "{noun} {} took longer than --interval; starting {noun} {n} of {count} now",
                        n - 1
                    ));
                } else if !wait.is_zero() {
                    self.progress
                        .line(&format!("{noun} {n} of {count} in {}", human(wait)));
                    sleep_until(next_start).await;
                }
            }
            let saved = self.snapshot().await.map_err(|e| match e {
                Error::Failed(message) if count > 1 => {
                    Error::Failed(format!("{noun} {n} of {count}: {message}"))
                }
                other => other,
            })?;
            writeln!(self.stdout, "{}", saved.path.display())
                .and_then(|()| self.stdout.flush())
                .map_err(|e| output_error(&e))?;
            if let (Some(before), Some(now)) = (
                previous.as_ref().and_then(|p| p.session.as_deref()),
                saved.session.as_deref(),
            ) && before != now
            {
                let message = format!(
                    "{noun}s {} and {n} are not comparable: inspector session {before} became {now} \
                     (the app restarted or the proxy reopened its inspector session)",
                    n - 1
                );
                self.progress.warn(&message);
                self.warnings.push(message);
            }
            saved_paths.push(saved.path.clone());
            previous = Some(saved);
        }
        Ok(saved_paths)
    }

    /// One snapshot from the target task, retrying up to `--max-attempts` requests; what each
    /// answer means is the shared land-on-a-task policy's call ([`Landing`]).
    async fn snapshot(&mut self) -> Result<Saved, Error> {
        let max = self.args.max_attempts;
        let mut landing = Landing::new(
            self.target.clone(),
            self.target.is_none(),
            max,
            fastrand::u64(..),
        );
        while let Some(attempt) = landing.next_attempt() {
            let probing = landing.probing();
            let url = self.url(landing.target(), probing)?;
            let label = format!("attempt {attempt}/{max}");
            let accept = if self.args.no_compression {
                "identity"
            } else {
                attempt::ACCEPT_COMPRESSED
            };
            let sent = Instant::now();
            let (answer, response, meta) = match attempt::send(&self.client, &url, accept).await {
                Ok(response) => {
                    let (head, meta) = attempt::head_of(&response);
                    (Answer::Head(head), Some(response), meta)
                }
                Err(e) => {
                    let certificate = attempt::is_certificate_error(&e);
                    let why = attempt::describe(e);
                    let answer = if certificate {
                        Answer::Certificate(why)
                    } else {
                        Answer::Transport(why)
                    };
                    (answer, None, Meta::default())
                }
            };
            let text = format!("{label}: {}", landing.describe(&answer));
            let step = landing.answer(&answer);
            self.target = landing.target().cloned();
            let again = landing.has_attempts_left();
            match (step, response) {
                (Step::Pinned(task), _) => {
                    self.progress.line(&format!("pinned task {task}"));
                }
                (Step::Deliver(task), Some(mut response)) => {
                    if probing {
                        self.progress.line(&format!(
                            "pinned task {task} (it sent a snapshot instead of answering the probe)"
                        ));
                    }
                    match self.save(&mut response, task.as_str(), &meta, sent).await {
                        Ok(saved) => return Ok(saved),
                        Err(Failure::Stop(message)) => return Err(Error::Failed(message)),
                        Err(Failure::Retry(message)) => {
                            let delay = landing.delivery_failed(&message);
                            let text = format!("{label}: task {task}: {message}");
                            self.pause(&text, "retrying in", delay, again).await;
                        }
                    }
                }
                (Step::Deliver(_), None) => unreachable!("only a response head is delivered"),
                (Step::Busy { delay, asked }, _) => {
                    let capped = asked.map_or_else(String::new, |asked| {
                        format!(
                            " (Retry-After {asked} s is capped at {})",
                            human(MAX_RETRY_AFTER)
                        )
                    });
                    self.pause(&format!("{text}{capped}"), "waiting", delay, again)
                        .await;
                }
                (Step::Retry { delay, .. }, _) => {
                    self.pause(&text, "retrying in", delay, again).await;
                }
                (Step::Stop(message), _) => {
                    let message = match &answer {
                        Answer::Head(head) if head.status() == 200 && head.task().is_none() => {
                            self.not_heapgate(&meta)
                        }
                        Answer::Head(head) if head.task().is_none() => message,
                        _ => format!("{message} ({})", landing.describe(&answer)),
                    };
                    return Err(Error::Failed(message));
                }
            }
        }
        Err(Error::Failed(landing.not_reached().to_string()))
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

    /// What was reached when a 200 named no task: not a sidecar (the app itself, or a path the
    /// sidecar passes through), and what to check. The token went there once; it is not sent
    /// again.
    fn not_heapgate(&self, meta: &Meta) -> String {
        let reached = snapshot_url(
            &self.args.base_url,
            self.args.path(),
            &SnapshotQuery::default(),
        )
        .unwrap_or_default();
        let what = meta
            .content_type
            .as_deref()
            .map_or_else(String::new, |kind| format!(" ({kind})"));
        let noun = self.args.instrument().as_str();
        format!(
            "{} answered 200 OK{what} without X-Heapgate-Task: that is not heapgate-proxy's \
             answer; check that BASE_URL is the sidecar's (or the gateway's) address, \
             not the app's, and that --path ({}) is its {noun} path",
            heapgate_keys::redact_userinfo(&reached),
            self.args.path()
        )
    }

    /// A fresh token every time: a retry or a series can cross the hour.
    fn url(&self, target: Option<&TaskId>, probing: bool) -> Result<String, Error> {
        // A profile token signs a value of its own, so it never opens the snapshot.
        let value = self.args.instrument().signed_value(self.value);
        let query = SnapshotQuery {
            hash: Some(heapgate_token::mint(self.keys.signing(), &value, (self.now)()).to_string()),
            task: target.cloned(),
            probe: probing,
            repin: false,
            format: self.args.profile_format(),
        };
        snapshot_url(&self.args.base_url, self.args.path(), &query)
    }

    /// Streams the answer of `task` to `<name>.part`, then gives it its final name.
    async fn save(
        &mut self,
        response: &mut Response,
        task: &str,
        meta: &Meta,
        sent: Instant,
    ) -> Result<Saved, Failure> {
        let encoding = attempt::encoding_of(response)?;
        let keep = self.args.keep_compressed;
        let mut name = meta
            .filename
            .as_deref()
            .and_then(save::sanitize)
            .unwrap_or_else(|| {
                let extension = self
                    .args
                    .profile_format()
                    .map_or("heapsnapshot", |f| f.extension());
                save::fallback_name(task, (self.now)(), extension)
            });
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
        let downloaded = attempt::download(
            response,
            encoding,
            keep,
            self.args.profile,
            &mut part,
            &mut self.progress,
        )
        .await;
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
            session: meta.session.clone(),
            started: sent,
        })
    }
}

/// `250 ms`, `1.5 s`, `42 s`, `9m 58s`: short, and never rounding half a second to a second.
fn human(duration: Duration) -> String {
    let ms = duration.as_millis();
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms < 10_000 && !ms.is_multiple_of(1000) {
        format!("{:.1} s", duration.as_secs_f64())
    } else if ms < 60_000 {
        format!("{} s", duration.as_secs())
    } else {
        humantime::format_duration(Duration::from_secs(duration.as_secs())).to_string()
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
}
