// Drives `heapgate mcp` with the official MCP TypeScript SDK client, as an agent would, for
// crates/cli/tests/mcp.rs. Asserts as it goes (node:assert) and prints one JSON report line
// (`report {...}`) for the Rust test to check; exits 1 on the first failure.
//
//   node agent.mjs '{"command": ".../heapgate", "args": ["mcp", "--root", DIR],
//                    "series": [A, B, C], "big": BIG, "leak": {"class": "Order", "count": 4500},
//                    "outside": [paths...], "maxBytes": 8192}'
import assert from "node:assert/strict";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import Ajv from "ajv";

const config = JSON.parse(process.argv[2]);
const maxBytes = config.maxBytes ?? 8192;
const report = { calls: {}, agentCalls: 0, agentBytes: 0, pages: 0, refused: 0, cancelled: false };

const transport = new StdioClientTransport({
  command: config.command,
  args: config.args,
  stderr: "pipe",
  env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "" },
});
let serverStderr = "";
transport.stderr?.on("data", (d) => (serverStderr += d));
const client = new Client({ name: "heapgate-test-agent", version: "1.0.0" });
const ajv = new Ajv({ allErrors: true, strict: false });
const validators = new Map();

function textOf(result) {
  return result.content.filter((c) => c.type === "text").map((c) => c.text).join("\n");
}

// One call: the SDK validates structuredContent against the tool's outputSchema itself; this
// checks it again with Ajv, checks the verdict sentence comes first, and the size rule.
async function call(name, args, options = {}) {
  const result = await client.callTool({ name, arguments: args }, undefined, options);
  report.calls[name] = (report.calls[name] ?? 0) + 1;
  const text = textOf(result);
  if (result.isError) return { error: text, result };
  const validate = validators.get(name);
  assert.ok(validate, `${name}: no output schema`);
  assert.ok(validate(result.structuredContent), `${name}: ${ajv.errorsText(validate.errors)}`);
  const s = result.structuredContent;
  assert.equal(typeof s.verdict, "string");
  assert.ok(text.startsWith(s.verdict), `${name}: the text does not start with the verdict`);
  assert.ok(Buffer.byteLength(text) <= maxBytes, `${name}: ${Buffer.byteLength(text)} bytes of text`);
  return { s, text, result };
}

// Every page of one answer; checks the offsets chain and the total.
async function allPages(name, args) {
  const first = await call(name, args);
  assert.ok(!first.error, `${name}: ${first.error}`);
  const items = [...first.s.items];
  let page = first.s;
  while (page.next_cursor) {
    const next = await call(name, { cursor: page.next_cursor });
    assert.ok(!next.error, `${name} page: ${next.error}`);
    assert.equal(next.s.offset, items.length, `${name}: page offsets`);
    items.push(...next.s.items);
    page = next.s;
    report.pages++;
  }
  assert.equal(items.length, first.s.total, `${name}: paged to ${items.length} of ${first.s.total}`);
  return { first: first.s, items };
}

function one_line(name, error) {
  assert.ok(error && !error.includes("\n"), `${name}: not one line: ${error}`);
}

try {
  await client.connect(transport);
  const { tools } = await client.listTools();
  for (const tool of tools) {
    assert.ok(tool.outputSchema, `${tool.name} declares no output schema`);
    assert.equal(tool.outputSchema.type, "object");
    validators.set(tool.name, ajv.compile(tool.outputSchema));
  }
  report.tools = tools.map((t) => t.name).sort();
  const [a, b, c] = config.series;

  // The agent's path: list the evidence, diff the series, find the biggest object of the class
  // that grew, open it. Every call of this path counts.
  const agent = async (name, args) => {
    const r = await call(name, args);
    assert.ok(!r.error, `${name}: ${r.error}`);
    report.agentCalls++;
    report.agentBytes += Buffer.byteLength(r.text);
    return r.s;
  };
  const listed = await agent("list_evidence", {});
  const paths = listed.items.map((i) => i.path);
  for (const f of config.series) assert.ok(paths.includes(f), `list_evidence lacks ${f}: ${paths}`);
  assert.ok(listed.items.every((i) => i.kind && i.size > 0 && i.modified), "evidence fields");
  if (config.hidden) assert.ok(!paths.includes(config.hidden), "a symlink out of the root is listed");
  const stored = listed.items.filter((i) => i.series);
  assert.ok(stored.length >= 3, "the stored series is not listed");
  assert.ok(stored.every((i) => i.task && i.started && i.ended && i.heap_growth_bytes > 0), "series fields");
  assert.match(stored[0].started, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  const diff = await agent("diff", { files: [a, b, c] });
  report.diffVerdict = diff.verdict;
  const grew = diff.items[0];
  assert.equal(grew.name, config.leak.class, `top class: ${diff.verdict}`);
  assert.equal(grew.kept_count, config.leak.count, "kept objects");
  const holder = grew.holders[0];
  assert.equal(holder.count, config.leak.count, "the top holder holds them all");
  assert.match(holder.holder, new RegExp(`${config.leak.variable}.*Map`), "holder names the Map");
  assert.ok(holder.path.some((s) => s.node === "Map"), "the path goes through the Map");
  if (validators.has("query")) {
    const found = await agent("query", { file: c, class: config.leak.class, limit: 1 });
    report.queryVerdict = found.verdict;
    const biggest = found.items[0];
    assert.ok(biggest && biggest.id, `query found nothing: ${found.verdict}`);
    const object = await agent("object", { file: c, id: biggest.id });
    report.objectVerdict = object.verdict;
    assert.equal(object.object.id, biggest.id);
    // Its paths from the roots, one per retainer (the nearest may be a stack root's): one runs
    // through the Map and names its variable.
    const viaMap = object.paths.find((p) => p.path.some((s) => s.node === "Map"));
    assert.ok(viaMap, `no path through the Map: ${JSON.stringify(object.paths)}`);
    assert.equal(viaMap.path[viaMap.path.length - 1].node, config.leak.class, "the path ends at it");
    assert.match(object.verdict, new RegExp(`held by variable ${config.leak.variable}`));
    report.objectPath = viaMap.path.map((s) => `${s.edge ?? ""}→${s.node}`).join(" ");
    report.biggest = biggest.id;
  }

  // Every tool on the real series, paged to the end where the answer is long.
  const summary = await allPages("summary", { file: c });
  assert.ok(summary.items.some((i) => i.name === config.leak.class), "summary lists the class");
  report.summaryItems = summary.items.length;
  await allPages("diff", { files: [a, c] });
  await allPages("list_evidence", { store: config.root });
  if (validators.has("holders")) {
    const held = await allPages("holders", { file: c, class: config.leak.class });
    assert.ok(held.items.length > 0, "holders: none");
  }
  if (validators.has("query")) {
    await allPages("query", { file: c, class: config.leak.class });
    const q = await call("query", { file: c, class: config.leak.class, limit: 1 });
    const id = q.s.items[0].id;
    await allPages("object", { file: c, id });
    const stale = await call("object", { file: a, id });
    assert.ok(stale.error, "an id from another snapshot must be a tool error");
    one_line("object", stale.error);
  }
  for (const tool of report.tools) {
    assert.ok(report.calls[tool] > 0 || tool === "take_snapshot", `${tool} was never called`);
  }

  // Paths outside the roots: refused, one line each, and the server lives on.
  for (const bad of config.outside) {
    for (const [name, args] of [
      ["summary", { file: bad }],
      ["diff", { files: [bad, c] }],
      ["list_evidence", { store: bad }],
    ]) {
      const r = await call(name, args);
      assert.ok(r.error, `${name} read ${bad}`);
      one_line(name, r.error);
      assert.ok(!/root:x:0/.test(r.error), `${name}: the refusal shows the file's content`);
      assert.match(r.error, /outside the roots|no such file/, `${name}: ${r.error}`);
      (report.refusals ??= []).push(r.error);
      report.refused++;
    }
  }
  // Bad input is a one-line tool error, and the server lives on.
  for (const [name, args] of [
    ["summary", { file: config.truncated }],
    ["diff", { files: [a, config.truncated] }],
    ["object", { file: c, id: "@not-an-id" }],
    ["query", { file: c, class: "NoSuchClass" }],
    ["summary", { file: c, bogus: 1 }],
  ]) {
    const r = await call(name, args);
    assert.ok(r.error, `${name} ${JSON.stringify(args)} succeeded`);
    one_line(name, r.error);
    (report.badInput ??= []).push(r.error);
  }
  const unknown = await call("diff", { files: [a] });
  assert.ok(unknown.error, "a 1-file diff is a tool error");
  one_line("diff", unknown.error);

  // A long call, cancelled on its first progress notification.
  if (config.big) {
    const controller = new AbortController();
    let progress = 0;
    const started = Date.now();
    const pending = call("summary", { file: config.big }, {
      signal: controller.signal,
      onprogress: () => {
        progress++;
        controller.abort("the agent moved on");
      },
      timeout: 600000,
    });
    await assert.rejects(pending, (e) => /abort|cancel|moved on/i.test(String(e)), "cancel");
    assert.ok(progress >= 1, "no progress notification before the answer");
    report.cancelled = true;
    report.cancelAfterMs = Date.now() - started;
    // The server still answers.
    const again = await call("list_evidence", {});
    assert.ok(!again.error, again.error);
  }
  await client.close();
  console.log("report " + JSON.stringify(report));
} catch (e) {
  console.error(`agent.mjs: ${e.stack ?? e}`);
  console.error(`server stderr:\n${serverStderr}`);
  try {
    await client.close();
  } catch {}
  process.exit(1);
}
