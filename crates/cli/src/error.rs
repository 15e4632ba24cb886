//! The ways a command fails, which decide the exit status.

/// A failed command. Messages are one line and never contain a secret or a token.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad configuration or usage: exit 2.
    #[error("{0}")]
    Config(String),
    /// The token is invalid or the operation failed: exit 1.
    #[error("{0}")]
    Failed(String),
    /// `--fail-on-growth` exceeded: exit 3.
    #[error("{0}")]
    Growth(String),
    /// Stopped by SIGINT or SIGTERM (named here) after cleaning up: exit 130.
    #[error("interrupted by {0}; no partial file left")]
    Interrupted(&'static str),
    /// Standard output was closed by the reader (`| head`): exit 141 like SIGPIPE, quietly.
    #[error("standard output closed")]
    OutputClosed,
}

impl Error {
    /// The process exit status for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Config(_) => 2,
            Error::Failed(_) => 1,
            Error::Growth(_) => 3,
            Error::Interrupted(_) => 130,
            Error::OutputClosed => 141,
        }
    }
}
