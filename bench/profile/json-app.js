// A JSON HTTP app for the sampling profiler's cost: each request builds and serialises a small
// document (allocation on every request, as real services do).
const http = require('http');
let served = 0;
http.createServer((req, res) => {
  served++;
  const items = [];
  for (let i = 0; i < 20; i++) items.push({ id: served * 20 + i, name: 'item-' + i, tags: ['a', 'b', String(i)], price: i * 1.5 });
  const body = JSON.stringify({ served, items, at: Date.now() });
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(body);
}).listen(+process.env.PORT, '127.0.0.1', () => process.stdout.write('listening\n'));
