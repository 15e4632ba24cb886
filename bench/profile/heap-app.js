// An app holding a heap of a chosen shape for the headroom rule's accuracy (issue #20):
// KIND=objects (~1 M small objects, ~186 MiB of heap, as in NOTES.md) or KIND=strings (4 KiB
// strings, ~192 MiB). Prints "ready" once built; GET / answers its memory.
const http = require('http');
const kind = process.env.KIND || 'objects';
const held = [];
if (kind === 'objects') {
  for (let i = 0; i < 1_000_000; i++) held.push({ id: i, name: 'obj-' + i, next: null, tags: [i & 7, i & 15], at: i * 3 });
} else {
  // Flat one-byte strings of 4 KiB each (a concatenation or repeat() would stay a small cons string).
  for (let i = 0; i < 48_000; i++) {
    const bytes = Buffer.alloc(4096, 's');
    bytes.write(String(i).padStart(8, '0'));
    held.push(bytes.toString('latin1'));
  }
}
globalThis.held = held;
http.createServer((q, r) => r.end(JSON.stringify(process.memoryUsage()))).listen(+process.env.PORT, '127.0.0.1', () => {
  const m = process.memoryUsage();
  process.stdout.write(`ready heap ${(m.heapUsed / 1048576).toFixed(0)} MiB rss ${(m.rss / 1048576).toFixed(0)} MiB\n`);
});
