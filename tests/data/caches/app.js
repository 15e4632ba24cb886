"use strict";
// A real Koa app whose pricing helper leaks `Quote` objects into one of several real caches from
// npm (the corpus of crates/cli/tests/corpus.rs and bench/memlab). One request, one leaked Quote.
//   node app.js serve KIND            listens on 127.0.0.1:0, prints `listening PORT`
//   node app.js corpus KIND DIR N     also drives itself over HTTP: snapshot a, N leaking
//                                     requests, snapshot b, 200 plain requests, snapshot c
// Snapshots in corpus mode are written from a request callback (as a sidecar takes them), never
// from the module's top level, whose locals only a stack root would hold.
class Quote { constructor(sku, region, at) { this.sku = sku; this.region = region; this.at = at; this.amount = at % 97; } }

const v8 = require("v8");
const http = require("http");
const { EventEmitter } = require("events");
const Koa = require("koa");
const Router = require("@koa/router");

const [mode, kind, dir, n] = process.argv.slice(2);
const app = new Koa();
const router = new Router();

// Each kind: a factory (so that only its package is loaded) of the function that leaks one
// Quote for request i; the variable that holds the cache is the one the corpus test expects as
// the holder (CORPUS in crates/cli/tests/corpus.rs).
const kinds = {
  "lodash-string": () => {
    const _ = require("lodash");
    const priceFor = _.memoize((sku, region, at) => new Quote(sku, region, at), (sku, region, at) => `${sku}|${region}|${at}`);
    return (i) => priceFor("sku" + (i % 10), "eu", Date.now() + i / 7);
  },
  // Object keys: lodash keeps them in a Map.
  "lodash-object": () => {
    const _ = require("lodash");
    const quoteFor = _.memoize((request) => new Quote(request.sku, "us", request.at));
    return (i) => quoteFor({ sku: "sku" + i, at: i });
  },
  "memoizee": () => {
    const memoize = require("memoizee");
    const memoPrice = memoize((sku, at) => new Quote(sku, "eu", at), { primitive: true });
    return (i) => memoPrice("sku" + (i % 10), i);
  },
  "lru-cache": () => {
    const { LRUCache } = require("lru-cache");
    const recentQuotes = new LRUCache({ max: 100000 });
    return (i) => recentQuotes.set("q" + i, new Quote("sku", "eu", i));
  },
  // quick-lru is ESM-only: its module is imported before the server starts.
  "quick-lru": (QuickLRU) => {
    const quickQuotes = new QuickLRU({ maxSize: 100000 });
    return (i) => quickQuotes.set("q" + i, new Quote("sku", "eu", i));
  },
  "node-cache": () => {
    const NodeCache = require("node-cache");
    const quoteCache = new NodeCache({ useClones: false, checkperiod: 0 });
    return (i) => quoteCache.set("q" + i, new Quote("sku", "eu", i));
  },
  "dictionary": () => {
    const visitsById = {};
    return (i) => { visitsById["visit-" + i] = new Quote("sku", "eu", i); };
  },
  "null-prototype": () => {
    const quotesByKey = Object.create(null);
    return (i) => { quotesByKey["k" + i] = new Quote("sku", "eu", i); };
  },
  "map": () => {
    const sessionQuotes = new Map();
    return (i) => sessionQuotes.set("session-" + i, new Quote("sku", "eu", i));
  },
  "set": () => {
    const seenQuotes = new Set();
    return (i) => seenQuotes.add(new Quote("sku", "eu", i));
  },
  // Each request adds a listener closure over its Quote.
  "listener": () => {
    const bus = new EventEmitter();
    bus.setMaxListeners(0);
    return (i) => { const quote = new Quote("sku", "eu", i); bus.on("price", function onPrice() { return quote.amount; }); };
  },
  // A closure over an array.
  "closure-array": () => {
    function makeTracker() { const history = []; return function track(quote) { history.push(quote); }; }
    const track = makeTracker();
    return (i) => track(new Quote("sku", "eu", i));
  },
  // The WeakMap only maps each session to its Quote; the array holds the sessions.
  "weakmap": () => {
    const quoteOfSession = new WeakMap();
    const openSessions = [];
    return (i) => { const session = { id: i }; openSessions.push(session); quoteOfSession.set(session, new Quote("sku", "eu", i)); };
  },
};

if (!kinds[kind]) { console.error(`unknown kind ${kind}; one of ${Object.keys(kinds).join(", ")}`); process.exit(2); }
let leak;
let served = 0;
router.get("/quote/:i", (ctx) => { leak(+ctx.params.i); served++; ctx.body = "ok"; });
router.get("/ping", (ctx) => { ctx.body = { served }; });
router.get("/snap/:name", (ctx) => { v8.writeHeapSnapshot(`${dir}/${ctx.params.name}.heapsnapshot`); ctx.body = "ok"; });
app.use(router.routes());

async function main() {
  leak = kinds[kind](kind === "quick-lru" ? (await import("quick-lru")).default : undefined);
  const server = http.createServer(app.callback());
  server.keepAliveTimeout = 60000;
  await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
  const port = server.address().port;
  console.log(`listening ${port}`);
  if (mode !== "corpus") return;
  const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
  const get = (path) => new Promise((ok, fail) => {
    http.get({ host: "127.0.0.1", port, path, agent }, (res) => { res.resume(); res.on("end", ok); }).on("error", fail);
  });
  const many = async (count, path) => {
    for (let i = 0; i < count; i += 8) await Promise.all(Array.from({ length: Math.min(8, count - i) }, (_, j) => get(path(i + j))));
  };
  await many(50, (i) => `/ping?warm=${i}`);
  await get("/snap/a");
  await many(+n, (i) => `/quote/${i}`);
  await get("/snap/b");
  await many(200, (i) => `/ping?i=${i}`);
  await get("/snap/c");
  agent.destroy();
  server.close();
  process.exit(0);
}
main().catch((e) => { console.error(e); process.exit(1); });
