//! The `heapgate` command line: glue between clap, the key loader and the token core.
//!
//! Parsing happens in two steps (as in ripgrep and fd): `args` is the raw clap structure,
//! `run` validates it into keys and a window before any command runs, so every command works
//! with values it can trust and every configuration error exits with status 2.

mod args;
mod cache;
#[cfg(feature = "demo")]
mod demo;
mod diff;
mod error;
mod fetch;
mod html;
mod html_inspect;
mod html_profile;
mod inspect;
mod man;
mod mcp;
mod mint;
mod mode;
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
    match &cli.command {
        args::Command::Mint { token, args } => {
            let keys = keys(token, io)?;
            mint::run(args, &keys, &token.value, io)
        }
        args::Command::Verify { token, args } => {
            let keys = keys(token, io)?;
            verify::run(args, &keys, &token.value, io)
        }
        args::Command::Fetch { token, args } => {
            let keys = keys(token, io)?;
            fetch::run(args, &keys, &token.value, io)
        }
        // Commands that need no secret.
        args::Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(*shell, &mut command, "heapgate", io.stdout);
            Ok(())
        }
        args::Command::Man(args) => man::run(args, io),
        args::Command::Mcp(args) => mcp::run(args, io),
        args::Command::Diff(args) => diff::run(args, io),
        args::Command::Redact(args) => redact::run(args, io),
        args::Command::Summary(args) => summary::run(args, io),
        args::Command::Inspect(args) => inspect::run(args, io),
        args::Command::List(args) => stored::list(&args.store, io.stdout),
        #[cfg(feature = "demo")]
        args::Command::Demo(args) => demo::run(args, args::DEFAULT_VALUE, io),
    }
}

/// The keys of `--secret-file`, `HEAPGATE_SECRET` or `--secret`, with their warnings printed.
fn keys(token: &args::TokenArgs, io: &mut Io<'_>) -> Result<heapgate_token::Keys, Error> {
    let LoadedKeys { keys, warnings } =
        heapgate_keys::load(&token.secrets, io.env).map_err(|e| Error::Config(e.to_string()))?;
    for warning in warnings {
        warn(io, &warning);
    }
    Ok(keys)
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
