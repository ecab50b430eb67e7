/**
 * The HTTP client layer's own rules, against small servers in this process: what a ranged reply
 * must look like before its bytes are believed, the body cap, URLs as they may be shown, and the
 * proxy route (absolute-form requests, Dragonfly headers, `use_http`, dfdaemon's own refusals,
 * fallback on and off) and mirror rewriting. Real servers: test/integration/storage-remote*.
 */
import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';

import { kMirrorSchema, kProxySchema } from '../../src/config/schema-common.js';
import type { HttpResponse } from '../../src/storage/http/client.js';
import { HttpClient } from '../../src/storage/http/client.js';
import { Mirror } from '../../src/storage/http/mirrors.js';
import { ProxyRoute } from '../../src/storage/http/proxy.js';
import { checkRangeBody, parseContentRange, rangeHeader } from '../../src/storage/http/range.js';
import { displayUrl, joinPath } from '../../src/storage/http/url.js';
import { nullLogger } from '../../src/util/logger.js';

const res = (status: number, headers: Record<string, string>, body: Buffer): HttpResponse => ({ status, headers, body });

test('URLs are shown without credentials or query strings', () => {
  assert.equal(displayUrl('https://user:pw@host:8443/v2/a/blobs/sha256:x?X-Amz-Signature=abc&e=1'), 'https://host:8443/v2/a/blobs/sha256:x?…');
  assert.equal(displayUrl(new URL('http://h/p')), 'http://h/p');
  assert.equal(displayUrl('not a url'), '<invalid URL>');
  assert.equal(joinPath('/', '/ns/blobs/', 'id'), '/ns/blobs/id');
  assert.equal(joinPath('/base/', '', 'id'), '/base/id');
});

test('a ranged reply is believed only when it is exactly what was asked for', () => {
  const body = Buffer.alloc(10, 7);
  assert.equal(rangeHeader(5, 10), 'bytes=5-14');
  assert.deepEqual(parseContentRange('bytes 5-14/100'), { start: 5, end: 14, total: 100 });
  assert.deepEqual(parseContentRange('bytes 5-14/*'), { start: 5, end: 14, total: undefined });
  for (const bad of ['bytes 14-5/100', 'bytes 5-100/100', 'items 1-2/3', '', undefined]) assert.equal(parseContentRange(bad), undefined, String(bad));
  const ok = res(206, { 'content-range': 'bytes 5-14/100' }, body);
  assert.equal(checkRangeBody('GET u', ok, 'b', 5, 10, 100), body);
  const cases: [HttpResponse, RegExp, boolean][] = [
    [res(206, { 'content-range': 'bytes 6-15/100' }, body), /asked for bytes 5-14, the server sent 6-15/, false],
    [res(206, { 'content-range': 'bytes 5-9/100' }, body.subarray(0, 5)), /the server sent 5-9/, true],
    [res(206, { 'content-range': 'bytes 5-14/100' }, body.subarray(0, 9)), /short body, 9 of 10 bytes/, true],
    [res(206, {}, body), /without a valid Content-Range \(none\)/, true],
    [res(206, { 'content-range': 'bytes 5-14/99' }, body), /now says the blob has 99 bytes, it said 100 before/, false],
    [res(200, {}, Buffer.alloc(100)), /ignored the Range header/, false],
    [res(503, {}, Buffer.alloc(0)), /HTTP 503/, true],
    [res(429, {}, Buffer.alloc(0)), /HTTP 429/, true],
    [res(404, {}, Buffer.alloc(0)), /HTTP 404 \(not found\)/, false],
    [res(403, {}, Buffer.alloc(0)), /HTTP 403 \(access denied\)/, false],
    [res(416, {}, Buffer.alloc(0)), /HTTP 416/, false],
  ];
  for (const [r, re, retryable] of cases) {
    assert.throws(() => checkRangeBody('GET u', r, 'b', 5, 10, 100), (e: Error & { retryable?: boolean }) => re.test(e.message) && e.retryable === retryable, re.source);
  }
  // A whole-blob 200 is fine when the whole blob was asked for.
  assert.equal(checkRangeBody('GET u', res(200, {}, body), 'b', 0, 10, undefined), body);
});

async function server(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<{ url: string; port: number; close: () => Promise<void> }> {
  const srv = createServer(handler);
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as AddressInfo).port;
  return { url: `http://127.0.0.1:${port}`, port, close: () => new Promise((r) => srv.close(() => r())) };
}

test('bodies are capped at what was asked for; error bodies are drained, never returned', async () => {
  const s = await server((req, r) => {
    if (req.url === '/big') r.writeHead(206, { 'Content-Length': '1000' }).end(Buffer.alloc(1000));
    else if (req.url === '/chunked') {
      r.writeHead(206);
      r.write(Buffer.alloc(600));
      r.end(Buffer.alloc(600));
    } else r.writeHead(500, { 'Content-Type': 'text/plain' }).end('internal details that must not travel');
  });
  const c = await HttpClient.create({ timeoutMs: 2000, connectTimeoutMs: 2000 });
  try {
    await assert.rejects(c.request({ method: 'GET', url: new URL(`${s.url}/big`), headers: {}, maxBody: 100 }), /1000-byte body, more than the 100 bytes/);
    await assert.rejects(c.request({ method: 'GET', url: new URL(`${s.url}/chunked`), headers: {}, maxBody: 1000 }), /sent more than the 1000 bytes/);
    const e = await c.request({ method: 'GET', url: new URL(`${s.url}/err`), headers: {}, maxBody: 4 });
    assert.equal(e.status, 500);
    assert.equal(e.body.length, 0);
  } finally {
    await c.close();
    await s.close();
  }
});

test('proxy route: absolute-form requests with Dragonfly headers, use_http, dfdaemon refusals, fallback on and off', async () => {
  const seen: { url: string; headers: IncomingMessage['headers'] }[] = [];
  let mode: 'ok' | '503' | 'df429' = 'ok';
  const proxy = await server((req, r) => {
    seen.push({ url: req.url ?? '', headers: req.headers });
    if (mode === '503') r.writeHead(503, { 'Content-Length': '0' }).end();
    else if (mode === 'df429') r.writeHead(429, { 'X-Dragonfly-Error-Type': 'proxy', 'Content-Length': '0' }).end();
    else r.writeHead(200, { 'Content-Length': '2' }).end('ok');
  });
  const client = await HttpClient.create({ timeoutMs: 2000, connectTimeoutMs: 2000 });
  const route = (extra: Record<string, unknown>): ProxyRoute => new ProxyRoute(kProxySchema.parse({ url: proxy.url, ...extra }), client, nullLogger(), 1000, 'backend.registry');
  try {
    const r1 = route({ use_http: true });
    const out = await r1.send({ method: 'GET', url: new URL('https://registry.test:5000/v2/a/b/blobs/sha256:x?q=1'), headers: { range: 'bytes=0-1' }, maxBody: 10 }, 'ondemand');
    assert.equal(out.kind, 'response');
    const got = seen.at(-1);
    assert.equal(got?.url, 'http://registry.test:5000/v2/a/b/blobs/sha256:x?q=1', 'use_http: the https origin is asked over http, absolute-form');
    assert.equal(got?.headers.host, 'registry.test:5000');
    assert.equal(got?.headers['x-dragonfly-priority'], '6');
    assert.equal(got?.headers['x-dragonfly-use-p2p'], 'true');
    assert.equal(got?.headers['x-dragonfly-prefetch'], undefined);
    await r1.send({ method: 'GET', url: new URL('http://o/p'), headers: {}, maxBody: 10 }, 'prefetch');
    assert.equal(seen.at(-1)?.headers['x-dragonfly-priority'], '3');
    assert.equal(seen.at(-1)?.headers['x-dragonfly-prefetch'], 'true');
    mode = '503';
    assert.equal((await r1.send({ method: 'GET', url: new URL('http://o/p'), headers: {}, maxBody: 10 }, 'ondemand')).kind, 'fallback');
    mode = 'df429';
    assert.equal((await r1.send({ method: 'GET', url: new URL('http://o/p'), headers: {}, maxBody: 10 }, 'ondemand')).kind, 'fallback');
    const strict = route({ fallback: false });
    const refused = await strict.send({ method: 'GET', url: new URL('http://o/p'), headers: {}, maxBody: 10 }, 'ondemand');
    assert.deepEqual(refused, { kind: 'refused', why: 'the proxy refused the request (HTTP 429) and fallback is disabled', retryable: true });
    mode = '503';
    const passed = await strict.send({ method: 'GET', url: new URL('http://o/p'), headers: {}, maxBody: 10 }, 'ondemand');
    assert.ok(passed.kind === 'response' && passed.res.status === 503, 'without fallback a 5xx is the answer');
    // A ping URL that fails makes the proxy unhealthy.
    const pinged = route({ ping_url: `${proxy.url}/ping`, check_interval: 0 });
    mode = '503';
    await pinged.check();
    assert.equal(pinged.healthy, false);
    assert.equal((await pinged.send({ method: 'GET', url: new URL('http://o/p'), headers: {}, maxBody: 10 }, 'ondemand')).kind, 'fallback');
    mode = 'ok';
    await pinged.check();
    assert.equal(pinged.healthy, true);
    pinged.close();
    r1.close();
    strict.close();
  } finally {
    await client.close();
    await proxy.close();
  }
});

test('a mirror rewrites scheme, host and port and keeps path and query', () => {
  const m = new Mirror(kMirrorSchema.parse({ host: 'https://mirror.test:7000', health_check_interval: 0 }), undefined as never, nullLogger(), 1000, 'm');
  assert.equal(m.rewrite(new URL('http://reg:5000/v2/a/blobs/sha256:x?y=1')).href, 'https://mirror.test:7000/v2/a/blobs/sha256:x?y=1');
  m.health.stop();
});

test('an abort settles a request at once, even one still queued for a connection', async () => {
  const held: ServerResponse[] = [];
  const s = await server((_req, r) => held.push(r));
  const c = await HttpClient.create({ timeoutMs: 10_000, connectTimeoutMs: 2000, connectionsPerOrigin: 1 });
  try {
    const first = c.request({ method: 'GET', url: new URL(`${s.url}/a`), headers: {}, maxBody: 10 });
    const ac = new AbortController();
    const queued = c.request({ method: 'GET', url: new URL(`${s.url}/b`), headers: {}, maxBody: 10, signal: ac.signal });
    const t0 = Date.now();
    ac.abort(new Error('stop now'));
    await assert.rejects(queued, /stop now/);
    assert.ok(Date.now() - t0 < 1000);
    for (;;) {
      if (held.length > 0) break;
      await new Promise((r) => setTimeout(r, 10));
    }
    held[0]?.writeHead(200, { 'Content-Length': '2' }).end('ok');
    assert.equal((await first).body.toString(), 'ok');
  } finally {
    for (const r of held) r.destroy();
    await c.close();
    await s.close();
  }
});
