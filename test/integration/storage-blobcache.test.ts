import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';

import { CompressAlgo, decompress } from '../../src/native/index.js';
import { BlobBackend, CachedBlob, ImageStorage, newCounters, StorageService } from '../../src/storage/index.js';
import type { BlobCacheContext, ChunkInfo } from '../../src/storage/index.js';
import { nullLogger } from '../../src/util/logger.js';
import { buildBlob, MemoryBackend } from '../helpers/storage-fixtures.js';
import type { SyntheticBlob } from '../helpers/storage-fixtures.js';

const tmpRoot = mkdtempSync(join(tmpdir(), 'nydus-blobcache-'));
after(() => rmSync(tmpRoot, { recursive: true, force: true }));
let seq = 0;
function freshDir(): string {
  const d = join(tmpRoot, `w${seq++}`);
  mkdirSync(d);
  return d;
}

function ctxFor(sb: SyntheticBlob, opts: { validate?: boolean; batchSize?: number; workDir?: string } = {}) {
  const raw = new MemoryBackend(new Map([[sb.info.blobId, sb.blob]]));
  const counters = newCounters();
  const ctx: BlobCacheContext = {
    backend: new BlobBackend(raw),
    workDir: opts.workDir ?? freshDir(),
    validate: opts.validate ?? true,
    batchSize: opts.batchSize ?? 0,
    counters,
    log: nullLogger(),
  };
  return { raw, ctx, counters };
}

for (const compressor of ['zstd', 'lz4_block', 'none'] as const) {
  test(`blobcache fills from a synthetic ${compressor} blob and serves file reads`, async () => {
    const sb = buildBlob({ compressor });
    const { ctx, counters } = ctxFor(sb);
    const blob = await CachedBlob.open(sb.info, ctx);
    const image = new ImageStorage([blob]);
    try {
      const whole = await image.read(sb.chunks, 0, sb.file.length);
      assert.ok(whole.equals(sb.file));
      for (const [off, len] of [
        [1, 4095],
        [4000, 9000],
        [sb.file.length - 3, 3],
        [14096, 70000],
      ] as const) {
        const got = await image.read(sb.chunks, off, len);
        assert.ok(got.equals(sb.file.subarray(off, off + len)), `range ${off}+${len}`);
      }
      for (const c of sb.chunks) assert.equal(blob.chunkMap.isReady(c.chunkIndex), true);
      assert.equal(counters.chunksFilled, sb.chunks.length);
      assert.ok(counters.hits > 0);
      // The data file holds every chunk at its uncompressed offset and has the blob's size.
      const dataFile = readFileSync(blob.dataPath);
      assert.equal(dataFile.length, sb.info.uncompressedSize);
      sb.chunks.forEach((c, i) => {
        assert.ok(dataFile.subarray(c.uncompressedOffset, c.uncompressedOffset + c.uncompressedSize).equals(sb.data[i] ?? Buffer.alloc(0)));
      });
    } finally {
      await image.close();
    }
  });
}

test('bytes no chunk covers (holes) read as zeros', async () => {
  const sb = buildBlob({ sizes: [4096, 4096] });
  const { ctx } = ctxFor(sb);
  const image = new ImageStorage([await CachedBlob.open(sb.info, ctx)]);
  try {
    const [c0, c1] = sb.chunks as [ChunkInfo, ChunkInfo];
    const sparse = [c0, { ...c1, fileOffset: 20000 }];
    const got = await image.read(sparse, 0, 24096);
    assert.ok(got.subarray(0, 4096).equals(sb.data[0] ?? Buffer.alloc(0)));
    assert.ok(got.subarray(4096, 20000).equals(Buffer.alloc(20000 - 4096)));
    assert.ok(got.subarray(20000).equals(sb.data[1] ?? Buffer.alloc(0)));
  } finally {
    await image.close();
  }
});

test('concurrent misses on the same chunks cause one backend read', async () => {
  const sb = buildBlob();
  const { raw, ctx, counters } = ctxFor(sb);
  const blob = await CachedBlob.open(sb.info, ctx);
  const image = new ImageStorage([blob]);
  try {
    raw.hold();
    const target = sb.chunks.slice(1, 3);
    const reads = Array.from({ length: 10 }, () => image.read(target, 4096, 10100));
    // Let every read register before the single fetch completes.
    await new Promise((r) => setImmediate(r));
    raw.release();
    const results = await Promise.all(reads);
    for (const r of results) assert.ok(r.equals(sb.file.subarray(4096, 14196)));
    assert.equal(raw.reads.length, 1);
    assert.equal(counters.inflightJoins, 18);
    assert.equal(counters.chunksFilled, 2);
  } finally {
    await image.close();
  }
});

test('a digest mismatch fails the read with EIO and leaves the chunk unwritten and unmarked', async () => {
  const sb = buildBlob({ compressor: 'none', sizes: [8192, 8192] });
  const { ctx, counters } = ctxFor(sb);
  const blob = await CachedBlob.open(sb.info, ctx);
  const image = new ImageStorage([blob]);
  try {
    const good = sb.chunks[0] as ChunkInfo;
    const bad = { ...(sb.chunks[1] as ChunkInfo), digest: Buffer.alloc(32, 7) };
    await assert.rejects(image.read([good, bad], 0, 16384), (e: NodeJS.ErrnoException & { errno?: number }) => {
      assert.equal(e.code, 'ERR_CHUNK_DIGEST');
      assert.equal(e.errno, 5);
      assert.match(e.message, new RegExp(`blob ${sb.info.blobId} chunk 1: blake3 digest mismatch`));
      return true;
    });
    assert.equal(counters.digestErrors, 1);
    assert.equal(blob.chunkMap.isReady(1), false);
    // The good chunk of the same backend request still landed.
    assert.equal(blob.chunkMap.isReady(0), true);
    const dataFile = readFileSync(blob.dataPath);
    assert.ok(dataFile.subarray(8192, 16384).equals(Buffer.alloc(8192)), 'rejected data must not be written');
    // Not poisoned: with the right digest the chunk is fetched again and served.
    const ok = await image.read(sb.chunks, 0, 16384);
    assert.ok(ok.equals(sb.file));
    assert.equal(blob.chunkMap.isReady(1), true);
  } finally {
    await image.close();
  }
});

test('corrupted compressed data fails with ERR_CHUNK_DECODE and marks nothing', async () => {
  const sb = buildBlob({ compressor: 'zstd', sizes: [4096] });
  const c = sb.chunks[0] as ChunkInfo;
  assert.equal(c.compressed, true);
  sb.blob.fill(0xff, c.compressedOffset, c.compressedOffset + 8);
  const { ctx } = ctxFor(sb, { validate: false });
  const blob = await CachedBlob.open(sb.info, ctx);
  try {
    await assert.rejects(blob.ensureReady([c]), { code: 'ERR_CHUNK_DECODE', errno: 5 });
    assert.equal(blob.chunkMap.isReady(0), false);
  } finally {
    await blob.close();
  }
});

test('cache files match the upstream layout (chunk_map header and MSB-first bits, blob.meta size)', async () => {
  const sizes = Array.from({ length: 12 }, () => 4096);
  const sb = buildBlob({ sizes, withCi: true, compressor: 'zstd' });
  const { ctx } = ctxFor(sb, { validate: true });
  const blob = await CachedBlob.open(sb.info, ctx);
  try {
    await blob.ensureReady([sb.chunks[1] as ChunkInfo, sb.chunks[9] as ChunkInfo]);
    const map = readFileSync(`${blob.dataPath}.chunk_map`);
    assert.equal(map.length, 4096 + Math.ceil(12 / 8));
    assert.equal(map.readUInt32LE(0), 0x424d4150);
    assert.equal(map.readUInt32LE(4), 1);
    assert.equal(map.readUInt32LE(8), 0x434d4150);
    assert.equal(map.readUInt32LE(12), 0, 'not all ready yet');
    assert.equal(map[4096], 0b0100_0000, 'chunk 1 is bit 6 of byte 0');
    assert.equal(map[4097], 0b0100_0000, 'chunk 9 is bit 6 of byte 1');
    await blob.ensureReady(sb.chunks);
    assert.equal(readFileSync(`${blob.dataPath}.chunk_map`).readUInt32LE(12), 0x4d4d4150, 'all_ready');

    const metaPath = blob.metaPath ?? '';
    const meta = readFileSync(metaPath);
    const ciSize = sb.info.metaCiUncompressedSize;
    assert.equal(meta.length, Math.ceil(ciSize / 4096) * 4096 + 4096);
    const ciRaw = sb.blob.subarray(sb.info.metaCiOffset, sb.info.metaCiOffset + sb.info.metaCiCompressedSize);
    assert.ok(meta.subarray(0, ciSize).equals(decompress(CompressAlgo.Zstd, ciRaw, ciSize)), 'uncompressed CI first');
    assert.ok(meta.subarray(ciSize, meta.length - 4096).equals(Buffer.alloc(meta.length - 4096 - ciSize)), 'zero padding to 4 KiB');
    const header = sb.blob.subarray(sb.info.metaCiOffset + sb.info.metaCiCompressedSize);
    assert.ok(meta.subarray(meta.length - 4096).equals(header), 'header last, as stored in the blob');
    assert.equal(statSync(blob.dataPath).size, sb.info.uncompressedSize);
  } finally {
    await blob.close();
  }
});

test('chunks of one fetch decode into one run; a bad chunk inside the run splits it and alone stays unwritten', async () => {
  for (const compressor of ['zstd', 'none'] as const) {
    const sb = buildBlob({ compressor, sizes: [8192, 4096, 8192, 8192] });
    const { raw, ctx, counters } = ctxFor(sb);
    const blob = await CachedBlob.open(sb.info, ctx);
    const image = new ImageStorage([blob]);
    try {
      const chunks = sb.chunks.map((c, i) => (i === 2 ? { ...c, digest: Buffer.alloc(32, 9) } : c));
      const reads = raw.reads.length;
      await assert.rejects(image.read(chunks, 0, sb.file.length), { code: 'ERR_CHUNK_DIGEST' });
      await blob.settled();
      assert.equal(raw.reads.length - reads, 1, 'one backend read for the whole range');
      assert.deepEqual([0, 1, 2, 3].map((i) => blob.chunkMap.isReady(i)), [true, true, false, true]);
      assert.equal(counters.chunksFilled, 3);
      const dataFile = readFileSync(blob.dataPath);
      sb.chunks.forEach((c, i) => {
        const want = i === 2 ? Buffer.alloc(c.uncompressedSize) : (sb.data[i] ?? Buffer.alloc(0));
        assert.ok(dataFile.subarray(c.uncompressedOffset, c.uncompressedOffset + c.uncompressedSize).equals(want), `${compressor} chunk ${i}`);
      });
      assert.ok((await image.read(sb.chunks, 0, sb.file.length)).equals(sb.file));
    } finally {
      await image.close();
    }
  }
});

test('amplify_io extends a miss with the following chunks from the blob meta (one backend read)', async () => {
  const sizes = Array.from({ length: 16 }, () => 8192);
  const sb = buildBlob({ sizes, withCi: true });
  const { raw, ctx, counters } = ctxFor(sb, { validate: false, batchSize: 1 << 20 });
  const blob = await CachedBlob.open(sb.info, ctx);
  try {
    const metaReads = raw.reads.length;
    await blob.ensureReady([sb.chunks[0] as ChunkInfo]);
    // Amplified chunks land after the requested one; wait for them.
    await blob.settled();
    assert.equal(raw.reads.length - metaReads, 1);
    for (let i = 0; i < 16; i++) assert.equal(blob.chunkMap.isReady(i), true, `chunk ${i}`);
    assert.equal(counters.chunksAmplified, 15);
    // The amplified data is right: read everything back without another backend read.
    const image = new ImageStorage([blob]);
    assert.ok((await image.read(sb.chunks, 0, sb.file.length)).equals(sb.file));
    assert.equal(raw.reads.length - metaReads, 1);
  } finally {
    await blob.close();
  }
});

test('a blob whose CI lives in a separate meta blob is served without fetching a CI from it', async () => {
  const sb = buildBlob({ withCi: true });
  const info = { ...sb.info, features: sb.info.features | 0x10 };
  const { raw, ctx } = ctxFor({ ...sb, info });
  const blob = await CachedBlob.open(info, ctx);
  try {
    assert.equal(raw.reads.length, 0);
    assert.equal(blob.metaPath, undefined);
    const image = new ImageStorage([blob]);
    assert.ok((await image.read(sb.chunks, 0, sb.file.length)).equals(sb.file));
  } finally {
    await blob.close();
  }
});

test('amplification respects the batch window and never adds unverifiable chunks when validating', async () => {
  const sizes = Array.from({ length: 64 }, () => 65536);
  const sb = buildBlob({ sizes, withCi: true, compressor: 'none' });
  {
    const { ctx, counters } = ctxFor(sb, { validate: false, batchSize: 0 });
    const blob = await CachedBlob.open(sb.info, ctx);
    await blob.ensureReady([sb.chunks[0] as ChunkInfo]);
    // 128 KiB minimum window: chunk 0 plus one more 64 KiB chunk.
    assert.equal(counters.chunksAmplified, 1);
    assert.equal(blob.chunkMap.isReady(2), false);
    await blob.close();
  }
  {
    const { ctx, counters } = ctxFor(sb, { validate: true, batchSize: 1 << 20 });
    const blob = await CachedBlob.open(sb.info, ctx);
    await blob.ensureReady([sb.chunks[0] as ChunkInfo]);
    assert.equal(counters.chunksAmplified, 0, 'CI entries carry no digest');
    await blob.close();
  }
  {
    const { ctx, counters } = ctxFor(sb, { validate: true, batchSize: 1 << 20 });
    const blob = await CachedBlob.open(sb.info, ctx, { chunkLookup: (i) => sb.chunks[i] });
    await blob.ensureReady([sb.chunks[0] as ChunkInfo]);
    assert.equal(counters.chunksAmplified, 15, 'digests from the lookup: 1 MiB window');
    await blob.close();
  }
});

test('a warm restart reads nothing from the backend', async () => {
  const sb = buildBlob({ withCi: true });
  const blobs = freshDir();
  const work = freshDir();
  writeFileSync(join(blobs, sb.info.blobId), sb.blob);
  const settings = {
    backend: { type: 'localfs' as const, config: { dir: blobs, blob_file: '', alt_dirs: [] } },
    backendKey: 'backend.localfs',
    cache: { kind: 'blobcache' as const, workDir: work, workDirKey: 'cache.filecache.work_dir' },
    validate: true,
    batchSize: 1 << 20,
  };
  const first = await StorageService.create(settings);
  const img1 = await first.openImage([sb.info]);
  assert.ok((await img1.read(sb.chunks, 0, sb.file.length)).equals(sb.file));
  const cold = first.stats();
  assert.ok(cold.backend.readCount >= 2, 'blob meta and data were fetched');
  await first.close();

  const second = await StorageService.create(settings);
  const img2 = await second.openImage([sb.info]);
  assert.ok((await img2.read(sb.chunks, 0, sb.file.length)).equals(sb.file));
  const warm = second.stats();
  assert.equal(warm.backend.readCount, 0);
  assert.equal(warm.cache.backendReads, 0);
  assert.equal(warm.cache.misses, 0);
  assert.equal(warm.cache.hits, sb.chunks.length);
  await second.close();
});

test('dummycache reads straight from the backend, shares concurrent fetches and validates', async () => {
  const sb = buildBlob();
  const blobs = freshDir();
  writeFileSync(join(blobs, sb.info.blobId), sb.blob);
  const service = await StorageService.create({
    backend: { type: 'localfs', config: { dir: blobs, blob_file: '', alt_dirs: [] } },
    backendKey: 'backend.localfs',
    cache: { kind: 'dummycache' },
    validate: true,
    batchSize: 0,
  });
  try {
    const image = await service.openImage([sb.info]);
    assert.equal(image.blob(0).persistent, false);
    const results = await Promise.all(Array.from({ length: 5 }, () => image.read(sb.chunks, 0, sb.file.length)));
    for (const r of results) assert.ok(r.equals(sb.file));
    assert.equal(service.stats().cache.inflightJoins, 4 * sb.chunks.length);
    const bad = sb.chunks.map((c, i) => (i === 2 ? { ...c, digest: Buffer.alloc(32, 1) } : c));
    await assert.rejects(image.read(bad, 0, sb.file.length), { code: 'ERR_CHUNK_DIGEST', errno: 5 });
    assert.deepEqual(image.nativeRegistrations(), []);
  } finally {
    await service.close();
  }
});

test('clear errors: missing blob, short blob, bad chunk info; an oversized cache file is discarded', async () => {
  const sb = buildBlob();
  const blobs = freshDir();
  const work = freshDir();
  const settings = {
    backend: { type: 'localfs' as const, config: { dir: blobs, blob_file: '', alt_dirs: [] } },
    backendKey: 'backend.localfs',
    cache: { kind: 'blobcache' as const, workDir: work, workDirKey: 'cache.filecache.work_dir' },
    validate: false,
    batchSize: 0,
  };
  const service = await StorageService.create(settings);
  try {
    const image = await service.openImage([sb.info]);
    await assert.rejects(image.read(sb.chunks, 0, 100), (e: Error & { code?: string }) => {
      assert.equal(e.code, 'ERR_BLOB_NOT_FOUND');
      assert.match(e.message, new RegExp(`blob ${sb.info.blobId}: not found`));
      return true;
    });
    writeFileSync(join(blobs, sb.info.blobId), sb.blob.subarray(0, 100));
    await assert.rejects(image.read(sb.chunks, 0, sb.file.length), (e: Error & { code?: string }) => {
      assert.equal(e.code, 'ERR_BLOB_SHORT');
      assert.match(e.message, /beyond the end/);
      assert.match(e.message, new RegExp(sb.info.blobId));
      return true;
    });
    await assert.rejects(image.read([{ ...(sb.chunks[0] as ChunkInfo), chunkIndex: 99 }], 0, 10), { code: 'ERR_BAD_CHUNK' });
    await assert.rejects(image.read([{ ...(sb.chunks[0] as ChunkInfo), uncompressedOffset: sb.info.uncompressedSize }], 0, 10), {
      code: 'ERR_BAD_CHUNK',
    });
    await assert.rejects(image.read([{ ...(sb.chunks[0] as ChunkInfo), blobIndex: 3 }], 0, 10), { code: 'ERR_BAD_CHUNK' });
    await image.close();
    // A data file longer than the blob is not this blob's cache: discarded at open (no other
    // process uses it), and the blob is cached again from the backend.
    writeFileSync(join(work, `${sb.info.blobId}.blob.data`), Buffer.alloc(sb.info.uncompressedSize + 1));
    writeFileSync(join(blobs, sb.info.blobId), sb.blob);
    const fresh = await StorageService.create(settings);
    try {
      const again = await fresh.openImage([sb.info]);
      assert.ok((await again.read(sb.chunks, 0, sb.file.length)).equals(sb.file));
      assert.equal(statSync(join(work, `${sb.info.blobId}.blob.data`)).size, sb.info.uncompressedSize);
    } finally {
      await fresh.close();
    }
  } finally {
    await service.close();
  }
});
