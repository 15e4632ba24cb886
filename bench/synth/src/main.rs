//! `heapgate-synth`: writes a valid synthetic V8 `.heapsnapshot` of any size, streamed to disk,
//! for heapgate's scale benchmarks (`bench/retainers`). Real snapshots of 2 GB need a ~1 GB heap
//! and many GB of RAM to take; this writes one in about a minute with a few MB of memory.
//!
//!   heapgate-synth --size 2.2GB -o big.heapsnapshot
//!   heapgate-synth --nodes 5000000 --series 3 -o s.heapsnapshot   # s-1, s-2, s-3
//!
//! The graph is modelled on Node.js 20 snapshots (see `plan.rs`) and has a planted leak: a `Map`
//! named `cache` in the context of the closure `getContext` (app.js), holding
//! `LeakedRequestContext` objects. In a series the leak grows and keeps its ids, transient
//! `PendingRequest` objects are replaced in every snapshot, and everything else stays the same
//! (same ids, names and sizes), as in snapshots of one process.

mod out;
mod plan;
mod walk;

use std::{
    fs::File,
    io::{self, BufWriter, Write},
    path::{Path, PathBuf},
    process::ExitCode,
    time::Instant,
};

use anyhow::{Context, bail};
use clap::Parser;

use crate::out::{
    ByteCount, Count, EDGE_FIELDS, EDGE_TYPES, Edges, Locations, NODE_FIELDS, NODE_TYPES, Nodes,
    Numbers,
};
use crate::plan::{Config, Plan, dyn_string};

#[derive(Parser, Debug)]
#[command(
    version,
    about = "Writes valid synthetic V8 .heapsnapshot files of any size"
)]
struct Args {
    /// Where to write; with --series K, `-1`, `-2`, … are inserted before the extension.
    #[arg(short, long)]
    output: PathBuf,
    /// Approximate file size of the first snapshot, e.g. 2.2GB, 400MB, 1GiB.
    #[arg(long, conflicts_with = "nodes", required_unless_present = "nodes")]
    size: Option<String>,
    /// Approximate node count of the first snapshot.
    #[arg(long)]
    nodes: Option<u64>,
    /// Snapshots of one "process": the leak grows, ids stay stable, transients are replaced.
    #[arg(long, default_value_t = 1)]
    series: usize,
    /// Application classes.
    #[arg(long, default_value_t = 300)]
    classes: usize,
    /// Share of the first snapshot's nodes that belong to the leak.
    #[arg(long, default_value_t = 0.25)]
    leak_share: f64,
    /// Leaked objects added per later snapshot, relative to the first snapshot's.
    #[arg(long, default_value_t = 0.1)]
    leak_growth: f64,
    #[arg(long, default_value_t = 9)]
    seed: u64,
}

fn main() -> ExitCode {
    match run(&Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("heapgate-synth: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> anyhow::Result<()> {
    if args.series == 0 || args.series > 9 {
        bail!("--series must be between 1 and 9");
    }
    if args.classes == 0 {
        bail!("--classes must be at least 1");
    }
    if !(0.0..0.9).contains(&args.leak_share) || !(0.0..10.0).contains(&args.leak_growth) {
        bail!("--leak-share must be in [0, 0.9) and --leak-growth in [0, 10)");
    }
    let mut config = Config {
        nodes: args.nodes.unwrap_or(1_000_000),
        classes: args.classes,
        series: args.series,
        leak_share: args.leak_share,
        leak_growth: args.leak_growth,
        seed: args.seed,
    };
    if let Some(size) = &args.size {
        let bytes = parse_size(size)?;
        config.nodes = nodes_for(&config, bytes)?;
        eprintln!(
            "heapgate-synth: {} bytes asked, planning {} nodes",
            bytes, config.nodes
        );
    }
    if config.nodes > 900_000_000 {
        bail!("at most 900 million nodes (edge targets must fit heapgate's 30 bits)");
    }
    for t in 0..args.series {
        let path = series_path(&args.output, t, args.series);
        let started = Instant::now();
        let plan = Plan::new(&config, t as u32);
        let file = File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        let mut w = BufWriter::with_capacity(4 << 20, file);
        let stats = write_snapshot(&plan, &mut w)?;
        w.flush()?;
        let bytes = w.get_ref().metadata()?.len();
        eprintln!(
            "heapgate-synth: wrote {}: {} nodes, {} edges, {} strings, {} leaked objects, {:.1} MB in {:.1} s",
            path.display(),
            stats.nodes,
            stats.edges,
            plan.strings.total,
            plan.leak_count,
            bytes as f64 / 1e6,
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

/// `out.heapsnapshot` → `out-2.heapsnapshot` for the second of a series.
fn series_path(path: &Path, t: usize, series: usize) -> PathBuf {
    if series == 1 {
        return path.to_owned();
    }
    let stem = path
        .file_stem()
        .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
    let name = match path.extension() {
        Some(ext) => format!("{stem}-{}.{}", t + 1, ext.to_string_lossy()),
        None => format!("{stem}-{}", t + 1),
    };
    path.with_file_name(name)
}

/// `2.2GB` (decimal), `1GiB` (binary), `400MB`, `123456` (bytes).
fn parse_size(text: &str) -> anyhow::Result<u64> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let value: f64 = number
        .parse()
        .with_context(|| format!("--size {text:?}: not a size like 2.2GB"))?;
    let scale = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" | "k" => 1e3,
        "mb" | "m" => 1e6,
        "gb" | "g" => 1e9,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        other => bail!("--size {text:?}: unknown unit {other:?}"),
    };
    Ok((value * scale) as u64)
}

/// Nodes that make a first snapshot of about `bytes`: bytes per node is measured on two small
/// plans (counted, not written) and extrapolated (numbers grow a digit as the file grows).
fn nodes_for(config: &Config, bytes: u64) -> anyhow::Result<u64> {
    let measure = |nodes: u64| -> anyhow::Result<f64> {
        let plan = Plan::new(
            &Config {
                nodes,
                ..config.clone()
            },
            0,
        );
        let mut sink = ByteCount::default();
        write_snapshot(&plan, &mut sink)?;
        Ok(sink.0 as f64 / f64::from(plan.end))
    };
    let (n1, n2) = (200_000.0, 1_600_000.0);
    let (b1, b2) = (measure(n1 as u64)?, measure(n2 as u64)?);
    let slope = (b2 - b1) / (f64::ln(n2) - f64::ln(n1));
    let per_node = |n: f64| b2 + slope * (n.ln() - f64::ln(n2));
    let mut n = bytes as f64 / b2;
    for _ in 0..8 {
        n = bytes as f64 / per_node(n);
    }
    Ok(n.max(50_000.0) as u64)
}

struct Stats {
    nodes: u64,
    edges: u64,
}

/// Writes the whole snapshot, walking the graph once to count and once per section.
fn write_snapshot<W: Write>(plan: &Plan, w: &mut W) -> anyhow::Result<Stats> {
    let mut count = Count::default();
    walk::walk(plan, &mut count)?;
    if u64::from(count.max_target) >= count.nodes {
        bail!("generator bug: an edge points past the last node");
    }
    let meta = serde_json::json!({
        "node_fields": ["type", "name", "id", "self_size", "edge_count", "trace_node_id", "detachedness"],
        "node_types": [NODE_TYPES, "string", "number", "number", "number", "number", "number"],
        "edge_fields": ["type", "name_or_index", "to_node"],
        "edge_types": [EDGE_TYPES, "string_or_number", "node"],
        "trace_function_info_fields": ["function_id", "name", "script_name", "script_id", "line", "column"],
        "trace_node_fields": ["id", "function_info_index", "count", "size", "children"],
        "sample_fields": ["timestamp_us", "last_assigned_id"],
        "location_fields": ["object_index", "script_id", "line", "column"],
    });
    debug_assert_eq!(NODE_FIELDS, 7);
    debug_assert_eq!(EDGE_FIELDS, 3);
    write!(
        w,
        "{{\"snapshot\":{{\"meta\":{meta},\"node_count\":{},\"edge_count\":{},\"trace_function_count\":0}},\n\"nodes\":[",
        count.nodes, count.edges
    )?;
    let mut nodes = Nodes::new(&mut *w);
    walk::walk(plan, &mut nodes)?;
    nodes.finish()?;
    w.write_all(b"],\n\"edges\":[")?;
    let mut edges = Edges {
        numbers: Numbers::new(&mut *w),
    };
    walk::walk(plan, &mut edges)?;
    w.write_all(
        b"],\n\"trace_function_infos\":[],\n\"trace_tree\":[],\n\"samples\":[],\n\"locations\":[",
    )?;
    let mut locations = Locations::new(&mut *w);
    walk::walk(plan, &mut locations)?;
    w.write_all(b"],\n\"strings\":[")?;
    write_strings(plan, w)?;
    w.write_all(b"]}")?;
    Ok(Stats {
        nodes: count.nodes,
        edges: count.edges,
    })
}

fn write_strings<W: Write>(plan: &Plan, w: &mut W) -> io::Result<()> {
    let mut first = true;
    let mut put = |w: &mut W, s: &str| -> io::Result<()> {
        if !first {
            w.write_all(b",\n")?;
        }
        first = false;
        serde_json::to_writer(&mut *w, s).map_err(io::Error::other)
    };
    for s in &plan.strings.fixed {
        put(w, s)?;
    }
    let mut text = String::new();
    let mut written = plan.strings.fixed.len() as u64;
    for &(base, count, kind) in &plan.strings.ranges {
        if u64::from(base) != written {
            return Err(io::Error::other(
                "generator bug: string ranges out of order",
            ));
        }
        for i in 0..count {
            dyn_string(kind, i, &mut text);
            put(w, &text)?;
        }
        written += count;
    }
    Ok(())
}
