// Wrote leak.heapprofile (as /tmp/i20c-mk.js, with Node 20.20): node make-leak.js OUT
const inspector = require('inspector');
const fs = require('fs');
const s = new inspector.Session(); s.connect();
const post = (m, p) => new Promise((res, rej) => s.post(m, p || {}, (e, r) => e ? rej(e) : res(r)));
const kept = [];
function leak(n) { for (let i = 0; i < n; i++) kept.push({ id: i, name: 'x' + i, payload: new Array(8).fill(i) }); }
function burst(n) { let t = []; for (let i = 0; i < n; i++) t.push({ i, s: 'y' + i }); return t.length; }
(async () => {
  await post('HeapProfiler.enable');
  await post('HeapProfiler.startSampling', { samplingInterval: 32768 });
  leak(20000); burst(20000);
  const { profile } = await post('HeapProfiler.getSamplingProfile');
  fs.writeFileSync(process.argv[2], JSON.stringify(profile));
  await post('HeapProfiler.stopSampling');
})();
