// Seven real Node router setups, each with an UNGUARDED `GET /heapdump` route, for the heapgate-tests
// `routers` differential test (tests/tests/routers.rs).
//
// Every app answers `APP-HEAPDUMP <name>` on its own `/heapdump` route (and counts the hit) and
// `APP-OTHER <name>` on anything else, with a header `x-app-route: heapdump|other`. Every router
// here runs its GET handler for HEAD too. A control server answers `GET /hits` with the counts and the
// last request targets each `/heapdump` route saw. Once all are listening, one JSON line goes to
// stdout: `{"express4":port,…,"control":port}`.
//
// The routers are configured as permissively as their real options allow, so that they resolve as
// many spellings of `/heapdump` as an app in production might:
// - Express 4 and 5, Koa + @koa/router: defaults (case-insensitive, optional trailing slash).
// - Fastify 5: routerOptions ignoreTrailingSlash, caseSensitive: false, ignoreDuplicateSlashes,
//   useSemicolonDelimiter.
// - Hono 4 on @hono/node-server: defaults ("hono"), and `strict: false` ("hono_lax": trailing
//   slash optional, so `/x/../heapdump/` or `/heapdump/x/..` resolve too).
// - "whatwg": plain `http`, routing on `new URL(req.url, base).pathname === '/heapdump'`.
// - "express_mount": Express 4 with `app.use('/heapdump', handler)` (a prefix mount).
// - "host_url": plain `http`, routing on `new URL(`http://${host}${req.url}`).pathname`.
// - "decode_whatwg": plain `http`, decoding the whole target first:
//   `new URL(decodeURIComponent(req.url), base).pathname` (a decoded `?` or `#` ends the path,
//   decoded spaces and controls are trimmed or dropped).
// - "decodeuri_whatwg": the same with `decodeURI` (which keeps `%3f`, `%23`, `%2f` escaped).
// - "decodeuri_urlparse": `url.parse(decodeURI(req.url)).pathname`, the legacy parser.
'use strict';

const http = require('node:http');

const hits = {};
const seen = {};
const SEEN_CAP = 50;

// The `x-app-route` header tells the test which route answered a HEAD request (no body).
function heapdump(name, url, res) {
  res.setHeader('x-app-route', 'heapdump');
  hits[name] += 1;
  if (seen[name].length < SEEN_CAP) seen[name].push(url);
  return `APP-HEAPDUMP ${name}`;
}

function other(name, res) {
  res.setHeader('x-app-route', 'other');
  return `APP-OTHER ${name}`;
}

function register(name) {
  hits[name] = 0;
  seen[name] = [];
}

function listen(server) {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve(server.address().port));
  });
}

function expressApp(express, name) {
  register(name);
  const app = express();
  app.get('/heapdump', (req, res) => res.type('text').send(heapdump(name, req.originalUrl, res)));
  app.use((req, res) => res.type('text').send(other(name, res)));
  return listen(http.createServer(app));
}

async function fastifyApp() {
  const name = 'fastify';
  register(name);
  const app = require('fastify')({
    routerOptions: {
      ignoreTrailingSlash: true,
      caseSensitive: false,
      ignoreDuplicateSlashes: true,
      useSemicolonDelimiter: true,
    },
  });
  app.get('/heapdump', async (req, reply) => {
    reply.type('text/plain');
    return heapdump(name, req.raw.url, reply.raw);
  });
  app.setNotFoundHandler(async (req, reply) => {
    reply.type('text/plain');
    return other(name, reply.raw);
  });
  await app.listen({ port: 0, host: '127.0.0.1' });
  return app.server.address().port;
}

function koaApp() {
  const name = 'koa';
  register(name);
  const Koa = require('koa');
  const { Router } = require('@koa/router');
  const app = new Koa();
  const router = new Router();
  router.get('/heapdump', (ctx) => {
    ctx.body = heapdump(name, ctx.req.url, ctx.res);
  });
  app.use(router.routes());
  app.use((ctx) => {
    ctx.body = other(name, ctx.res);
  });
  return listen(http.createServer(app.callback()));
}

function honoApp(name, options) {
  register(name);
  const { Hono } = require('hono');
  const { serve } = require('@hono/node-server');
  const app = new Hono(options);
  app.get('/heapdump', (c) => c.text(heapdump(name, c.env.incoming.url, c.env.outgoing)));
  app.all('*', (c) => c.text(other(name, c.env.outgoing)));
  return new Promise((resolve) => {
    const server = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, (info) =>
      resolve(info.port),
    );
    server.on('error', (e) => {
      throw e;
    });
  });
}

function whatwgApp() {
  const name = 'whatwg';
  register(name);
  return listen(
    http.createServer((req, res) => {
      let pathname = null;
      try {
        pathname = new URL(req.url, 'http://x').pathname;
      } catch {
        // An unparsable target is just not the snapshot route.
      }
      res.setHeader('content-type', 'text/plain');
      res.end(pathname === '/heapdump' ? heapdump(name, req.url, res) : other(name, res));
    }),
  );
}

function controlServer() {
  return listen(
    http.createServer((req, res) => {
      res.setHeader('content-type', 'application/json');
      if (req.method === 'GET' && req.url === '/hits') {
        res.end(JSON.stringify({ hits, seen }));
      } else {
        res.statusCode = 404;
        res.end('{}');
      }
    }),
  );
}

// Express with the snapshot handler mounted as a prefix: `/heapdump/anything` reaches it.
function expressMountApp(express) {
  const name = 'express_mount';
  register(name);
  const app = express();
  app.use('/heapdump', (req, res) => res.type('text').send(heapdump(name, req.originalUrl, res)));
  app.use((req, res) => res.type('text').send(other(name, res)));
  return listen(http.createServer(app));
}

// Routes on the URL built from the Host header and the target, as some apps do.
function hostUrlApp() {
  const name = 'host_url';
  register(name);
  return listen(
    http.createServer((req, res) => {
      let pathname = null;
      try {
        pathname = new URL(`http://${req.headers.host}${req.url}`).pathname;
      } catch {
        // An unparsable URL is just not the snapshot route.
      }
      res.setHeader('content-type', 'text/plain');
      res.end(pathname === '/heapdump' ? heapdump(name, req.url, res) : other(name, res));
    }),
  );
}

// Routes on a target decoded as a whole before it is parsed (`decode` throws on bad escapes:
// then it is just not the snapshot route).
function decodeFirstApp(name, pathnameOf) {
  register(name);
  return listen(
    http.createServer((req, res) => {
      let pathname = null;
      try {
        pathname = pathnameOf(req.url);
      } catch {
        // Not decodable or not parsable: not the snapshot route.
      }
      res.setHeader('content-type', 'text/plain');
      res.end(pathname === '/heapdump' ? heapdump(name, req.url, res) : other(name, res));
    }),
  );
}

async function main() {
  const ports = {
    express4: await expressApp(require('express'), 'express4'),
    express5: await expressApp(require('express5'), 'express5'),
    fastify: await fastifyApp(),
    koa: await koaApp(),
    hono: await honoApp('hono', {}),
    hono_lax: await honoApp('hono_lax', { strict: false }),
    whatwg: await whatwgApp(),
    express_mount: await expressMountApp(require('express')),
    host_url: await hostUrlApp(),
    decode_whatwg: await decodeFirstApp(
      'decode_whatwg',
      (target) => new URL(decodeURIComponent(target), 'http://x').pathname,
    ),
    decodeuri_whatwg: await decodeFirstApp(
      'decodeuri_whatwg',
      (target) => new URL(decodeURI(target), 'http://x').pathname,
    ),
    decodeuri_urlparse: await decodeFirstApp(
      'decodeuri_urlparse',
      // eslint-disable-next-line n/no-deprecated-api
      (target) => require('node:url').parse(decodeURI(target)).pathname,
    ),
    control: await controlServer(),
  };
  process.stdout.write(`${JSON.stringify(ports)}\n`);
}

main().catch((e) => {
  console.error(`apps.js: ${e && e.stack ? e.stack : e}`);
  process.exit(1);
});
