//! Why a profile could not be read or written. Every message is one line and names the file's
//! problem, never its contents.

/// A failed read, decode or write of a profile.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// A `.heapsnapshot` where a profile was expected.
    #[error("this is a heap snapshot, not a heap profile (use it with snapshots)")]
    Snapshot,
    /// A CPU profile (`.cpuprofile`) where a heap profile was expected.
    #[error("this is a CPU profile, not a heap profile")]
    CpuProfile,
    /// Neither a `.heapprofile` nor a pprof profile.
    #[error("not a heap profile: {0}")]
    Unknown(String),
    /// Looked like one format but is broken.
    #[error("damaged {format}: {detail}")]
    Garbled {
        format: &'static str,
        detail: String,
    },
}

impl ProfileError {
    pub(crate) fn garbled(format: &'static str, detail: impl std::fmt::Display) -> Self {
        let mut detail = detail.to_string();
        // serde's and prost's messages are one line already; keep them short all the same.
        detail.truncate(200);
        ProfileError::Garbled { format, detail }
    }
}
