//! `heapgate`: see `heapgate --help`.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use heapgate::{Cli, Io};

fn main() -> ExitCode {
    // Usage errors exit 2, --help and --version exit 0, as clap does.
    let cli = Cli::parse();
    let env = |name: &str| std::env::var_os(name);
    // Not locked: `heapgate mcp` writes its protocol through tokio's stdout from other threads.
    let (mut stdout, mut stderr) = (std::io::stdout(), std::io::stderr());
    let mut io = Io {
        now: &chrono::Utc::now,
        env: &env,
        stdout: &mut stdout,
        stderr: &mut stderr,
        stderr_is_terminal: std::io::stderr().is_terminal(),
    };
    match heapgate::run(&cli, &mut io) {
        Ok(()) => ExitCode::SUCCESS,
        Err(heapgate::Error::OutputClosed) => ExitCode::from(141),
        Err(e) => {
            eprintln!("heapgate: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
