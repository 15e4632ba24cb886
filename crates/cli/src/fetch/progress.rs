//! What the user sees on stderr: a live spinner and byte counter on a terminal, plain log lines
//! otherwise (one per attempt outcome, one per saved file). stdout is not touched here.

use std::io::Write;
use std::time::Duration;

use indicatif::{HumanBytes, ProgressBar, ProgressDrawTarget, ProgressStyle};

const TICK: Duration = Duration::from_millis(120);

pub(crate) struct Progress<'a> {
    stderr: &'a mut dyn Write,
    terminal: bool,
    /// Shown while a download runs, on a terminal only.
    bar: Option<ProgressBar>,
    /// The task being downloaded from.
    task: String,
    /// Whether the body being received is compressed.
    compressed: bool,
}

impl<'a> Progress<'a> {
    pub(crate) fn new(stderr: &'a mut dyn Write, terminal: bool) -> Self {
        Progress {
            stderr,
            terminal,
            bar: None,
            task: String::new(),
            compressed: false,
        }
    }

    /// `heapgate: <message>` on its own line (above the bar, if one is shown). A failed write to
    /// stderr is not worth failing the download for.
    pub(crate) fn line(&mut self, message: &str) {
        let stderr = &mut *self.stderr;
        let mut write = || {
            let _ = writeln!(stderr, "heapgate: {message}");
        };
        match &self.bar {
            Some(bar) => bar.suspend(write),
            None => write(),
        }
    }

    pub(crate) fn warn(&mut self, message: &str) {
        self.line(&format!("warning: {message}"));
    }

    /// The wanted task answered 200: the snapshot is being built until its first byte arrives.
    pub(crate) fn building(&mut self, task: &str) {
        task.clone_into(&mut self.task);
        if self.terminal {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            bar.set_style(style(
                "{spinner} task {prefix}: building snapshot ({elapsed})",
            ));
            bar.set_prefix(task.to_owned());
            bar.enable_steady_tick(TICK);
            self.bar = Some(bar);
        } else {
            self.line(&format!("task {task}: building snapshot"));
        }
    }

    /// The first byte of the snapshot itself (not heartbeat whitespace) arrived.
    pub(crate) fn receiving(&mut self, compressed: bool) {
        self.compressed = compressed;
        let template = if compressed {
            "{spinner} task {prefix}: {bytes} on the wire at {binary_bytes_per_sec}, {msg} decompressed ({elapsed})"
        } else {
            "{spinner} task {prefix}: {bytes} at {binary_bytes_per_sec} ({elapsed})"
        };
        match &self.bar {
            Some(bar) => bar.set_style(style(template)),
            None if compressed => self.line(&format!(
                "task {}: receiving snapshot (compressed)",
                self.task
            )),
            None => self.line(&format!("task {}: receiving snapshot", self.task)),
        }
    }

    /// Totals so far: body bytes on the wire, and snapshot bytes after decoding.
    pub(crate) fn received(&mut self, wire: u64, plain: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(wire);
            if self.compressed {
                bar.set_message(HumanBytes(plain).to_string());
            }
        }
    }

    /// The download ended, well or not: the bar goes away.
    pub(crate) fn done(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

impl Drop for Progress<'_> {
    fn drop(&mut self) {
        self.done();
    }
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_spinner())
}
