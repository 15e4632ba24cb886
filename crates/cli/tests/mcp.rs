//! `heapgate mcp` driven by MCP clients nobody here wrote, on a real Node.js leak series: the
//! official TypeScript SDK client (`tests/data/mcp/agent.mjs`) and the MCP Inspector's CLI
//! mode, both pinned in `tests/data/mcp/package-lock.json` and installed by `.ci/run` (the
//! Inspector needs Node >= 22.19: the Node 24 of `tests/data/node24`).
//!
//! The SDK client goes the agent's way (list the evidence → diff the series → the biggest object
//! of the class that grew → that object), calls every tool, validates every structured answer
//! against the tool's declared output schema, pages to the end, cancels a long call on its first
//! progress notification, and tries paths outside the root.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use heapgate_tests::{node_or_skip, node24_or_skip, npm_data_or_skip};
use serde_json::{Value, json};

/// Objects the Map gains between A and B, all still held at C.
const LEAK: u64 = 4500;

/// A module-level Map filled from a timer (so the snapshot names it `orders`), transient work
/// replaced before every snapshot, and, for the cancellation test, one big snapshot.
const SCRIPT: &str = r#"
const v8 = require("v8");
const [dir, leak, big] = [process.argv[2], +process.argv[3], +process.argv[4]];
class Order { constructor(i) { this.id = i; this.total = i * 1.5; this.note = "customer-secret-" + i; } }
class Scratch { constructor(i) { this.i = i; } }
const orders = new Map();
let scratch = [];
function work(n) { scratch = []; for (let i = 0; i < n; i++) scratch.push(new Scratch(i)); }
const snap = (name) => v8.writeHeapSnapshot(`${dir}/${name}.heapsnapshot`);
setTimeout(() => {
  work(1000); snap("a");
  for (let i = 0; i < leak; i++) orders.set("order-" + i, new Order(i));
  work(1000); snap("b");
  work(1000); snap("c");
  const ballast = [];
  for (let i = 0; i < big; i++) ballast.push({ i, s: "x" + i });
  globalThis.ballast = ballast;
  snap("big/big");
}, 1);
"#;

struct Series {
    _dir: tempfile::TempDir,
    root: PathBuf,
    files: [PathBuf; 3],
    big: PathBuf,
    outside: tempfile::TempDir,
    /// The servers' index cache (never the user's).
    cache: PathBuf,
}

/// The series, taken once for all tests here; `None` after a loud skip.
/// The npm clients and the leak series, or `None` (said loudly) when either is missing.
fn clients_and_series(test: &str) -> Option<(PathBuf, &'static Series)> {
    Some((npm_data_or_skip(test, "mcp")?, series(test)?))
}

fn series(test: &str) -> Option<&'static Series> {
    static SERIES: OnceLock<Option<Series>> = OnceLock::new();
    let node = node_or_skip(test)?;
    SERIES
        .get_or_init(|| {
            let dir = tempfile::Builder::new()
                .prefix("heapgate-mcp-")
                .tempdir()
                .unwrap();
            let root = dir.path().join("evidence");
            std::fs::create_dir_all(root.join("big")).unwrap();
            let script = dir.path().join("app.js");
            std::fs::write(&script, SCRIPT).unwrap();
            let out = Command::new(node)
                .arg(&script)
                .arg(&root)
                .arg(LEAK.to_string())
                .arg("300000")
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "node: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            // Something outside the root, reachable through a symlink inside it.
            let outside = tempfile::tempdir().unwrap();
            std::fs::write(outside.path().join("secret.heapsnapshot"), "{}").unwrap();
            std::os::unix::fs::symlink(
                outside.path().join("secret.heapsnapshot"),
                root.join("link.heapsnapshot"),
            )
            .unwrap();
            // A snapshot cut short, as a full disk or a killed writer leaves one.
            let whole = std::fs::read(root.join("a.heapsnapshot")).unwrap();
            std::fs::create_dir_all(root.join("bad")).unwrap();
            std::fs::write(root.join("bad/cut.heapsnapshot"), &whole[..whole.len() / 2]).unwrap();
            let root = std::fs::canonicalize(root).unwrap();
            let files = ["a", "b", "c"].map(|n| root.join(format!("{n}.heapsnapshot")));
            let big = root.join("big/big.heapsnapshot");
            let cache = dir.path().join("cache");
            Some(Series {
                cache,
                _dir: dir,
                root,
                files,
                big,
                outside,
            })
        })
        .as_ref()
}

/// The README's sample store: one series the leak watch stored, with its manifest.
fn stored_sample() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/readme/heap-evidence")
}

fn heapgate() -> &'static str {
    env!("CARGO_BIN_EXE_heapgate")
}

fn s(path: &Path) -> String {
    path.display().to_string()
}

/// Runs the client `name` in tests/data/mcp (written there from `inline` for this run when
/// given) with `config` as its argument; its stdout, once it exited 0.
fn run_client(
    node: &Path,
    clients: &Path,
    name: &str,
    inline: Option<&str>,
    config: &Value,
) -> String {
    let path = clients.join(name);
    if let Some(script) = inline {
        std::fs::write(&path, script).unwrap();
    }
    let out = Command::new(node)
        .current_dir(clients)
        .arg(&path)
        .arg(config.to_string())
        .output()
        .unwrap();
    if inline.is_some() {
        let _ = std::fs::remove_file(&path);
    }
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{name} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn the_sdk_client_goes_from_the_evidence_to_the_biggest_leaked_object() {
    let test = "mcp::sdk_client";
    let (Some(node), Some((clients, series))) = (node_or_skip(test), clients_and_series(test))
    else {
        return;
    };
    let relative_escape = format!(
        "../../{}/secret.heapsnapshot",
        series.outside.path().display()
    );
    let config = json!({
        "command": heapgate(),
        // A second root: a store the leak watch wrote (the README's sample store).
        "args": [
            "mcp", "--root", s(&series.root), "--root", s(&stored_sample()),
            "--cache-dir", s(&series.cache),
        ],
        "root": s(&series.root),
        "series": series.files.iter().map(|f| s(f)).collect::<Vec<_>>(),
        "big": s(&series.big),
        "leak": {"class": "Order", "count": LEAK, "variable": "orders"},
        "hidden": s(&series.root.join("link.heapsnapshot")),
        "truncated": s(&series.root.join("bad/cut.heapsnapshot")),
        "outside": [
            "/etc/passwd",
            s(&series.outside.path().join("secret.heapsnapshot")),
            relative_escape,
            "link.heapsnapshot",
            format!("{}/../../etc/passwd", s(&series.root)),
            "%2e%2e/%2e%2e/etc/passwd",
            "file:///etc/passwd",
            "s3://bucket/heap/a.heapsnapshot",
        ],
        "maxBytes": 8192,
    });
    let stdout = run_client(&node, &clients, "agent.mjs", None, &config);
    let report: Value = stdout
        .lines()
        .find_map(|l| l.strip_prefix("report "))
        .map(|l| serde_json::from_str(l).unwrap())
        .unwrap_or_else(|| panic!("no report line:\n{stdout}"));
    eprintln!("mcp agent report: {report:#}");
    let tools: Vec<&str> = report["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    for tool in [
        "list_evidence",
        "summary",
        "diff",
        "holders",
        "query",
        "object",
    ] {
        assert!(tools.contains(&tool), "{tool} missing: {tools:?}");
        assert!(
            report["calls"][tool].as_u64().unwrap() > 0,
            "{tool} not called"
        );
    }
    // The verdict of the diff is the answer: the class, the count, the Map and its variable.
    let verdict = report["diffVerdict"].as_str().unwrap();
    assert!(
        verdict.contains("Order") && verdict.contains("4500") && verdict.contains("orders"),
        "{verdict}"
    );
    assert!(verdict.contains("Map"), "{verdict}");
    // A handful of small calls.
    let calls = report["agentCalls"].as_u64().unwrap();
    assert!(calls <= 4, "the agent needed {calls} calls");
    assert!(report["pages"].as_u64().unwrap() >= 1, "nothing was paged");
    assert_eq!(report["refused"].as_u64().unwrap(), 8 * 3);
    assert_eq!(report["cancelled"], true);
}

/// No string value from the heap in any answer unless the operator allows it: the Orders'
/// notes (`customer-secret-…`) are in every snapshot of the series.
#[test]
fn answers_carry_no_string_values_from_the_heap() {
    let test = "mcp::no_strings";
    let (Some(node), Some((clients, series))) = (node_or_skip(test), clients_and_series(test))
    else {
        return;
    };
    let script = r#"
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
const config = JSON.parse(process.argv[2]);
const client = new Client({ name: "strings", version: "1" });
await client.connect(new StdioClientTransport({ command: config.command, args: config.args }));
const { tools } = await client.listTools();
let all = "";
const [a, b, c] = config.series;
const calls = [["list_evidence", {}], ["summary", { file: c }], ["diff", { files: [a, b, c], retainers: 10 }]];
for (const t of tools.map((t) => t.name)) {
  if (t === "holders") calls.push([t, { file: c, class: "Order" }]);
  if (t === "query") calls.push([t, { file: c, class: "Order" }]);
}
for (const [name, args] of calls) {
  let r = await client.callTool({ name, arguments: args });
  all += JSON.stringify(r);
  while (r.structuredContent?.next_cursor) {
    r = await client.callTool({ name, arguments: { cursor: r.structuredContent.next_cursor } });
    all += JSON.stringify(r);
  }
  if (name === "query" && r.structuredContent?.items?.[0]) {
    const o = await client.callTool({ name: "object", arguments: { file: c, id: r.structuredContent.items[0].id } });
    all += JSON.stringify(o);
  }
}
await client.close();
console.log(all.includes("customer-secret-") ? "LEAKED" : "CLEAN", all.length);
"#;
    let config = json!({
        "command": heapgate(),
        "args": ["mcp", "--root", s(&series.root), "--cache-dir", s(&series.cache)],
        "series": series.files.iter().map(|f| s(f)).collect::<Vec<_>>(),
    });
    let stdout = run_client(&node, &clients, ".strings-check.mjs", Some(script), &config);
    assert!(stdout.starts_with("CLEAN"), "{stdout}");
}

/// The MCP Inspector's CLI mode: lists the tools with its schema portability check (`--strict`
/// exits 6 on an error-severity problem), calls summary and diff, and sees a refused path as a
/// tool error.
#[test]
fn the_inspector_cli_lists_and_calls_the_tools() {
    let test = "mcp::inspector_cli";
    let (Some(node24), Some((clients, series))) = (node24_or_skip(test), clients_and_series(test))
    else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let inspector = clients
        .join("node_modules/@modelcontextprotocol/inspector/clients/launcher/build/index.js");
    let run = |extra: &[&str]| {
        let out = Command::new(&node24)
            .arg(&inspector)
            .arg("--cli")
            .args([heapgate(), "mcp", "--root"])
            .arg(&series.root)
            .arg("--cache-dir")
            .arg(&series.cache)
            .args(extra)
            // The Inspector keeps a catalog and secrets under HOME: a throwaway one.
            .env("HOME", home.path())
            .env("MCP_CATALOG_PATH", home.path().join("mcp.json"))
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        (out.status.code(), stdout, stderr)
    };
    let (code, stdout, stderr) = run(&["--method", "tools/list", "--strict"]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    let listed: Value = serde_json::from_str(&stdout).unwrap();
    let names: Vec<&str> = listed["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"diff") && names.contains(&"list_evidence"),
        "{names:?}"
    );
    assert!(!stderr.contains("Error:"), "{stderr}");

    let c = s(&series.files[2]);
    let (code, stdout, stderr) = run(&[
        "--method",
        "tools/call",
        "--tool-name",
        "summary",
        "--tool-arg",
        &format!("file={c}"),
    ]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    let answer: Value = serde_json::from_str(&stdout).unwrap();
    assert!(
        answer["structuredContent"]["items"]
            .as_array()
            .is_some_and(|i| !i.is_empty()),
        "{answer:#}"
    );

    let (code, stdout, stderr) = run(&[
        "--method",
        "tools/call",
        "--tool-name",
        "summary",
        "--tool-arg",
        "file=/etc/passwd",
    ]);
    let text = format!("{stdout}{stderr}");
    assert!(text.contains("outside the roots"), "{code:?}: {text}");
    assert!(!text.contains("root:x:0"), "{text}");
}

/// `take_snapshot` through a real sidecar in front of a real Node.js app: absent unless the
/// operator allows it, refuses a sidecar the operator did not name, and lands the files under
/// the root where `diff` reads them. Without a secret in the environment the server does not
/// start.
#[test]
fn take_snapshot_lands_through_the_sidecar_only_when_allowed() {
    let test = "mcp::take_snapshot";
    let (Some(node), Some(clients)) = (node_or_skip(test), npm_data_or_skip(test, "mcp")) else {
        return;
    };
    let secret = "mcp-capture-secret";
    let app = heapgate_tests::NodeApp::start(&node, &[("LEAK_PER_SECOND", "20000")]);
    let proxy = heapgate_tests::ProxyProc::in_front_of(
        &app,
        secret,
        &[
            "--task-id",
            "t1",
            "--profile-interval",
            "64KiB",
            "--profile-min-interval",
            "0s",
            "--min-interval",
            "0s",
        ],
    );
    let base = format!("http://{}", proxy.listen);
    let dir = tempfile::tempdir().unwrap();
    let root = std::fs::canonicalize(dir.path()).unwrap();

    // No secret: a configuration error, before any tool exists.
    let refused = Command::new(heapgate())
        .args(["mcp", "--root"])
        .arg(&root)
        .args(["--capture", &base])
        .env_remove("HEAPGATE_SECRET")
        .env_remove("HEAPGATE_SECRET_FILE")
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("no secret"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    let script = r#"
import assert from "node:assert/strict";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
const config = JSON.parse(process.argv[2]);
const connect = async (args, env) => {
  const client = new Client({ name: "capture", version: "1" });
  await client.connect(new StdioClientTransport({ command: config.command, args, env: { PATH: process.env.PATH, ...env } }));
  return client;
};
const plain = await connect(config.plain, {});
assert.ok(!(await plain.listTools()).tools.some((t) => t.name === "take_snapshot"), "take_snapshot without --capture");
const off = await plain.callTool({ name: "take_snapshot", arguments: {} }).catch((e) => ({ error: String(e) }));
assert.ok(off.error || off.isError, "take_snapshot answered without --capture");
await plain.close();
const client = await connect(config.capture, { HEAPGATE_SECRET: config.secret });
assert.ok((await client.listTools()).tools.some((t) => t.name === "take_snapshot"));
const other = await client.callTool({ name: "take_snapshot", arguments: { sidecar: "http://169.254.169.254" } });
assert.ok(other.isError && /not one the operator allowed/.test(other.content[0].text), JSON.stringify(other));
const took = await client.callTool({ name: "take_snapshot", arguments: { profile: true, count: 2, interval: "1s" } }, undefined, { timeout: 120000 });
assert.ok(!took.isError, JSON.stringify(took));
const files = took.structuredContent.items.map((i) => i.path);
assert.equal(files.length, 2);
const diff = await client.callTool({ name: "diff", arguments: { files } });
assert.ok(!diff.isError, JSON.stringify(diff));
assert.equal(diff.structuredContent.kind, "profiles");
await client.close();
console.log(JSON.stringify({ files, verdict: took.structuredContent.verdict, diff: diff.structuredContent.verdict }));
"#;
    let root_arg = s(&root);
    let cache = s(&root.join(".cache"));
    let config = json!({
        "command": heapgate(),
        "plain": ["mcp", "--root", root_arg, "--cache-dir", cache],
        "capture": ["mcp", "--root", root_arg, "--cache-dir", cache, "--capture", base],
        "secret": secret,
    });
    let stdout = run_client(&node, &clients, ".capture-check.mjs", Some(script), &config);
    let report: Value = serde_json::from_str(stdout.trim()).unwrap();
    for file in report["files"].as_array().unwrap() {
        let file = Path::new(file.as_str().unwrap());
        assert!(file.starts_with(&root), "{}", file.display());
        assert!(file.is_file());
    }
}
