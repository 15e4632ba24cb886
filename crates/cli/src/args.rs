//! The command line as clap sees it. Nothing here is validated beyond types; `config` turns it
//! into something the commands can trust.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand};
use heapgate_keys::SecretArgs;
use heapgate_protocol::Instrument;

/// Production heap snapshots of Node.js services behind an hour-scoped signed URL.
///
/// Tokens are HMAC-SHA256(secret, JSON.stringify({date: <UTC start of the hour>, value})) in hex,
/// byte-compatible with the Node.js one-liner servers already verify.
#[derive(Debug, Parser)]
#[command(
    name = "heapgate",
    version = env!("HEAPGATE_VERSION"),
    propagate_version = true,
    max_term_width = 100
)]
#[command(after_help = EXIT_STATUS)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// Every exit status, for `--help` and the manual page.
const EXIT_STATUS: &str = "Exit status: 0 ok, 1 token invalid or operation failed, 2 usage or \
                           configuration error, 3 diff --fail-on-growth exceeded, 130 fetch \
                           interrupted (SIGINT, SIGTERM).";

/// The value signed with the hour unless `--value` or `HEAPGATE_VALUE` says otherwise.
pub(crate) const DEFAULT_VALUE: &str = "heapdump";

/// The secret and the signed value, on the subcommands that mint or verify tokens (`mint`,
/// `verify`, `fetch`) and only there.
#[derive(Debug, Args)]
pub struct TokenArgs {
    #[command(flatten)]
    pub secrets: SecretArgs,

    /// The value signed with the hour; must equal the verifier's.
    #[arg(long, env = "HEAPGATE_VALUE", default_value = DEFAULT_VALUE)]
    pub value: String,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the token for the current hour (or the hour of --at): 64 hex characters.
    Mint {
        #[command(flatten)]
        token: TokenArgs,
        #[command(flatten)]
        args: MintArgs,
    },
    /// Check a token: exit 0 and name the hour it was minted for, or exit 1 with the reason.
    Verify {
        #[command(flatten)]
        token: TokenArgs,
        #[command(flatten)]
        args: VerifyArgs,
    },
    /// Download heap snapshots (or, with --profile, sampling heap profiles) from one task behind
    /// a load balancer, retrying until it answers.
    ///
    /// Every attempt mints a fresh token and opens a new connection, so a balancer without
    /// stickiness spreads attempts over the tasks until the wanted one answers. Saved paths are
    /// printed on stdout, one per line; progress and retries go to stderr.
    Fetch {
        #[command(flatten)]
        token: TokenArgs,
        #[command(flatten)]
        args: FetchArgs,
    },
    /// Compare heap snapshots like Chrome DevTools' Comparison view: which classes grew, and
    /// who holds them.
    ///
    /// Per class: # New, # Deleted, # Delta, Alloc. Size, Freed Size, Size Delta, with objects
    /// matched by id, and the class's Retained Size in NEW with its change. For the top classes
    /// (--retainers), the retainer paths that hold the new objects, grouped.
    ///
    /// With three snapshots A B C (as `heapgate fetch --count 3` takes them), # Kept counts the
    /// objects new in B that are still alive in C: what was freed again drops out, what stays is
    /// the leak. Rows then rank by the kept objects' retained size.
    ///
    /// All files should come from the same process (the same X-Heapgate-Session); otherwise
    /// every object looks new, and a warning says so.
    ///
    /// Sampling heap profiles (.heapprofile or pprof, told apart by content; `fetch --profile`
    /// takes them) are compared by allocation site instead: live bytes and objects per
    /// function with file:line:column, bottom-up and top-down. With three profiles A B C, a
    /// site's growth is what it gained from A to B and still holds at C, so a burst freed by C
    /// counts zero. Profiles and snapshots cannot be mixed.
    Diff(DiffArgs),
    /// DevTools' Summary view of one snapshot: per class Count, Shallow Size and Retained Size,
    /// largest retained size first. For a heap profile: live bytes and objects by allocation
    /// site and by caller.
    Summary(SummaryArgs),
    /// Drill into one snapshot: one object by id (`@12345`, as DevTools shows it), the objects
    /// of a class or with a property, or the largest objects of the largest classes.
    ///
    /// `inspect FILE @ID`: the object's class, location, self and retained size, distance, its
    /// edges and its retainers (paged with --offset/--limit) and its retainer paths, grouped.
    /// `inspect FILE --class NAME`: who holds that class (grouped retainer paths, as `diff`
    /// shows them) and its largest objects. `--property NAME` and `--min-retained SIZE` filter
    /// objects; with no filter, the largest objects of the --top classes. The numbers are
    /// DevTools' own.
    ///
    /// The first question about a file analyses it and keeps an index in the cache directory;
    /// later questions (and `summary`/`diff` of the same file) load the index instead.
    Inspect(InspectArgs),
    /// List the series the leak watch stored (`heapgate-proxy --store`): task, when, heap
    /// growth, how it ended, which evidence it holds (sampling heap profiles, snapshots, and
    /// snapshots the headroom rule held back), and the files (which `diff` and `summary` read as
    /// they are, `s3://` URLs included).
    List(ListArgs),
    /// Replace the string values in a snapshot taken without --redact (plain, zstd or gzip) by a
    /// placeholder, keeping class, property and edge names, counts, sizes and ids, as
    /// `heapgate-proxy --redact strings` does.
    ///
    /// OUT is written in IN's encoding unless --plain; it is never overwritten.
    Redact(RedactArgs),
    /// Watch heapgate find a leak: a leaky Node.js app, heapgate-proxy in front of it, two
    /// snapshots through the proxy, and the diff. Needs only Node.js; cleans up after itself.
    #[cfg(feature = "demo")]
    Demo(DemoArgs),
    /// Serve heapgate's analyses to AI agents over the Model Context Protocol (stdio).
    ///
    /// Tools: list_evidence, summary, diff, holders, object, query (and take_snapshot with
    /// --capture). Answers start with a one-sentence verdict, carry structured content with an
    /// output schema, stay under --max-bytes (cursors page the rest) and never contain string
    /// values from the heap unless --allow-strings. Files are read only under --root. See
    /// docs/mcp.md for client configuration.
    Mcp(McpArgs),
    /// Print a shell completion script: `heapgate completions bash > /etc/bash_completion.d/heapgate`.
    Completions {
        /// The shell to complete for.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print a manual page (roff): `heapgate man | man -l -`, `heapgate man fetch | man -l -`;
    /// or write every page to a directory: `heapgate man --dir /usr/local/share/man/man1`.
    Man(ManArgs),
}

#[derive(Debug, Args)]
pub struct McpArgs {
    /// A directory or s3://bucket/prefix the tools may read (repeat for more). Any other path,
    /// and anything a symlink leads out of a root to, is refused.
    #[arg(long = "root", value_name = "DIR|URL", required = true)]
    pub roots: Vec<String>,

    /// Let string values from the heap appear in answers (object details). Off by default:
    /// snapshots hold users' data and secrets, and an agent's transcript is not a safe place.
    #[arg(long)]
    pub allow_strings: bool,

    /// Enable the take_snapshot tool for this sidecar (http(s)://host[:port][/prefix]; repeat
    /// for more). Needs HEAPGATE_SECRET or HEAPGATE_SECRET_FILE in the environment; files land
    /// in --capture-dir as `heapgate fetch` saves them.
    #[arg(long = "capture", value_name = "BASE_URL")]
    pub capture: Vec<String>,

    /// Where take_snapshot saves; must be under a local --root [default: the first local root].
    #[arg(long, value_name = "DIR", requires = "capture")]
    pub capture_dir: Option<PathBuf>,

    #[command(flatten)]
    pub cache: CacheArgs,

    /// Most bytes of text per answer; longer lists are paged with cursors.
    #[arg(long, value_name = "BYTES", default_value_t = 8192, value_parser = clap::value_parser!(u64).range(1024..=1_048_576))]
    pub max_bytes: u64,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// The page to print: a subcommand's (`fetch` prints heapgate-fetch(1)) or `heapgate-proxy`;
    /// without it, heapgate(1).
    #[arg(value_name = "PAGE", conflicts_with = "dir")]
    pub page: Option<String>,

    /// Write every page into DIR (heapgate.1, one per subcommand such as heapgate-fetch.1, and
    /// heapgate-proxy.1) and print their paths.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct MintArgs {
    /// Mint as if it were INSTANT (RFC 3339: 2021-06-01T10:15:00Z, 2021-06-01T10:15:00+02:00).
    #[arg(long, value_name = "INSTANT", value_parser = parse_instant)]
    pub at: Option<DateTime<Utc>>,

    /// What the token opens: `snapshot` signs --value unchanged (the Node.js one-liner's token);
    /// `profile` signs VALUE + ":heapprofile" and opens only the sampling heap profile
    /// (`/heapprofile`), never a snapshot.
    #[arg(long = "for", value_name = "INSTRUMENT", default_value = "snapshot", value_parser = parse_instrument)]
    pub instrument: Instrument,

    /// Print the full URL instead: BASE + --path + ?hash=HEX (+ &task=ID).
    #[arg(long, value_name = "BASE")]
    pub url: Option<String>,

    /// The path joined to --url [default: /heapdump, or /heapprofile with --for profile].
    #[arg(long, value_name = "PATH", requires = "url")]
    pub path: Option<String>,

    /// Ask for this task's snapshot (adds &task=ID to the URL; other tasks answer 421).
    #[arg(long, value_name = "ID", requires = "url")]
    pub task: Option<String>,

    /// Print {"hash","hour","expires","url"} as JSON. `expires` is the end of the hour;
    /// verifiers with a grace period accept the token a little longer.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The token: 64 hex characters, either case.
    #[arg(value_name = "HASH")]
    pub hash: String,

    /// What the token should open: `snapshot` (--value as is) or `profile` (VALUE + ":heapprofile").
    #[arg(long = "for", value_name = "INSTRUMENT", default_value = "snapshot", value_parser = parse_instrument)]
    pub instrument: Instrument,

    /// Verify as if it were INSTANT (RFC 3339).
    #[arg(long, value_name = "INSTANT", value_parser = parse_instant)]
    pub at: Option<DateTime<Utc>>,

    /// Keep accepting the previous hour's token this long after the hour turns.
    #[arg(long, value_name = "DURATION", default_value = "5m")]
    pub grace: humantime::Duration,

    /// Accept the next hour's token this long before it starts (clock skew).
    #[arg(long, value_name = "DURATION", default_value = "1m")]
    pub skew: humantime::Duration,

    /// On stderr: the exact payloads tried and, searching ±24 h, the hour the token was minted for.
    #[arg(long)]
    pub explain: bool,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Exit status: 0 when all --count snapshots were saved, 1 otherwise (files \
                        already saved are kept), 2 usage or configuration error, 130 interrupted."
)]
pub struct FetchArgs {
    /// The service: http(s)://host[:port][/prefix], without query (--path is joined to it).
    #[arg(value_name = "BASE_URL")]
    pub base_url: String,

    /// Take the snapshots from this task (X-Heapgate-Task). Without it, the first task that
    /// answers a probe is pinned and used for the whole series.
    #[arg(long, value_name = "ID")]
    pub task: Option<String>,

    /// How many snapshots to take.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub count: u32,

    /// Time between the starts of consecutive snapshots (10m, 90s, 1h30m).
    #[arg(long, value_name = "DURATION", default_value = "10m")]
    pub interval: humantime::Duration,

    /// Directory to save into; created if missing. Existing files are never overwritten.
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub out: PathBuf,

    /// The path joined to BASE_URL [default: /heapdump, or /heapprofile with --profile].
    #[arg(long, value_name = "PATH")]
    pub path: Option<String>,

    /// Take sampling heap profiles instead of snapshots: live bytes by allocation site, a few
    /// KiB that cost the app milliseconds, safe near its memory limit. Uses a profile token
    /// (it signs VALUE:heapprofile and never opens the snapshot). `heapgate diff` reads them.
    #[arg(long)]
    pub profile: bool,

    /// With --profile, the format to save: heapprofile (DevTools' JSON; Memory tab → Load) or
    /// pprof (gzipped profile.proto for go tool pprof, Pyroscope, speedscope).
    #[arg(long, value_name = "FORMAT", requires = "profile", value_parser = ["heapprofile", "pprof"])]
    pub format: Option<String>,

    /// Give up on a snapshot after this many requests.
    #[arg(long, value_name = "N", default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_attempts: u32,

    /// Save what came over the wire (.heapsnapshot.zst or .gz) instead of decompressing it; it is
    /// still decoded and checked to be a complete snapshot first. `heapgate diff` reads both.
    #[arg(long)]
    pub keep_compressed: bool,

    /// Ask for an uncompressed answer (Accept-Encoding: identity). By default fetch asks for
    /// zstd or gzip and saves the decompressed snapshot.
    #[arg(long, conflicts_with = "keep_compressed")]
    pub no_compression: bool,

    /// When the series is saved, also write its report as one HTML page to FILE: `heapgate diff`
    /// of the snapshots (with --count 3: A B C; more: the first and the last two), or the
    /// summary of a single one.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Exit status: 0 ok, 1 a file could not be read, 2 usage error, 3 --fail-on-growth \
                  exceeded (the classes are named on stderr)."
)]
pub struct DiffArgs {
    /// BASE NEW, or A B C: snapshots of one process, oldest first.
    #[arg(value_name = "SNAPSHOT", num_args = 2..=3, required = true)]
    pub files: Vec<PathBuf>,

    /// How many classes the table shows.
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub top: usize,

    /// Order: size (Size Delta), delta (# Delta), count (# New), retained (Retained Delta),
    /// kept (Kept Retained) or new-retained (what the new objects retain). Default: new-retained,
    /// or kept with three snapshots; by these two, V8's bookkeeping classes ((compiled code),
    /// (system), (object shape)) come after the others, and with three snapshots rows with no
    /// kept object always come last.
    #[arg(long, value_name = "ORDER", value_parser = ["size", "delta", "count", "retained", "kept", "new-retained"])]
    pub sort: Option<String>,

    /// For how many of the top classes to show who holds their new (or kept) objects; 0 turns
    /// the retainer paths off.
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub retainers: usize,

    /// Show every step of the retainer paths: by default the way from the GC root through
    /// Node.js and package internals to the first step in your own code is one line.
    #[arg(long)]
    pub full_paths: bool,

    /// Exit 3 when a class's retained size grew by more than SIZE (with three snapshots: its
    /// kept objects' retained size), e.g. 1MiB, 500kB, 2000000.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub fail_on_growth: Option<u64>,

    /// Print every class as JSON instead of the table.
    #[arg(long)]
    pub json: bool,

    /// Also write the report as one self-contained HTML page to FILE (replaced if it exists):
    /// growth chart, sortable table and who holds the top classes; no network, no string
    /// values from the heap.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,

    #[command(flatten)]
    pub cache: CacheArgs,
}

impl FetchArgs {
    /// What the series takes.
    pub fn instrument(&self) -> Instrument {
        if self.profile {
            Instrument::Profile
        } else {
            Instrument::Snapshot
        }
    }

    /// `--path`, or the instrument's usual path.
    pub fn path(&self) -> &str {
        self.path
            .as_deref()
            .unwrap_or_else(|| self.instrument().default_path())
    }

    /// The profile format asked for (`None` for snapshots).
    pub fn profile_format(&self) -> Option<heapgate_protocol::ProfileFormat> {
        self.profile.then(|| {
            self.format
                .as_deref()
                .and_then(|f| f.parse().ok())
                .unwrap_or_default()
        })
    }
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// A directory or s3://bucket/prefix, as given to heapgate-proxy --store.
    #[arg(value_name = "DIR|URL")]
    pub store: String,
}

#[derive(Debug, Args)]
pub struct SummaryArgs {
    /// The snapshot.
    #[arg(value_name = "SNAPSHOT")]
    pub file: PathBuf,

    /// How many classes the table shows.
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub top: usize,

    /// Print every class as JSON instead of the table.
    #[arg(long)]
    pub json: bool,

    /// Also write the Summary as one self-contained HTML page to FILE (replaced if it exists).
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,

    #[command(flatten)]
    pub cache: CacheArgs,
}

/// The index cache, on the commands that analyse snapshots (`summary`, `diff`, `inspect`).
#[derive(Debug, Args)]
#[command(next_help_heading = "Index cache")]
pub struct CacheArgs {
    /// Keep the index of each analysed snapshot in DIR, so that the next question about the
    /// same file loads it instead [default: $XDG_CACHE_HOME/heapgate or ~/.cache/heapgate].
    #[arg(long, value_name = "DIR", env = "HEAPGATE_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,

    /// At most SIZE of indexes in the cache directory; the least recently used go first.
    #[arg(long, value_name = "SIZE", env = "HEAPGATE_CACHE_MAX", default_value = "8GiB", value_parser = parse_size)]
    pub cache_max: u64,

    /// Neither read nor write indexes.
    #[arg(long, env = "HEAPGATE_NO_CACHE")]
    pub no_cache: bool,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The snapshot (a file or an s3:// URL).
    #[arg(value_name = "SNAPSHOT")]
    pub file: PathBuf,

    /// One object, by the id DevTools shows after `@` (`@12345` or `12345`).
    #[arg(value_name = "@ID", value_parser = parse_object_id)]
    pub object: Option<u32>,

    /// Objects of this class (as `summary` names it); also shows who holds the class.
    #[arg(long, value_name = "NAME", conflicts_with = "object")]
    pub class: Option<String>,

    /// With --class: only the class defined where the location contains TEXT (`app.js:12`).
    #[arg(long, value_name = "TEXT", requires = "class")]
    pub location: Option<String>,

    /// Objects with a property (or any named edge) called NAME.
    #[arg(long, value_name = "NAME", conflicts_with = "object")]
    pub property: Option<String>,

    /// Objects that retain at least SIZE (1MiB, 500kB, 2000000).
    #[arg(long, value_name = "SIZE", value_parser = parse_size, conflicts_with = "object")]
    pub min_retained: Option<u64>,

    /// Items per list (objects, edges, retainers).
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub limit: usize,

    /// Skip this many items of each list (the `next: --offset N` a page ends with).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub offset: usize,

    /// Without filters: how many of the largest classes to list (with --limit objects each).
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub top: usize,

    /// How many retainer path groups to show; 0 turns them off.
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub paths: usize,

    /// Show every step of the retainer paths.
    #[arg(long)]
    pub full_paths: bool,

    /// Show property names that look like data (dictionary keys such as e-mail addresses or
    /// tokens) as they are; by default they read `<key>`. String values are never shown.
    #[arg(long)]
    pub show_keys: bool,

    /// Print the answer as JSON instead of text.
    #[arg(long)]
    pub json: bool,

    /// Also write the answer as one self-contained HTML page to FILE (replaced if it exists).
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,

    #[command(flatten)]
    pub cache: CacheArgs,
}

#[derive(Debug, Args)]
pub struct RedactArgs {
    /// The snapshot to redact (.heapsnapshot, .zst or .gz, recognised by content).
    #[arg(value_name = "IN")]
    pub input: PathBuf,

    /// Where to write the redacted snapshot; must not exist.
    #[arg(value_name = "OUT")]
    pub output: PathBuf,

    /// Write plain JSON whatever IN's encoding.
    #[arg(long)]
    pub plain: bool,
}

#[cfg(feature = "demo")]
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Objects the demo app leaks between the two snapshots.
    #[arg(long, value_name = "N", default_value_t = 20_000)]
    pub leak: u32,

    /// Keep the snapshots in this directory instead of deleting them.
    #[arg(long, value_name = "DIR")]
    pub keep: Option<PathBuf>,

    /// Also write the leak report as one self-contained HTML page to FILE.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,

    /// Instead of the hunt: keep the app and heapgate-proxy running until Ctrl-C, to try the
    /// sidecar's recipes on them. Prints `proxy URL`, `app URL` and `secret-file PATH` on stdout.
    #[arg(long, conflicts_with_all = ["keep", "html", "leak"])]
    pub serve: bool,
}

/// `@12345` or `12345`: a snapshot node id.
fn parse_object_id(text: &str) -> Result<u32, String> {
    text.strip_prefix('@')
        .unwrap_or(text)
        .parse()
        .map_err(|_| format!("{text:?} is not an object id; expected @ and a number, e.g. @12345"))
}

/// `1MiB`, `500kB`, `1.5 GB`, `2000000` (bytes).
fn parse_size(text: &str) -> Result<u64, String> {
    text.trim()
        .parse::<bytesize::ByteSize>()
        .map(|s| s.as_u64())
        .map_err(|e| format!("{e}; expected a size such as 1MiB, 500kB or 2000000"))
}

fn parse_instant(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("{e}; expected RFC 3339, e.g. 2021-06-01T10:15:00Z"))
}

fn parse_instrument(text: &str) -> Result<Instrument, String> {
    text.parse()
        .map_err(|e: heapgate_protocol::UnknownInstrument| e.to_string())
}
