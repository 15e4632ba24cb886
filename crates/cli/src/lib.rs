//! The `heapgate` command line: glue between clap, the key loader and the token core.
//!
//! Parsing happens in two steps (as in ripgrep and fd): `args` is the raw clap structure,
//! `run` validates it into keys and a window before any command runs, so every command works
//! with values it can trust and every configuration error exits with status 2.

mod args;
mod demo;
mod diff;
mod error;
mod fetch;
mod html;
mod html_profile;
mod mint;
mod profiles;
mod redact;
mod stored;
mod summary;
mod url;
mod verify;

use std::ffi::OsString;
use std::io::Write;

use chrono::{DateTime, Utc};
use heapgate_keys::LoadedKeys;

pub use args::Cli;
pub use error::Error;

/// What a command needs from the outside world, injected so tests can fix them.
pub struct Io<'a> {
    /// The clock: read when `--at` is absent, and by `fetch` for every token it mints.
    pub now: &'a dyn Fn() -> DateTime<Utc>,
    /// Environment lookup (for `HEAPGATE_SECRET`).
    pub env: &'a dyn Fn(&str) -> Option<OsString>,
    pub stdout: &'a mut dyn Write,
    pub stderr: &'a mut dyn Write,
    /// Whether stderr is a terminal: `fetch` draws progress bars there, else plain log lines.
    pub stderr_is_terminal: bool,
}

/// Runs a parsed command line.
pub fn run(cli: &Cli, io: &mut Io<'_>) -> Result<(), Error> {
    // Commands that need no secret.
    match &cli.command {
        args::Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(*shell, &mut command, "heapgate", io.stdout);
            return Ok(());
        }
        args::Command::Man => {
            let page = clap_mangen::Man::new(<Cli as clap::CommandFactory>::command());
            return page.render(io.stdout).map_err(|e| output_error(&e));
        }
        args::Command::Diff(args) => return diff::run(args, io),
        args::Command::Redact(args) => return redact::run(args, io),
        args::Command::Summary(args) => return summary::run(args, io),
        args::Command::List(args) => return stored::list(&args.store, io.stdout),
        args::Command::Demo(args) => return demo::run(args, &cli.token.value, io),
        _ => {}
    }
    let LoadedKeys { keys, warnings } = heapgate_keys::load(&cli.token.secrets, io.env)
        .map_err(|e| Error::Config(e.to_string()))?;
    for warning in warnings {
        warn(io, &warning);
    }
    let value = &cli.token.value;
    match &cli.command {
        args::Command::Mint(args) => mint::run(args, &keys, value, io),
        args::Command::Verify(args) => verify::run(args, &keys, value, io),
        args::Command::Fetch(args) => fetch::run(args, &keys, value, io),
        args::Command::Completions { .. }
        | args::Command::Man
        | args::Command::Diff(_)
        | args::Command::Redact(_)
        | args::Command::Summary(_)
        | args::Command::List(_)
        | args::Command::Demo(_) => Ok(()),
    }
}

/// Prints `heapgate: warning: …` on stderr. A failed write to stderr is not worth failing for.
pub(crate) fn warn(io: &mut Io<'_>, message: &str) {
    let _ = writeln!(io.stderr, "heapgate: warning: {message}");
}

/// A failed write to stdout is an operation failure; a reader that went away (`| head`) is not
/// worth a message.
pub(crate) fn output_error(e: &std::io::Error) -> Error {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        return Error::OutputClosed;
    }
    Error::Failed(format!("cannot write output: {e}"))
}
