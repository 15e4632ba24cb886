'use strict';
// A small Node.js app that leaks on purpose, for heapgate's tests. No npm dependencies.
//
//   node --inspect=127.0.0.1:0 leaky-app.js [PORT]
//
// Port: argv[2], else env PORT, else 0 (a free port). Listens on 127.0.0.1 and prints exactly one
// line `listening <port>` on stdout once it accepts connections. With --inspect, Node prints
// `Debugger listening on ws://127.0.0.1:<port>/<uuid>` on stderr.
//
// Env LEAK_AT_START (default 100): LeakedRequestContext instances leaked at startup.
// Env LEAK_PER_SECOND (default 0): LeakedRequestContext instances leaked every second, a tenth
// every 100 ms (a steadily growing heap, for the leak watch).
//
// Routes:
//   GET /                 -> "ok"
//   GET /leak?n=N         -> leaks N (default 1, at most 1,000,000) LeakedRequestContext;
//                            answers {"leaked": <total>}
//   ANY /echo             -> streams the request body back (content-type kept)
//   GET /slow?ms=N        -> answers "slow <N>" after N ms (at most 60,000)
//   GET /headers          -> the request's method, url and headers as JSON
//   GET /heapdump         -> a heap snapshot streamed from v8.getHeapSnapshot()
//                            (the "seed style" upstream endpoint); gzip=1: gzip-encoded
//   GET /remember?text=T  -> keeps the string T alive (planted secrets)
//   GET /write-heapsnapshot -> in-process v8.writeHeapSnapshot() to a temp file (deleted after);
//                            answers {"ms","bytes"}: the baseline the benchmarks compare with
//   GET /memory           -> process.memoryUsage() as JSON
// SIGTERM closes the server, then exits 0.

const fs = require('fs');
const http = require('http');
const os = require('os');
const path = require('path');
const v8 = require('v8');
const zlib = require('zlib');

class LeakedRequestContext {
  constructor(seq, url) {
    this.seq = seq;
    this.url = url;
    this.createdAt = Date.now();
    this.note = `request context #${seq}`;
  }
}

// Strings the test planted (secrets a redacted snapshot must not carry).
const remembered = [];
globalThis.remembered = remembered;

const leakedRequestContexts = [];
globalThis.leakedRequestContexts = leakedRequestContexts;

function leak(count, url) {
  for (let i = 0; i < count; i++) {
    leakedRequestContexts.push(new LeakedRequestContext(leakedRequestContexts.length, url));
  }
}

function clampInt(text, fallback, max) {
  const n = Number.parseInt(text ?? '', 10);
  if (!Number.isFinite(n) || n < 0) return fallback;
  return Math.min(n, max);
}

function handle(req, res) {
  const url = new URL(req.url, 'http://127.0.0.1');
  switch (url.pathname) {
    case '/':
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('ok');
      return;
    case '/leak': {
      leak(clampInt(url.searchParams.get('n'), 1, 1_000_000), req.url);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ leaked: leakedRequestContexts.length }));
      return;
    }
    case '/echo': {
      const headers = { 'content-type': req.headers['content-type'] || 'application/octet-stream' };
      res.writeHead(200, headers);
      req.pipe(res);
      return;
    }
    case '/slow': {
      const ms = clampInt(url.searchParams.get('ms'), 1000, 60_000);
      setTimeout(() => {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end(`slow ${ms}`);
      }, ms);
      return;
    }
    case '/headers':
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ method: req.method, url: req.url, headers: req.headers }));
      return;
    case '/heapdump': {
      const snapshot = v8.getHeapSnapshot();
      snapshot.on('error', () => res.destroy());
      if (url.searchParams.get('gzip') === '1') {
        res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip' });
        snapshot.pipe(zlib.createGzip()).pipe(res);
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      snapshot.pipe(res);
      return;
    }
    case '/remember': {
      remembered.push(url.searchParams.get("text") ?? "");
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ remembered: remembered.length }));
      return;
    }
    case '/write-heapsnapshot': {
      const started = process.hrtime.bigint();
      const file = v8.writeHeapSnapshot(path.join(os.tmpdir(), `leaky-app-${process.pid}.heapsnapshot`));
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      const bytes = fs.statSync(file).size;
      fs.unlinkSync(file);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ ms, bytes }));
      return;
    }
    case '/memory':
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(process.memoryUsage()));
      return;
    default:
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('not found');
  }
}

leak(clampInt(process.env.LEAK_AT_START, 100, 10_000_000), 'startup');

const leakPerTick = Math.floor(clampInt(process.env.LEAK_PER_SECOND, 0, 10_000_000) / 10);
if (leakPerTick > 0) {
  setInterval(() => leak(leakPerTick, 'steady'), 100).unref();
}

const server = http.createServer(handle);
const port = clampInt(process.argv[2] ?? process.env.PORT, 0, 65535);
server.listen(port, '127.0.0.1', () => {
  process.stdout.write(`listening ${server.address().port}\n`);
});

process.on('SIGTERM', () => {
  server.close(() => process.exit(0));
  server.closeAllConnections?.();
});
