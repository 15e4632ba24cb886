// A Node app for the sampling profiler's flatness run: allocates fast, keeps a live set of fixed
// size (a sliding window), and every minute replaces the functions that allocate (new stack
// nodes for V8's sampling profiler; the old ones die with their objects). Writes its memory every
// 10 s as JSON lines to MEMLOG.
const fs = require('fs');
const http = require('http');
const memlog = process.env.MEMLOG;
const WINDOW = 200_000; // live objects kept (~40 MiB)
const window = new Array(WINDOW);
let next = 0;
let generation = 0;
function makeAllocators(gen) {
  const fns = [];
  for (let i = 0; i < 20; i++) {
    // A distinct function (and call site) per generation and slot.
    fns.push(new Function('n', `return { gen: ${gen}, slot: ${i}, n, pad: 'p'.repeat(64) + n };`));
  }
  return fns;
}
let allocators = makeAllocators(generation);
setInterval(() => { generation++; allocators = makeAllocators(generation); }, 60_000);
function burst() {
  // ~30k objects per 10 ms tick: a high allocation rate, most of it garbage at once.
  for (let i = 0; i < 3000; i++) {
    const o = allocators[i % allocators.length](i);
    if (i % 10 === 0) { window[next] = o; next = (next + 1) % WINDOW; }
    const garbage = [o.pad + 'x', { a: i }, new Array(8).fill(i)];
    if (garbage.length === 0) console.log('never');
  }
}
setInterval(burst, 10);
if (memlog) {
  const write = () => {
    const m = process.memoryUsage();
    fs.appendFileSync(memlog, JSON.stringify({ t: Date.now(), rss: m.rss, heapUsed: m.heapUsed, heapTotal: m.heapTotal, external: m.external }) + '\n');
  };
  write();
  setInterval(write, 10_000);
}
http.createServer((q, r) => r.end('ok')).listen(+process.env.PORT, '127.0.0.1');
