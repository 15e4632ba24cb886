//! The command builder for every binary under test (`heapgate`, `heapgate-proxy`), after
//! ripgrep's `tests/util.rs`: a clean environment (nothing inherited but what a program needs to
//! run at all), so a developer's `HEAPGATE_SECRET`, `HTTP_PROXY` or `RUST_LOG` can never change
//! a result, and the output captured in one place.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// Variables passed through from the test's environment: what any program needs to run (and
/// to find `node` or `nginx`), nothing that configures heapgate.
const PASSED_THROUGH: &[&str] = &["PATH", "HOME", "TMPDIR", "LANG", "LLVM_PROFILE_FILE"];

/// A command for a binary under test, with a clean environment.
#[derive(Debug)]
pub struct Cmd {
    command: Command,
}

impl Cmd {
    /// `program` with nothing of the test's environment but [`PASSED_THROUGH`], and stdin from
    /// /dev/null.
    pub fn new(program: impl AsRef<OsStr>) -> Cmd {
        let mut command = Command::new(program);
        command.env_clear();
        for name in PASSED_THROUGH {
            if let Some(value) = std::env::var_os(name) {
                command.env(name, value);
            }
        }
        // No index cache unless a test asks for one (`HEAPGATE_NO_CACHE=false` and a
        // `--cache-dir`): a test must not write into the developer's ~/.cache.
        command.env("HEAPGATE_NO_CACHE", "true");
        command.stdin(Stdio::null());
        Cmd { command }
    }

    /// The `heapgate` CLI built next to the running test.
    pub fn heapgate() -> Cmd {
        Cmd::new(crate::workspace_binary("heapgate"))
    }

    /// The `heapgate-proxy` binary built next to the running test.
    pub fn proxy() -> Cmd {
        Cmd::new(crate::workspace_binary("heapgate-proxy"))
    }

    pub fn arg(&mut self, arg: impl AsRef<OsStr>) -> &mut Cmd {
        self.command.arg(arg);
        self
    }

    pub fn args<S: AsRef<OsStr>>(&mut self, args: impl IntoIterator<Item = S>) -> &mut Cmd {
        self.command.args(args);
        self
    }

    pub fn env(&mut self, name: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> &mut Cmd {
        self.command.env(name, value);
        self
    }

    pub fn envs<'a>(&mut self, vars: impl IntoIterator<Item = &'a (&'a str, &'a str)>) -> &mut Cmd {
        for (name, value) in vars {
            self.command.env(name, value);
        }
        self
    }

    pub fn current_dir(&mut self, dir: impl AsRef<Path>) -> &mut Cmd {
        self.command.current_dir(dir);
        self
    }

    /// The underlying command (to spawn it as a [`crate::Proc`], or pipe its stdin).
    pub fn command(&mut self) -> &mut Command {
        &mut self.command
    }

    /// Runs to the end and captures everything.
    pub fn run(&mut self) -> Run {
        let output = self
            .command
            .output()
            .unwrap_or_else(|e| panic!("cannot run {:?}: {e}", self.command));
        Run::from(output)
    }

    /// Runs to the end and expects exit code `code`; the run, for more checks.
    pub fn expect_code(&mut self, code: i32) -> Run {
        let run = self.run();
        assert_eq!(
            run.code, code,
            "{:?} exited {}:\nstdout: {}\nstderr: {}",
            self.command, run.code, run.stdout, run.stderr
        );
        run
    }

    /// Runs to the end and expects success.
    pub fn expect_success(&mut self) -> Run {
        self.expect_code(0)
    }
}

/// A finished run.
#[derive(Debug, Clone)]
pub struct Run {
    /// The exit code; -1 when a signal ended it.
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    /// Stdout as bytes (for binary output).
    pub raw_stdout: Vec<u8>,
}

impl From<Output> for Run {
    fn from(output: Output) -> Run {
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            raw_stdout: output.stdout,
        }
    }
}

impl Run {
    pub fn success(&self) -> bool {
        self.code == 0
    }
}

/// The path of `name` next to the running test executable (target/<profile>/name).
pub(crate) fn binary_next_to_tests(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    // target/<profile>/deps/<test> → target/<profile>/<name>
    exe.parent()
        .and_then(Path::parent)
        .map(|dir| dir.join(name))
        .unwrap_or_default()
}
