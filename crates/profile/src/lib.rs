//! V8's sampling heap profile, read, written and compared.
//!
//! A heap snapshot costs the app many times its heap in memory; V8's sampling heap profiler
//! costs almost nothing and still says which line allocated what is alive. This crate holds its
//! two file formats and what heapgate computes from them:
//!
//! - [`HeapProfile`]: V8's `HeapProfiler.SamplingHeapProfile`, exactly DevTools' `.heapprofile`
//!   JSON (Memory tab → Load);
//! - [`pprof`]: gzipped `profile.proto` (`objects/count`, `space/bytes`), encoded and decoded with
//!   prost, for `go tool pprof`, Pyroscope and speedscope;
//! - [`Profile`]: either one as live bytes and objects per allocation stack, with file:line:col
//!   ([`read`] tells the formats apart by content and refuses snapshots and CPU profiles);
//! - [`summarize`] and [`compare`]: live bytes by allocation site, bottom-up (where it was
//!   allocated) and top-down (under which caller), and their growth between two or three profiles.
//!
//! ```no_run
//! let before = heapgate_profile::read("a.heapprofile".as_ref())?;
//! let after = heapgate_profile::read("b.pb.gz".as_ref())?;
//! let growth = heapgate_profile::compare(&[before, after]);
//! print!("{}", heapgate_profile::render_diff(&growth, 20));
//! # Ok::<(), heapgate_profile::ProfileError>(())
//! ```

mod analysis;
mod error;
mod model;
mod pprof_proto;
mod profile;
mod read;
mod render;
mod scale;

pub mod pprof;

pub use analysis::{Comparison, Site, SiteDiff, Summary, TreeNode, compare, summarize};
pub use error::ProfileError;
pub use model::{CallFrame, HeapProfile, ProfileNode, ProfileSample};
pub use profile::{Format, Frame, Profile, Stack};
pub use read::{Kind, parse, parse_heapprofile, read, read_from, sniff, sniff_file, sniff_reader};
pub use render::{render_diff, render_summary};
