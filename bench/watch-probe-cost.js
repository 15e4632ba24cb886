// Main-thread cost of the leak watch's heap probe (Runtime.getHeapUsage + Runtime.evaluate of
// process.memoryUsage.rss()), measured over an in-process inspector session: `node bench/watch-probe-cost.js`.
const inspector = require('inspector');
const s = new inspector.Session(); s.connect();
const post = (m, p) => new Promise((res, rej) => s.post(m, p || {}, (e, r) => e ? rej(e) : res(r)));
// a heap of some size so getHeapUsage is realistic
const keep = []; for (let i = 0; i < 500000; i++) keep.push({ i, s: 'x' + i });
(async () => {
  for (const [name, fn] of [
    ['getHeapUsage', () => post('Runtime.getHeapUsage')],
    ['evaluate rss', () => post('Runtime.evaluate', { expression: 'process.memoryUsage.rss()', returnByValue: true, silent: true })],
  ]) {
    for (let i = 0; i < 200; i++) await fn();
    const n = 5000; const cpu0 = process.cpuUsage(); const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) await fn();
    const wall = Number(process.hrtime.bigint() - t0) / 1e3 / n; const cpu = process.cpuUsage(cpu0);
    console.log(name, 'wall µs/call', wall.toFixed(1), 'cpu µs/call', ((cpu.user + cpu.system) / n).toFixed(1));
  }
  console.log('heapUsed MiB', (process.memoryUsage().heapUsed / 1048576).toFixed(0));
})();
