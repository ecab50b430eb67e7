/**
 * Demand-path readahead (src/storage/readahead.ts) against real servers: a sequential reader of
 * a blob behind nginx (http-proxy) causes large ranged GETs ahead of it, the ranges nginx's
 * access log shows; a random reader of the same blob causes only its own amplify_io-sized GETs;
 * through docker-registry a sequential read needs a fraction of the requests. Every byte is
 * checked (digest validation on); localfs reads ahead one request at a time
 * (storage-local-readahead.test.ts).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import type { ResolvedBackend } from '../../src/config/index.js';
import { kHttpProxySchema, kLocalFsSchema, kRegistrySchema } from '../../src/config/schema-common.js';
import type { StorageSettings } from '../../src/storage/index.js';
import { StorageService } from '../../src/storage/index.js';
import type { Nginx, Registry } from '../helpers/remote-servers.js';
import { freePort, pushBlob, remoteSkip, startNginx, startRegistry } from '../helpers/remote-servers.js';
import type { SyntheticBlob } from '../helpers/storage-fixtures.js';
import { buildBlob } from '../helpers/storage-fixtures.js';

const kSkip = remoteSkip();
const kChunks = 160;
const kChunkSize = 64 * 1024;
/** amplify_io 0: the cache window is upstream's floor, 128 KiB (two chunks here). */
const kAmplifyWindow = 128 * 1024;

function settings(backend: ResolvedBackend, workDir: string): StorageSettings {
  return {
    backend,
    backendKey: `backend.${backend.type}`,
    cache: { kind: 'blobcache', workDir, workDirKey: 'cache.filecache.work_dir' },
    validate: true,
    batchSize: 0,
    headers: { 'User-Agent': 'nydusd/1.0.0' },
  };
}

/**
 * Byte ranges ([start, end] inclusive) of the chunk-data GETs in an access log of
 * `$request $status $http_range` (the blob meta GET, past the data, is left out).
 */
function ranges(lines: readonly string[], dataEnd: number): [number, number][] {
  const out: [number, number][] = [];
  for (const l of lines) {
    const m = /^GET \S+ HTTP\/1\.1 206 bytes=(\d+)-(\d+)$/.exec(l);
    if (m && Number(m[1]) < dataEnd) out.push([Number(m[1]), Number(m[2])]);
  }
  return out;
}

describe('demand-path readahead against real servers', { skip: kSkip, timeout: 120_000 }, () => {
  const work = mkdtempSync(join(tmpdir(), 'nydusd-readahead-'));
  const blobDir = join(work, 'blobs');
  const sb: SyntheticBlob = buildBlob({ sizes: Array.from({ length: kChunks }, () => kChunkSize), compressor: 'none', withCi: true });
  sb.info.blobId = createHash('sha256').update(sb.blob).digest('hex');
  let ng: Nginx;
  let reg: Registry;
  let port = 0;
  let fresh = 0;
  const cacheDir = (): string => {
    const d = join(work, `cache-${fresh++}`);
    mkdirSync(d);
    return d;
  };
  const httpProxy = (): ResolvedBackend => ({ type: 'http-proxy', config: kHttpProxySchema.parse({ addr: `http://127.0.0.1:${port}`, path: '/blobs' }) });

  before(async () => {
    mkdirSync(blobDir);
    writeFileSync(join(blobDir, sb.info.blobId), sb.blob);
    port = await freePort();
    ng = await startNginx(join(work, 'nginx'), `server { listen 127.0.0.1:${port}; location /blobs/ { alias ${blobDir}/; } location = /ping { return 200; } }`, {
      url: `http://127.0.0.1:${port}/ping`,
    }, '$request $status $http_range');
    reg = await startRegistry(join(work, 'registry'), join(work, 'registry-store'), { kind: 'none' });
    await pushBlob(reg.url, 'nydus/ra', sb.info.blobId, sb.blob);
  });
  after(async () => {
    await ng?.stop();
    await reg?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  /** Reads the blob's file chunk by chunk in `order`, one READ at a time, checking every byte. */
  async function readChunks(backend: ResolvedBackend, order: readonly number[]): Promise<StorageService> {
    const svc = await StorageService.create(settings(backend, cacheDir()));
    const img = await svc.openImage([sb.info], { chunkLookup: () => (i) => sb.chunks[i] });
    for (const i of order) {
      const c = sb.chunks[i];
      assert.ok(c);
      const got = await img.read([c], c.fileOffset, c.uncompressedSize);
      assert.ok(got.equals(sb.file.subarray(c.fileOffset, c.fileOffset + c.uncompressedSize)), `chunk ${i}`);
    }
    return svc;
  }

  test('a sequential reader through nginx causes large GETs of the ranges ahead of it', async () => {
    const before = ng.access().length;
    const svc = await readChunks(httpProxy(), Array.from({ length: kChunks }, (_, i) => i));
    const got = ranges((await ng.settled()).slice(before), sb.info.compressedSize);
    const { cache } = svc.stats();
    await svc.close();
    assert.ok(cache.chunksReadahead > 0, 'chunks were read ahead');
    // The first misses fetch one amplify_io window each; once the stream is seen, requests of
    // up to 4 MiB run ahead of the reader.
    const big = got.filter(([s, e]) => e - s + 1 > kAmplifyWindow);
    assert.ok(big.length >= 1, `GETs: ${JSON.stringify(got)}`);
    assert.ok(got.every(([s, e]) => e - s + 1 <= 4 * 1024 * 1024), 'no GET above the request size');
    // nginx logs a request when it ends, so concurrent GETs may be logged out of order: look at
    // them in offset order. Readahead starts only after two forward misses, so at least two
    // window-sized demand GETs lie before the first big one (contiguity is checked below).
    const sorted = [...got].sort((a, b) => a[0] - b[0]);
    const firstBig = sorted.findIndex(([s, e]) => e - s + 1 > kAmplifyWindow);
    assert.ok(firstBig >= 2, `GETs: ${JSON.stringify(got)}`);
    // Every byte of the blob was asked for exactly once.
    let at = 0;
    for (const [s, e] of sorted) {
      assert.equal(s, at, `GETs: ${JSON.stringify(got)}`);
      at = e + 1;
    }
    assert.equal(at, sb.info.compressedSize);
    assert.ok(got.length <= 12, `${got.length} GETs for ${kChunks} chunks`);
  });

  test('a random reader through nginx causes only its own amplify_io-sized GETs', async () => {
    const before = ng.access().length;
    // Strides of 67 chunks (mod 160): never a forward step of one or two chunks.
    const order = Array.from({ length: kChunks }, (_, k) => (k * 67) % kChunks);
    const svc = await readChunks(httpProxy(), order);
    const got = ranges((await ng.settled()).slice(before), sb.info.compressedSize);
    const { cache } = svc.stats();
    await svc.close();
    assert.equal(cache.chunksReadahead, 0);
    assert.ok(got.length > 0);
    assert.ok(got.every(([s, e]) => e - s + 1 <= kAmplifyWindow), `GETs: ${JSON.stringify(got)}`);
  });

  test('through docker-registry a sequential read needs a fraction of the GETs; localfs reads ahead in its own requests', async () => {
    const registry: ResolvedBackend = { type: 'registry', config: kRegistrySchema.parse({ scheme: 'http', host: `127.0.0.1:${reg.port}`, repo: 'nydus/ra', timeout: 5 }) };
    const seq = Array.from({ length: kChunks }, (_, i) => i);
    const svc = await readChunks(registry, seq);
    const st = svc.stats();
    await svc.close();
    assert.ok(st.cache.chunksReadahead > 0);
    assert.ok(st.backend.readCount <= 12, `${st.backend.readCount} GETs`);
    // localfs reads ahead too (kLocalReadaheadDefaults), in smaller requests, one at a time.
    const local = await readChunks({ type: 'localfs', config: kLocalFsSchema.parse({ dir: blobDir }) }, seq);
    const ls = local.stats();
    await local.close();
    assert.ok(ls.cache.chunksReadahead > 0);
    assert.ok(ls.backend.readCount < kChunks / 4, `${ls.backend.readCount} reads, not one amplify_io window per miss`);
  });
});
