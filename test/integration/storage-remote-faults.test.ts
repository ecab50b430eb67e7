/**
 * Bad backends and failing routes, against a real docker-registry behind our fault-injecting
 * proxy (test/helpers/fault-proxy.ts) and nginx as the P2P proxy and as a mirror:
 * - 5xx, resets, stalls, truncated bodies, wrong Content-Length, short ranges: retried (with
 *   backoff) and then served; when they persist, EIO for that read only, logged once with blob
 *   and range, no chunk-map bit set for a chunk that did not arrive whole, and the next read
 *   after the server recovers succeeds;
 * - a registry that lies about a blob's size is caught, not believed;
 * - the proxy dying mid-run: requests fall back to the origin (or fail with fallback off);
 * - a mirror dying mid-run: skipped after `failure_limit` failures, back after its health check;
 * - no credential or mirror header value in any log line or error.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import type { ResolvedBackend } from '../../src/config/index.js';
import { redactConfig } from '../../src/config/index.js';
import { kRegistrySchema } from '../../src/config/schema-common.js';
import type { CachedBlob, StorageSettings } from '../../src/storage/index.js';
import { createBackend, StorageService } from '../../src/storage/index.js';
import { createLogger } from '../../src/util/logger.js';
import type { FaultKind } from '../helpers/fault-proxy.js';
import { FaultProxy } from '../helpers/fault-proxy.js';
import type { Nginx, Registry } from '../helpers/remote-servers.js';
import { freePort, pushBlob, remoteSkip, sleep, startNginx, startRegistry } from '../helpers/remote-servers.js';
import type { SyntheticBlob } from '../helpers/storage-fixtures.js';
import { buildBlob } from '../helpers/storage-fixtures.js';

const kSkip = remoteSkip();
const kRepo = 'nydus/faults';
const kAuth = Buffer.from('faulty:registry-password-9').toString('base64');
const kMirrorSecret = 'mirror-header-secret-7';

function capture(): { log: ReturnType<typeof createLogger>; lines: string[] } {
  const lines: string[] = [];
  return { log: createLogger({ level: 'debug', stream: { write: (s: string) => lines.push(s) > 0 } }), lines };
}

describe('bad backends, proxy and mirror failures', { skip: kSkip, timeout: 240_000 }, () => {
  const work = mkdtempSync(join(tmpdir(), 'nydusd-faults-'));
  let reg: Registry;
  let fp: FaultProxy;
  const sb: SyntheticBlob = buildBlob({ sizes: Array.from({ length: 16 }, (_, i) => 30000 + i * 1000), compressor: 'zstd' });
  sb.info.blobId = createHash('sha256').update(sb.blob).digest('hex');
  const id = sb.info.blobId;
  const cleanup: (() => Promise<void>)[] = [];
  let n = 0;

  before(async () => {
    reg = await startRegistry(join(work, 'registry'), join(work, 'store'), { kind: 'none' });
    cleanup.push(reg.stop);
    await pushBlob(reg.url, kRepo, id, sb.blob);
    fp = await new FaultProxy(reg.port).start();
    cleanup.push(() => fp.close());
  });
  after(async () => {
    for (const c of cleanup.reverse()) await c();
    rmSync(work, { recursive: true, force: true });
  });

  const backend = (extra: Record<string, unknown> = {}): ResolvedBackend => ({
    type: 'registry',
    config: kRegistrySchema.parse({ scheme: 'http', host: fp.origin, repo: kRepo, auth: kAuth, timeout: 1, connect_timeout: 1, ...extra }),
  });
  const settings = (b: ResolvedBackend, cached: boolean): StorageSettings => {
    const workDir = join(work, `cache-${n++}`);
    if (cached) mkdirSync(workDir);
    return {
      backend: b,
      backendKey: 'backend.registry',
      cache: cached ? { kind: 'blobcache', workDir, workDirKey: 'cache.filecache.work_dir' } : { kind: 'dummycache' },
      validate: true,
      batchSize: 0,
    };
  };

  const transient: [FaultKind, number][] = [['status', 2], ['reset', 2], ['truncate', 2], ['bad-length', 2], ['short-range', 2], ['stall', 1]];
  test('each fault, when it passes, is retried and the read is served', async () => {
    const cap = capture();
    const be = await createBackend(settings(backend(), false), cap.log);
    try {
      for (const [kind, times] of transient) {
        fp.clear();
        fp.inject({ kind, times, match: /^GET .*\/blobs\// });
        const before = be.stats().retries;
        const off = 1000 * times;
        assert.ok((await be.read(id, off, 50_000)).equals(sb.blob.subarray(off, off + 50_000)), kind);
        assert.equal(be.stats().retries - before, times, `${kind}: retries`);
      }
    } finally {
      await be.close();
    }
    assert.doesNotMatch(cap.lines.join(''), / ERROR /, 'a fault that passes is no error');
  });

  test('a fault that persists: EIO for that read, logged once with blob and range, nothing cached; served after recovery', async () => {
    for (const kind of ['status', 'reset', 'truncate', 'bad-length', 'short-range', 'stall'] as const) {
      const cap = capture();
      const svc = await StorageService.create(settings(backend(), true), cap.log);
      try {
        const img = await svc.openImage([sb.info]);
        const cache = img.blobs[0] as CachedBlob;
        fp.clear();
        fp.inject({ kind, times: Infinity, match: /^GET .*\/blobs\// });
        const first = sb.chunks.slice(0, 4);
        const len = first.reduce((s, c) => s + c.uncompressedSize, 0);
        await assert.rejects(img.read(first, 0, len), (e: NodeJS.ErrnoException & { errno?: number }) => e.errno === 5, kind);
        // A reply cut after half its body (its head was right): the chunks that arrived whole
        // before the cut are cached as they came (digest-checked; the read after recovery below
        // serves them from the cache), never the last one. Any other fault caches nothing.
        const cut = kind === 'truncate' || kind === 'stall';
        for (const c of sb.chunks) {
          const arrived = cut && first.includes(c) && c !== first.at(-1);
          if (!arrived) assert.equal(cache.chunkMap.isReady(c.chunkIndex), false, `${kind}: chunk ${c.chunkIndex} marked ready`);
        }
        const errors = cap.lines.filter((l) => / ERROR /.test(l));
        assert.equal(errors.length, 1, `${kind}: ${errors.join('')}`);
        const r = first[0];
        assert.ok(r);
        assert.match(errors[0] ?? '', new RegExp(`blob ${id}: fetching 4 chunk\\(s\\) at offset ${r.compressedOffset} length \\d+ failed`));
        assert.equal(svc.stats().backend.retries, 3, `${kind}: upstream's on-demand budget`);
        // The server recovers; the same daemon serves the same range.
        fp.clear();
        assert.ok((await img.read(sb.chunks, 0, sb.file.length)).equals(sb.file), kind);
      } finally {
        await svc.close();
      }
    }
  });

  test('a registry that lies about the size: reads past it and a contradicting Content-Range fail, never retried', async () => {
    const cap = capture();
    const be = await createBackend(settings(backend(), false), cap.log);
    try {
      fp.clear();
      fp.inject({ kind: 'lie-size', value: 1000, match: /^HEAD / });
      assert.equal(await be.size(id), 1000);
      await assert.rejects(be.read(id, 900, 200), /beyond the blob's 1000 bytes/);
      await assert.rejects(be.read(id, 0, 10), /the server now says the blob has \d+ bytes, it said 1000 before/);
      assert.equal(be.stats().retries, 0);
    } finally {
      await be.close();
    }
    const be2 = await createBackend(settings(backend(), false), cap.log);
    try {
      // The first range reply states a total; a later one contradicting it is refused.
      fp.inject({ kind: 'lie-size', value: sb.blob.length + 5, match: /^GET / });
      assert.ok((await be2.read(id, 0, 10)).equals(sb.blob.subarray(0, 10)));
      await assert.rejects(be2.read(id, 10, 10), new RegExp(`the server now says the blob has ${sb.blob.length} bytes, it said ${sb.blob.length + 5} before`));
      assert.equal(be2.stats().retries, 0);
    } finally {
      await be2.close();
    }
  });

  test('the proxy dies mid-run: health check and transport errors fall back to the origin; with fallback off, reads fail', async () => {
    fp.clear();
    const d = join(work, 'nginx-proxy');
    const port = await freePort();
    const conf = `server { listen 127.0.0.1:${port};
      location = /server/ping { return 200 'pong'; }
      location / { proxy_pass http://$http_host$uri$is_args$args; proxy_http_version 1.1; proxy_set_header Connection ""; } }`;
    const start = (): Promise<Nginx> => startNginx(d, conf, { url: `http://127.0.0.1:${port}/server/ping` }, '$request $status p2p=$http_x_dragonfly_use_p2p prio=$http_x_dragonfly_priority');
    let ng = await start();
    const proxy = { url: `http://127.0.0.1:${port}`, ping_url: `http://127.0.0.1:${port}/server/ping`, check_interval: 1 };
    const cap = capture();
    const be = await createBackend(settings(backend({ proxy }), false), cap.log);
    const be2 = await createBackend(settings(backend({ proxy: { ...proxy, fallback: false } }), false), cap.log);
    try {
      assert.ok((await be.read(id, 0, 1000)).equals(sb.blob.subarray(0, 1000)));
      assert.ok((await be2.read(id, 0, 1000)).equals(sb.blob.subarray(0, 1000)));
      const through = (await ng.settled()).filter((l) => l.includes('/blobs/sha256:'));
      assert.ok(through.length >= 2, ng.access().join('\n'));
      assert.ok(through.every((l) => l.includes('p2p=true prio=6')), through.join('\n'));
      const direct = fp.requests;
      await ng.kill();
      // At once: the transport error falls back.
      assert.ok((await be.read(id, 1000, 1000)).equals(sb.blob.subarray(1000, 2000)));
      assert.ok(fp.requests > direct, 'the origin served it');
      await assert.rejects(be2.read(id, 1000, 1000), (e: { errno?: number }) => e.errno === 5);
      // Then the health check notices, and requests go straight to the origin.
      await sleep(2200);
      assert.match(cap.lines.join(''), /proxy http:\/\/127\.0\.0\.1:\d+\/ failed its health check/);
      assert.ok((await be.read(id, 2000, 1000)).equals(sb.blob.subarray(2000, 3000)));
      await assert.rejects(be2.read(id, 2000, 1000), /the proxy is not healthy and fallback is disabled/);
      // The proxy comes back: healthy again after a check, used again.
      ng = await start();
      await sleep(2200);
      assert.match(cap.lines.join(''), /is healthy again/);
      assert.ok((await be2.read(id, 3000, 1000)).equals(sb.blob.subarray(3000, 4000)));
    } finally {
      await be.close();
      await be2.close();
      await ng.stop();
    }
  });

  test('a mirror dies mid-run: skipped after failure_limit, the origin serves, back after its health check', async () => {
    fp.clear();
    const d = join(work, 'nginx-mirror');
    const port = await freePort();
    const conf = `server { listen 127.0.0.1:${port}; location / { proxy_pass http://127.0.0.1:${reg.port}; } }`;
    const start = (): Promise<Nginx> => startNginx(d, conf, { url: `http://127.0.0.1:${port}/v2/` }, '$request $status m=$http_x_mirror_token');
    let ng = await start();
    const mirrors = [{ host: `http://127.0.0.1:${port}`, headers: { 'X-Mirror-Token': kMirrorSecret }, failure_limit: 2, health_check_interval: 1 }];
    const cap = capture();
    const be = await createBackend(settings(backend({ host: fp.origin, mirrors }), false), cap.log);
    try {
      assert.ok((await be.read(id, 0, 1000)).equals(sb.blob.subarray(0, 1000)));
      const viaMirror = (await ng.settled()).filter((l) => l.includes('/blobs/sha256:'));
      assert.ok(viaMirror.length >= 1 && viaMirror.every((l) => l.endsWith(`m=${kMirrorSecret}`)), `${ng.access().join('\n')}\n${cap.lines.join('')}\n${ng.log()}`);
      const originBefore = fp.requests;
      await ng.kill();
      for (let i = 1; i <= 4; i++) assert.ok((await be.read(id, i * 1000, 1000)).equals(sb.blob.subarray(i * 1000, (i + 1) * 1000)));
      assert.ok(fp.requests > originBefore, 'the origin served while the mirror was down');
      const failures = cap.lines.filter((l) => /mirror http:\/\/127\.0\.0\.1:\d+\/: .*\(failure \d of 2\)/.test(l));
      assert.equal(failures.length, 2, 'two failures, then the mirror is skipped');
      assert.match(cap.lines.join(''), /failed 2 time\(s\); skipped until its health check passes/);
      ng = await start();
      await sleep(2500);
      assert.match(cap.lines.join(''), /mirror http:\/\/127\.0\.0\.1:\d+\/ is healthy again/);
      const before = (await ng.settled()).length;
      await be.read(id, 9000, 1000);
      assert.ok((await ng.settled()).length > before, 'the mirror serves again');
    } finally {
      await be.close();
      await ng.stop();
    }
    const text = cap.lines.join('');
    for (const secret of [kMirrorSecret, kAuth, 'registry-password-9']) assert.ok(!text.includes(secret), `log shows ${secret}`);
    const shown = JSON.stringify(redactConfig({ backend: { registry: { auth: kAuth, mirrors } } }));
    assert.ok(!shown.includes(kMirrorSecret) && !shown.includes(kAuth), shown);
    assert.match(shown, /"X-Mirror-Token":"<redacted>"/);
  });
});
