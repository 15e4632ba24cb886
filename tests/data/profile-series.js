// Takes three sampling heap profiles of this process with V8's own profiler (the inspector
// session the sidecar uses, here in-process) around a leak and a transient burst:
//   A: after warm-up
//   B: the leak has grown, and a burst of short-lived objects is still alive
//   C: the burst is freed, the leak has grown again
// Usage: node --expose-gc profile-series.js OUT_DIR [INTERVAL]
// Writes OUT_DIR/a.heapprofile, b.heapprofile, c.heapprofile and prints the leak's
// function position as "LEAK url:line:column" (1-based, as heapgate shows it), and its caller's
// as "CALLER …": once V8 optimizes the loop it inlines `rememberSession` into it, and V8's
// sampler then attributes the allocations to the loop's function (it does not expand inlined
// frames), so both positions are right answers.
'use strict';
const inspector = require('inspector');
const fs = require('fs');
const path = require('path');

const out = process.argv[2];
const interval = Number(process.argv[3] || 65536);
const session = new inspector.Session();
session.connect();
const post = (method, params) => new Promise((resolve, reject) =>
  session.post(method, params || {}, (err, res) => (err ? reject(err) : resolve(res))));

const sessions = new Map();
function rememberSession(id) {
  // The leak: every "request" leaves a record behind in a module-level Map.
  sessions.set(id, { id, user: 'user' + id, seen: [id, id + 1, id + 2, id + 3] });
}

let burstHold = null;
function buildReport(n) {
  // Transient: a big temporary structure, alive only while a report is being built.
  const rows = [];
  for (let i = 0; i < n; i++) rows.push({ row: i, cells: [i, i * 2, i * 3] });
  return rows;
}

async function profile(name) {
  global.gc();
  const { profile } = await post('HeapProfiler.getSamplingProfile');
  fs.writeFileSync(path.join(out, name), JSON.stringify(profile));
}

(async () => {
  await post('HeapProfiler.enable');
  await post('HeapProfiler.startSampling', { samplingInterval: interval });
  let next = 0;
  for (let i = 0; i < 5000; i++) rememberSession(next++);
  await profile('a.heapprofile');
  for (let i = 0; i < 40000; i++) rememberSession(next++);
  burstHold = buildReport(150000);
  await profile('b.heapprofile');
  burstHold = null;
  for (let i = 0; i < 40000; i++) rememberSession(next++);
  await profile('c.heapprofile');
  await post('HeapProfiler.stopSampling');
  session.disconnect();
  // 1-based line and column of `function rememberSession(` as V8 reports the function.
  const lines = fs.readFileSync(__filename, 'utf8').split('\n');
  const line = lines.findIndex((l) => l.startsWith('function rememberSession('));
  console.log(`LEAK ${__filename}:${line + 1}:${'function '.length + 'rememberSession'.length + 1}`);
  const caller = lines.findIndex((l) => l.startsWith('(async () => {'));
  console.log(`CALLER ${__filename}:${caller + 1}:2`);
  if (burstHold !== null || sessions.size === 0) process.exit(2);
})().catch((e) => { console.error(e); process.exit(1); });
