/**
 * The one cache fill runs on the native fill threads: a validated fill (decode + digest + write)
 * never runs on the event loop, a fill that is refused by the cache directory lands in the
 * spill for prefetch as for on-demand reads, and a corrupt chunk fails alone. A cold read
 * through the service pays its decoding and hashing on those threads; a local backend's on-demand
 * ranges are read by those threads from the blob file, and the memory prefetch reads into is
 * reused only once the fill that reads it has settled.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';

import { DigestAlgo, fill, kFillCached, kFillDigestMismatch, openChunkMap } from '../../src/native/index.js';
import { CompressAlgo } from '../../src/native/index.js';
import { BlobBackend, CachedBlob, newCounters, StorageService } from '../../src/storage/index.js';
import type { ChunkInfo } from '../../src/storage/index.js';
import type { BlobCacheContext } from '../../src/storage/index.js';
import { CacheWriteHealth } from '../../src/storage/cache-health.js';
import { nullLogger } from '../../src/util/logger.js';
import { threadsNamed } from '../helpers/proc-threads.js';
import { buildBlob, MemoryBackend } from '../helpers/storage-fixtures.js';
import type { SyntheticBlob } from '../helpers/storage-fixtures.js';

const tmpRoot = mkdtempSync(join(tmpdir(), 'nydus-native-fill-'));
after(() => rmSync(tmpRoot, { recursive: true, force: true }));

test('a validated fill decodes and hashes on a fill thread while the event loop keeps turning', async () => {
  const sb = buildBlob({ sizes: Array.from({ length: 24 }, () => 1 << 20), compressor: 'zstd' });
  const dir = join(tmpRoot, 'loop');
  mkdirSync(dir);
  const map = openChunkMap(join(dir, 'blob.data.chunk_map'), sb.info.chunkCount);
  const fh = await open(join(dir, 'blob.data'), 'w+');
  try {
    let turns = 0;
    let spinning = true;
    const spin = (): void => {
      turns++;
      if (spinning) setImmediate(spin);
    };
    setImmediate(spin);
    const chunks = sb.chunks.map((c) => ({
      srcOffset: c.compressedOffset, storedSize: c.compressedSize, fileOffset: c.uncompressedOffset,
      size: c.uncompressedSize, compressed: c.compressed, index: c.chunkIndex, digest: c.digest, compressedOffset: c.compressedOffset,
    }));
    // One chunk with a wrong digest: rejected alone, never written nor marked.
    const bad = Buffer.from(sb.chunks[5]?.digest ?? Buffer.alloc(32));
    bad[0] = (bad[0] ?? 0) ^ 1;
    (chunks[5] as { digest: Buffer }).digest = bad;
    const out = await fill({ algo: CompressAlgo.Zstd, digester: DigestAlgo.Blake3, validate: true, src: sb.blob, chunks, fd: fh.fd, map, allowSpill: false });
    spinning = false;
    // The main thread's id is the process id: the fill ran elsewhere.
    assert.notEqual(out.threadId, process.pid);
    assert.ok(out.threadId > 0);
    // Synchronous work on the loop would have resolved before a single setImmediate ran.
    assert.ok(turns > 0, 'the event loop turned while the fill ran');
    assert.equal(out.storeError, 0);
    const data = readFileSync(join(dir, 'blob.data'));
    sb.chunks.forEach((c, i) => {
      const want = i === 5 ? kFillDigestMismatch : kFillCached;
      assert.equal(out.status[i], want, `chunk ${i}`);
      assert.equal(map.isReady(c.chunkIndex), i !== 5);
      const got = data.subarray(c.uncompressedOffset, c.uncompressedOffset + c.uncompressedSize);
      if (i === 5) assert.ok(got.length === 0 || got.equals(Buffer.alloc(got.length)), 'rejected data is never written');
      else assert.ok(got.equals(sb.data[i] ?? Buffer.alloc(0)), `chunk ${i} data`);
    });
  } finally {
    await fh.close();
    map.close();
  }
});

test('invalid fill plans are refused before any work: out-of-range chunk index, bytes outside the fetch', async () => {
  const sb = buildBlob({ sizes: [4096], compressor: 'none' });
  const dir = join(tmpRoot, 'plans');
  mkdirSync(dir);
  const map = openChunkMap(join(dir, 'm'), 1);
  try {
    const base = { srcOffset: 0, storedSize: 4096, fileOffset: 0, size: 4096, compressed: false, index: 0, compressedOffset: 0 };
    const req = { algo: 0, digester: DigestAlgo.Blake3, validate: false, src: sb.blob, fd: -1, map, allowSpill: true };
    await assert.rejects(fill({ ...req, chunks: [{ ...base, index: 1 }] }), { code: 'ERR_BAD_CHUNK' });
    await assert.rejects(fill({ ...req, chunks: [{ ...base, srcOffset: 1 }] }), { code: 'ERR_BAD_CHUNK' });
    assert.equal(map.isReady(0), false);
  } finally {
    map.close();
  }
});

test('prefetch fills go to the spill when the cache directory takes no writes, and are served from it', async () => {
  const sb = buildBlob({ compressor: 'lz4_block', sizes: [4096, 8192, 4096] });
  const workDir = join(tmpRoot, 'spill');
  mkdirSync(workDir);
  const log = nullLogger();
  const health = new CacheWriteHealth(workDir, log, 1 << 20, { retryMs: 3_600_000 });
  health.failed('ENOSPC', 'writing a test file');
  const counters = newCounters();
  const ctx: BlobCacheContext = {
    backend: new BlobBackend(new MemoryBackend(new Map([[sb.info.blobId, sb.blob]]))),
    workDir, validate: true, batchSize: 0, counters, log, health,
  };
  const blob = await CachedBlob.open(sb.info, ctx);
  try {
    const total = sb.chunks.reduce((n, c) => n + c.compressedSize, 0);
    const r = await blob.fetchPlanned({ offset: 0, length: total, chunks: sb.chunks });
    assert.deepEqual(r, { bytes: total, read: true, filled: 3, failed: 0 });
    for (const c of sb.chunks) {
      assert.equal(blob.chunkMap.isReady(c.chunkIndex), false, 'nothing in the cache file');
      assert.equal(blob.chunkMap.spillReady(c.chunkIndex), true, 'held in the spill');
      assert.equal(blob.isReady(c.chunkIndex), true);
    }
    assert.equal(counters.chunksSpilled, 3);
    const out = Buffer.alloc(sb.file.length);
    await blob.readInto(sb.chunks, 0, out);
    assert.ok(out.equals(sb.file));
    assert.equal(counters.backendReads, 1, 'served from the spill, not fetched again');
  } finally {
    await blob.close();
  }
});

/** CPU time (ms) a thread ran, from its schedstat; by thread id. */
function threadCpuMs(tids: readonly string[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const t of tids) {
    try {
      out.set(t, Number(readFileSync(`/proc/self/task/${t}/schedstat`, 'utf8').split(' ')[0]) / 1e6);
    } catch {
      // The thread ended meanwhile.
    }
  }
  return out;
}

function fillThreads(): string[] {
  return threadsNamed('nydus-fill');
}

/** A blobcache service over localfs holding `sb`, as the daemon builds it. */
async function localService(sb: SyntheticBlob, name: string, validate: boolean): Promise<StorageService> {
  const dir = join(tmpRoot, name);
  mkdirSync(join(dir, 'cache'), { recursive: true });
  writeFileSync(join(dir, sb.info.blobId), sb.blob);
  return StorageService.create({
    backend: { type: 'localfs', config: { dir, blob_file: '', alt_dirs: [] } },
    backendKey: 'backend.localfs',
    cache: { kind: 'blobcache', workDir: join(dir, 'cache'), workDirKey: 'work_dir' },
    validate,
    batchSize: 0,
  });
}

/** Reads every chunk of `sb` in groups of `group`, `depth` groups in flight. */
async function readAll(ensure: (cs: ChunkInfo[]) => Promise<void>, sb: SyntheticBlob, group: number, depth: number): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < sb.chunks.length) {
      const cs = sb.chunks.slice(next, next + group);
      next += group;
      await ensure(cs);
    }
  };
  await Promise.all(Array.from({ length: depth }, worker));
}

test('a validated cold read through the service decodes and hashes on the fill threads, not on the event loop', { skip: process.platform !== 'linux' && 'needs /proc/self/task' }, async () => {
  // Few large chunks: the loop's share (per chunk) stays small next to hashing 64 MiB.
  const sb = buildBlob({ sizes: Array.from({ length: 16 }, () => 4 << 20), compressor: 'zstd' });
  const service = await localService(sb, 'service-cpu', true);
  try {
    const image = await service.openImage([sb.info]);
    const before = threadCpuMs(fillThreads());
    const self = threadCpuMs([String(process.pid)]).get(String(process.pid)) ?? 0;
    await readAll((cs) => image.ensureReady(cs), sb, 4, 2);
    const loopMs = (threadCpuMs([String(process.pid)]).get(String(process.pid)) ?? 0) - self;
    let fillMs = 0;
    for (const [t, ms] of threadCpuMs(fillThreads())) fillMs += ms - (before.get(t) ?? 0);
    const { cache } = service.stats();
    assert.equal(cache.chunksFilled, 16);
    assert.equal(cache.digestErrors, 0);
    // 64 MiB digested (half of it inflated, all of it written) costs tens of ms of CPU. Done on
    // the loop, the fill threads would show none of it and the loop all of it; even doing it on
    // both sides brings the two close. CPU time, not wall time: a busy machine changes neither.
    assert.ok(fillMs > 2 * loopMs, `fill threads ran ${fillMs.toFixed(1)} ms, the event loop ${loopMs.toFixed(1)} ms`);
    const got = await image.read(sb.chunks, 0, sb.file.length);
    assert.ok(got.equals(sb.file));
  } finally {
    await service.close();
  }
});

for (const validate of [false, true]) {
  test(`concurrent cold reads over localfs: the fill threads read the blob file themselves, every chunk gets its own bytes (validate ${validate})`, async () => {
    // 160 KiB chunks, 8 per fetch: ranges of ~0.7-1.3 MiB, read into memory each fill thread keeps.
    const sb = buildBlob({ sizes: Array.from({ length: 96 }, () => 160 << 10), compressor: 'lz4_block' });
    const service = await localService(sb, `service-file-${validate}`, validate);
    try {
      const image = await service.openImage([sb.info]);
      await readAll((cs) => image.ensureReady(cs), sb, 8, 4);
      assert.equal(service.readBuffers.stats().allocated, 0, 'no backend read into JavaScript memory');
      const st = service.stats();
      assert.equal(st.cache.chunksFilled, 96);
      // Every fetch was booked as a backend read, once, with its bytes.
      const b = service.backend.stats();
      assert.equal(b.readCount, st.cache.backendReads);
      assert.equal(b.readErrors, 0);
      assert.equal(b.readBytes, sb.chunks.reduce((n, c) => n + c.compressedSize, 0));
      // Without validation nothing else would notice a fill decoding another fill's bytes.
      const got = await image.read(sb.chunks, 0, sb.file.length);
      assert.ok(got.equals(sb.file));
    } finally {
      await service.close();
    }
  });

  test(`reused read buffers: concurrent prefetch over localfs fills every chunk with its own bytes (validate ${validate})`, async () => {
    const sb = buildBlob({ sizes: Array.from({ length: 96 }, () => 160 << 10), compressor: 'lz4_block' });
    const service = await localService(sb, `service-reuse-${validate}`, validate);
    try {
      const image = await service.openImage([sb.info]);
      const blob = image.cachedBlobs()[0] as CachedBlob;
      await readAll(async (cs) => {
        const first = cs[0] as ChunkInfo;
        const last = cs[cs.length - 1] as ChunkInfo;
        const length = last.compressedOffset + last.compressedSize - first.compressedOffset;
        const done = await blob.fetchPlanned({ offset: first.compressedOffset, length, chunks: cs });
        assert.equal(done.filled, cs.length);
      }, sb, 8, 4);
      const { allocated, reused } = service.readBuffers.stats();
      assert.ok(reused > 0 && allocated <= 8, `allocated ${allocated}, reused ${reused}`);
      assert.equal(service.stats().cache.chunksFilled, 96);
      // Without validation nothing else would notice a buffer handed to the next read while a
      // fill still decoded from it: the cached bytes would be another range's.
      const got = await image.read(sb.chunks, 0, sb.file.length);
      assert.ok(got.equals(sb.file));
    } finally {
      await service.close();
    }
  });
}

test('a blob file that ends before the range: the on-demand read fails with the backend error, nothing is cached, a later read can succeed', async () => {
  const sb = buildBlob({ sizes: Array.from({ length: 8 }, () => 64 << 10), compressor: 'zstd' });
  const service = await localService(sb, 'service-short', true);
  const path = join(tmpRoot, 'service-short', sb.info.blobId);
  try {
    const image = await service.openImage([sb.info]);
    const blob = image.cachedBlobs()[0] as CachedBlob;
    const last = sb.chunks[sb.chunks.length - 1] as ChunkInfo;
    // The backend checked the size at open; the file shrinks under it (the fill thread's pread ends early).
    await image.ensureReady([sb.chunks[0] as ChunkInfo]);
    truncateSync(path, last.compressedOffset + 1);
    await assert.rejects(image.ensureReady([last]), (e: Error & { code?: string }) => e.code === 'ERR_BACKEND' && /EIO/.test(e.message));
    assert.equal(blob.isReady(last.chunkIndex), false);
    assert.equal(service.backend.stats().readErrors, 1);
    writeFileSync(path, sb.blob);
    await image.ensureReady([last]);
    assert.equal(blob.isReady(last.chunkIndex), true);
    assert.ok((await image.read([last], last.fileOffset, last.uncompressedSize)).equals(sb.file.subarray(last.fileOffset, last.fileOffset + last.uncompressedSize)));
  } finally {
    await service.close();
  }
});

test('speculative fills (readahead, prefetch) and on-demand ones submitted together all complete, from a Buffer or the blob file', async () => {
  const sb = buildBlob({ sizes: Array.from({ length: 24 }, () => 256 << 10), compressor: 'lz4_block' });
  const dir = join(tmpRoot, 'priority');
  mkdirSync(dir);
  writeFileSync(join(dir, 'blob'), sb.blob);
  const map = openChunkMap(join(dir, 'blob.data.chunk_map'), sb.info.chunkCount);
  const fh = await open(join(dir, 'blob.data'), 'w+');
  const src = await open(join(dir, 'blob'), 'r');
  try {
    // One fill per chunk, more than the pool has threads, so both queues hold work.
    const outs = await Promise.all(
      sb.chunks.map((c, i) => {
        const fromFile = i % 3 === 0;
        const chunk = {
          srcOffset: fromFile ? 0 : c.compressedOffset, storedSize: c.compressedSize, fileOffset: c.uncompressedOffset,
          size: c.uncompressedSize, compressed: c.compressed, index: c.chunkIndex, digest: c.digest, compressedOffset: c.compressedOffset,
        };
        const from = fromFile ? { fd: src.fd, position: c.compressedOffset, length: c.compressedSize } : sb.blob;
        return fill({ algo: CompressAlgo.Lz4Block, digester: DigestAlgo.Blake3, validate: true, src: from, chunks: [chunk], fd: fh.fd, map, allowSpill: false, speculative: i % 2 === 0 });
      }),
    );
    const data = readFileSync(join(dir, 'blob.data'));
    sb.chunks.forEach((c, i) => {
      assert.equal(outs[i]?.sourceError, 0, `chunk ${i} source`);
      assert.equal(outs[i]?.status[0], kFillCached, `chunk ${i}`);
      assert.ok(map.isReady(c.chunkIndex), `chunk ${i} ready`);
      assert.ok(data.subarray(c.uncompressedOffset, c.uncompressedOffset + c.uncompressedSize).equals(sb.data[i] ?? Buffer.alloc(0)), `chunk ${i} data`);
    });
  } finally {
    await src.close();
    await fh.close();
    map.close();
  }
});
