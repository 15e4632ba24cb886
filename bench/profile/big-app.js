// The profile fetch's cost to the app's event loop on a big heap (issue #20). GET /grow?mib=N
// allocates about N MiB of small live objects (after the sidecar's sampling started, so the
// profile holds them); GET /lag answers the longest event-loop delay (ms) since the last
// GET /lag?reset, from perf_hooks.monitorEventLoopDelay (1 ms resolution).
const http = require('http');
const { monitorEventLoopDelay } = require('perf_hooks');
const lag = monitorEventLoopDelay({ resolution: 1 });
lag.enable();
const held = [];
function grow(mib) {
  // ~190 bytes per object as built here.
  const n = Math.floor((mib * 1048576) / 190);
  for (let i = 0; i < n; i++) held.push({ id: i, name: 'obj-' + i, next: null, tags: [i & 7, i & 15], at: i * 3 });
}
http.createServer((req, res) => {
  const url = new URL(req.url, 'http://x');
  if (url.pathname === '/grow') {
    grow(+url.searchParams.get('mib') || 1024);
    const m = process.memoryUsage();
    return res.end(JSON.stringify({ heapUsed: m.heapUsed, rss: m.rss }));
  }
  if (url.pathname === '/lag') {
    const out = { max_ms: lag.max / 1e6, p99_ms: lag.percentile(99) / 1e6 };
    if (url.searchParams.has('reset')) lag.reset();
    return res.end(JSON.stringify(out));
  }
  res.end('ok');
}).listen(+process.env.PORT, '127.0.0.1', () => process.stdout.write('listening\n'));
