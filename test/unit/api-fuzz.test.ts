/**
 * API fuzz: 10,000 random requests (methods, known and mangled paths, percent-encoded and
 * broken queries, absent/garbage/JSON bodies with the fields handlers look at) plus raw
 * malformed HTTP, against an in-process daemon with an image mounted. Every answer must be one
 * of upstream's statuses with a `{"code","message"}` body for errors, and afterwards the daemon
 * must still be RUNNING, answer, mount and unmount. Seeded: a failure names its seed and request.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';

import { startApiServer } from '../../src/daemon/api/index.js';
import { Daemon } from '../../src/daemon/index.js';
import { nullLogger } from '../../src/util/logger.js';
import { api, keepAliveAgent, makeImage, mountBody, rafsConfigText } from '../helpers/api.js';
import { testDaemonOptions } from '../helpers/daemon-options.js';

const work = mkdtempSync(join(tmpdir(), 'nydus-api-fuzz-'));
after(() => rmSync(work, { recursive: true, force: true }));

const kSeed = Number(process.env['NYDUS_API_FUZZ_SEED'] ?? 20260723);
const kRequests = 10_000;

function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 0x100000000;
  };
}

const kPaths = [
  '/api/v1/daemon', '/api/v2/daemon', '/api/v1/daemon/events', '/api/v1/daemon/backend', '/api/v1/daemon/start',
  '/api/v1/daemon/fuse/sendfd', '/api/v1/daemon/fuse/takeover', '/api/v1/mount', '/api/v1/metrics', '/api/v1/metrics/files',
  '/api/v1/metrics/pattern', '/api/v1/metrics/backend', '/api/v1/metrics/blobcache', '/api/v1/metrics/inflight',
  '/api/v1/config', '/api/v2/blobs', '/metrics', '/', '/api', '/api/v1', '/api/v3/daemon',
];
const kMethods = ['GET', 'PUT', 'POST', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD'];
const kKeys = ['mountpoint', 'id', 'latest', 'domain_id', 'blob_id', 'x'];
const kFields = ['source', 'config', 'fs_type', 'prefetch_files', 'log_level', 'registry_auth', 'proxy_url', 'type', 'id', 'domain_id', 'config_v2'];

test(`API fuzz: ${kRequests} random requests leave the daemon serving (seed ${kSeed})`, { timeout: 240_000 }, async (t) => {
  const img = await makeImage(join(work, 'img'), { 'f.txt': 'fuzz\n' });
  const cfg = rafsConfigText(img.blobDir, join(work, 'cache'));
  const dir = join(work, 'd');
  mkdirSync(dir);
  const sock = join(dir, 'api.sock');
  const d = new Daemon(
    testDaemonOptions({ mode: 'virtiofs', socketPath: join(dir, 'vhost.sock'), apiSock: sock, log: { level: 'error', format: 'text', file: undefined, rotationSizeMb: 0 } }),
    { log: nullLogger(), applyRlimit: () => undefined, api: startApiServer },
  );
  await d.start();
  const r = rng(kSeed);
  const pick = <T>(a: readonly T[]): T => a[Math.floor(r() * a.length)] as T;
  const str = (max: number): string => {
    const alphabet = 'abc/%2F.._-~+ \u00e9\u4e2d"\\{}[]:,0123456789\u0000\n';
    let s = '';
    for (let i = Math.floor(r() * max); i > 0; i--) s += pick([...alphabet]);
    return s;
  };
  const value = (): unknown =>
    pick([
      () => str(20), () => Math.floor(r() * 1e6), () => null, () => true, () => [str(5), str(5)], () => ({ a: str(3) }),
      () => img.bootstrap, () => cfg, () => '/mnt/' + str(8), () => 'rafs', () => 'passthrough_fs', () => 'debug', () => 'off',
      () => Buffer.from('u:p').toString('base64'), () => 'x'.repeat(Math.floor(r() * 70_000)),
    ])();
  const statuses = new Map<number, number>();
  try {
    await assert.doesNotReject(api(sock, 'POST', '/api/v1/mount?mountpoint=/base', { body: mountBody(img.bootstrap, cfg) }));
    const agents = Array.from({ length: 8 }, () => keepAliveAgent());
    let done = 0;
    const one = async (agent: ReturnType<typeof keepAliveAgent>): Promise<void> => {
      for (;;) {
        const i = done++;
        if (i >= kRequests) return;
        let path = pick(kPaths);
        if (r() < 0.15) path += pick(['/', 'x', '%00', '/..', '//', '?', '#frag', str(6)]);
        if (r() < 0.6) {
          const q: string[] = [];
          for (let k = Math.floor(r() * 3); k >= 0; k--) q.push(`${pick(kKeys)}=${pick([encodeURIComponent(str(10)), str(6).replace(/[#\s]/g, ''), '%ZZ', '%2Fbase', '/base', ''])}`);
          path += `${path.includes('?') ? '&' : '?'}${q.join('&')}`;
        }
        // Well-formed request targets (raw garbage is sent separately below).
        path = path.replace(/[^\x21-\x7e]/g, (c) => encodeURIComponent(c));
        const method = pick(kMethods);
        let body: string | Buffer | undefined;
        const b = r();
        if (b < 0.3) body = undefined;
        else if (b < 0.4) body = Buffer.from(Array.from({ length: Math.floor(r() * 200) }, () => Math.floor(r() * 256)));
        else if (b < 0.45) body = JSON.stringify([value()]);
        else {
          const o: Record<string, unknown> = {};
          for (let k = Math.floor(r() * 4); k >= 0; k--) o[pick(kFields)] = value();
          body = JSON.stringify(o);
        }
        if (method === 'HEAD' || method === 'GET') body = r() < 0.8 ? undefined : body;
        const what = `#${i} ${method} ${path} body ${body === undefined ? 'none' : String(body.length)}`;
        let res;
        try {
          res = await api(sock, method, path, { agent, ...(body === undefined ? {} : { body }) });
        } catch (err) {
          throw new Error(`${what}: ${(err as Error).message}`, { cause: err });
        }
        statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
        assert.ok([200, 204, 400, 404, 500, 501].includes(res.status), `${what}: status ${res.status}`);
        if (res.status >= 400 && method !== 'HEAD') {
          const e = res.json() as { code?: unknown; message?: unknown };
          assert.equal(e.code, 'UNDEFINED', what);
          assert.equal(typeof e.message, 'string', what);
        }
        if (res.status === 200 && method !== 'HEAD' && !path.startsWith('/metrics')) assert.doesNotThrow(() => res.json(), what);
      }
    };
    await Promise.all(agents.map(one));
    for (const a of agents) a.destroy();
    // Raw garbage on the wire: answered 400 or closed, never a crash.
    for (let i = 0; i < 200; i++) {
      const raw = pick(['GARBAGE\r\n\r\n', 'GET /api/v1/daemon HTTP/9.9\r\n\r\n', `GET ${str(30)} HTTP/1.1\r\n\r\n`, 'POST /api/v1/mount HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n{', str(100)]);
      await new Promise<void>((resolve) => {
        const s = connect(sock);
        s.on('error', () => resolve());
        s.on('close', () => resolve());
        s.on('connect', () => s.end(raw));
        s.resume();
        setTimeout(() => s.destroy(), 200);
      });
    }
    t.diagnostic(`statuses: ${JSON.stringify(Object.fromEntries([...statuses].sort()))}`);
    const info = await api(sock, 'GET', '/api/v1/daemon');
    assert.equal(info.status, 200);
    assert.equal((info.json() as { state: string }).state, 'RUNNING');
    assert.equal((await api(sock, 'GET', '/api/v1/metrics?id=/base')).status, 200);
    assert.equal((await api(sock, 'POST', '/api/v1/mount?mountpoint=/after', { body: mountBody(img.bootstrap, cfg) })).status, 204);
    assert.equal((await api(sock, 'DELETE', '/api/v1/mount?mountpoint=/after')).status, 204);
    assert.ok((statuses.get(204) ?? 0) + (statuses.get(200) ?? 0) > 100, 'the fuzzer reached handlers, not only errors');
  } finally {
    await d.stop('test');
  }
});
