/**
 * Blob cache robustness through the storage API (issue 13 item 6): a cache directory that runs
 * out of space (a real tmpfs mounted with a small size), damaged chunk maps and data files found
 * at open, and two users of one work_dir.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, openSync, closeSync, readFileSync, rmSync, statSync, truncateSync, unlinkSync, writeFileSync, ftruncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, test } from 'node:test';

import { openChunkMap } from '../../src/native/index.js';
import { StorageService } from '../../src/storage/index.js';
import type { ChunkInfo } from '../../src/storage/index.js';
import { createLogger } from '../../src/util/logger.js';
import { buildBlob } from '../helpers/storage-fixtures.js';
import type { SyntheticBlob } from '../helpers/storage-fixtures.js';

const tmpRoot = mkdtempSync(join(tmpdir(), 'nydus-cache-robust-'));
const mounts: string[] = [];
after(() => {
  for (const m of mounts) execFileSync('umount', ['-l', m]);
  rmSync(tmpRoot, { recursive: true, force: true });
});
let seq = 0;
function freshDir(): string {
  const d = join(tmpRoot, `w${seq++}`);
  mkdirSync(d);
  return d;
}

const kRootSkip = process.getuid?.() === 0 ? false : 'mounting a small tmpfs needs root';

/** A logger whose lines the test reads. */
function capture(): { log: ReturnType<typeof createLogger>; lines: () => string[] } {
  const out: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      out.push(...chunk.toString().split('\n').filter(Boolean));
      cb();
    },
  });
  return { log: createLogger({ level: 'info', stream }), lines: () => out };
}

async function service(sb: SyntheticBlob[], work: string, o: { log?: ReturnType<typeof createLogger>; validate?: boolean; spillLimit?: number; retryMs?: number } = {}) {
  const blobs = freshDir();
  for (const b of sb) writeFileSync(join(blobs, b.info.blobId), b.blob);
  return StorageService.create(
    {
      backend: { type: 'localfs' as const, config: { dir: blobs, blob_file: '', alt_dirs: [] } },
      backendKey: 'backend.localfs',
      cache: { kind: 'blobcache' as const, workDir: work, workDirKey: 'cache.filecache.work_dir' },
      validate: o.validate ?? false,
      batchSize: 0,
    },
    o.log,
    { ...(o.spillLimit !== undefined ? { spillLimit: o.spillLimit } : {}), cacheHealth: { retryMs: o.retryMs ?? 50 } },
  );
}

/** 32 chunks of 16 KiB (512 KiB uncompressed, incompressible halves). */
function bigBlob(): SyntheticBlob {
  return buildBlob({ compressor: 'zstd', sizes: new Array<number>(32).fill(16384) });
}

for (const validate of [false, true]) {
  test(`a full cache directory keeps serving reads; the failure is logged once; writes resume after space is freed (digest_validate ${String(validate)})`, { skip: kRootSkip }, async () => {
    const work = freshDir();
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=256k', 'nydus-enospc', work]);
    mounts.push(work);
    const sb = bigBlob();
    const { log, lines } = capture();
    const svc = await service([sb], work, { log, validate });
    // Leave a few KiB free: the chunk map fits, the data does not.
    const filler = join(work, 'filler');
    const fd = openSync(filler, 'w');
    try {
      writeFileSync(fd, Buffer.alloc(200 * 1024, 1));
    } catch {
      // ENOSPC: the filler took what there was.
    }
    closeSync(fd);
    try {
      const image = await svc.openImage([sb.info]);
      const half = (sb.chunks[16] as ChunkInfo).fileOffset;
      // Chunk by chunk, so that many fills fail, not one.
      for (let off = 0; off < half; off += 16384) {
        const got = await image.read(sb.chunks, off, 16384);
        assert.ok(got.equals(sb.file.subarray(off, off + 16384)), `bytes at ${off}`);
      }
      const c = svc.counters;
      assert.ok(c.cacheWriteErrors >= 1, `cache write errors ${c.cacheWriteErrors}`);
      assert.ok(c.chunksSpilled >= 8, `spilled ${c.chunksSpilled}`);
      const failures = lines().filter((l) => l.includes('serving data from the backend without caching'));
      assert.equal(failures.length, 1, lines().join('\n'));
      assert.match(failures[0] ?? '', /ENOSPC/);
      const map = openChunkMap(join(work, `${sb.info.blobId}.blob.data.chunk_map`), sb.info.chunkCount);
      try {
        let markedWithoutData = 0;
        for (let i = 0; i < 16; i++) if (map.isReady(i)) markedWithoutData++;
        assert.ok(markedWithoutData < 16, 'spilled chunks are not marked ready in the chunk map');
      } finally {
        map.close();
      }
      // Reading again is served from memory: no new backend reads.
      const before = c.backendReads;
      assert.ok((await image.read(sb.chunks, 0, half)).equals(sb.file.subarray(0, half)));
      assert.equal(c.backendReads, before);
      // Space is freed: after the retry delay the next fills land in the cache file.
      unlinkSync(filler);
      await new Promise((r) => setTimeout(r, 120));
      assert.ok((await image.read(sb.chunks, half, 4 * 16384)).equals(sb.file.subarray(half, half + 4 * 16384)));
      assert.ok(lines().some((l) => l.includes('cache writes succeed again')), lines().join('\n'));
      const cached = (image.blob(0) as unknown as { chunkMap: { isReady(i: number): boolean } }).chunkMap;
      for (let i = 16; i < 20; i++) assert.equal(cached.isReady(i), true, `chunk ${i} is in the cache file`);
      await image.close();
    } finally {
      await svc.close();
    }
  });
}

test('the in-memory spill is bounded: the oldest chunks are evicted and fetched again when read', { skip: kRootSkip }, async () => {
  const work = freshDir();
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=16k', 'nydus-enospc', work]);
  mounts.push(work);
  const sb = bigBlob();
  const svc = await service([sb], work, { spillLimit: 64 * 1024, retryMs: 60_000 });
  try {
    const image = await svc.openImage([sb.info]);
    for (let pass = 0; pass < 2; pass++) {
      for (let off = 0; off < sb.file.length; off += 16384) {
        assert.ok((await image.read(sb.chunks, off, 16384)).equals(sb.file.subarray(off, off + 16384)), `pass ${pass} at ${off}`);
      }
    }
    assert.ok(svc.counters.chunksSpilled > 32, `evicted chunks were fetched again (${svc.counters.chunksSpilled})`);
    await image.close();
  } finally {
    await svc.close();
  }
});

test('damaged chunk maps are rebuilt at open with a warning and never serve stale bits', async () => {
  const sb = bigBlob();
  const work = freshDir();
  const mapPath = join(work, `${sb.info.blobId}.blob.data.chunk_map`);
  const warm = async (): Promise<void> => {
    const svc = await service([sb], work);
    const image = await svc.openImage([sb.info]);
    assert.ok((await image.read(sb.chunks, 0, sb.file.length)).equals(sb.file));
    await image.close();
    await svc.close();
  };
  const damages: [string, () => void, RegExp][] = [
    ['truncated', () => truncateSync(mapPath, 4096), /size 4096, expected/],
    ['wrong size', () => writeFileSync(mapPath, Buffer.concat([readFileSync(mapPath), Buffer.alloc(3)])), /expected/],
    [
      'bad magic',
      () => {
        const b = readFileSync(mapPath);
        b.writeUInt32LE(0xdeadbeef, 0);
        writeFileSync(mapPath, b);
      },
      /bad header magic/,
    ],
  ];
  for (const [what, damage, reason] of damages) {
    await warm();
    damage();
    // The data file is garbage too: a rebuilt map must not trust any of it.
    writeFileSync(join(work, `${sb.info.blobId}.blob.data`), Buffer.alloc(sb.info.uncompressedSize, 0x5a));
    const { log, lines } = capture();
    const svc = await service([sb], work, { log });
    try {
      const image = await svc.openImage([sb.info]);
      assert.ok((await image.read(sb.chunks, 0, sb.file.length)).equals(sb.file), what);
      assert.equal(svc.counters.hits, 0, `${what}: nothing came from the damaged cache`);
      const warn = lines().filter((l) => l.includes('was damaged'));
      assert.equal(warn.length, 1, `${what}: ${lines().join('\n')}`);
      assert.match(warn[0] ?? '', reason);
      await image.close();
    } finally {
      await svc.close();
    }
    assert.equal(statSync(mapPath).size, 4096 + 4, what);
  }
});

test('ready bits over data that is not in the data file (lost in a crash) are cleared at open', async () => {
  const sb = bigBlob();
  const work = freshDir();
  const data = join(work, `${sb.info.blobId}.blob.data`);
  // With chunk ranges (from the bootstrap or the blob meta) every chunk is checked; without
  // them, a data file with no data at all still clears every bit.
  const byIndex = new Map(sb.chunks.map((c) => [c.chunkIndex, c]));
  const withRanges = { chunkLookup: () => (i: number) => byIndex.get(i) };
  for (const loss of ['data file replaced by an empty one', 'hole punched'] as const) {
    const opts = loss === 'hole punched' ? withRanges : {};
    {
      const svc = await service([sb], work);
      const image = await svc.openImage([sb.info], opts);
      assert.ok((await image.read(sb.chunks, 0, sb.file.length)).equals(sb.file));
      await image.close();
      await svc.close();
    }
    if (loss === 'hole punched') {
      execFileSync('fallocate', ['--punch-hole', '--offset', String(5 * 16384), '--length', String(3 * 16384), data]);
    } else {
      const fd = openSync(data, 'r+');
      ftruncateSync(fd, 0);
      closeSync(fd);
    }
    const { log, lines } = capture();
    const svc = await service([sb], work, { log });
    try {
      const image = await svc.openImage([sb.info], opts);
      assert.ok((await image.read(sb.chunks, 0, sb.file.length)).equals(sb.file), loss);
      const want = loss === 'hole punched' ? 3 : 32;
      assert.equal(svc.counters.misses, want, `${loss}: only the lost chunks are fetched again`);
      assert.ok(lines().some((l) => l.includes(`${want} chunk(s) marked ready`)), `${loss}: ${lines().join('\n')}`);
      await image.close();
    } finally {
      await svc.close();
    }
  }
});

test('two users of one work_dir share the cache; only the first may repair, a later one serves without a cache instead', async () => {
  const sb = bigBlob();
  const work = freshDir();
  const a = await service([sb], work);
  const b = await service([sb], work);
  const capB = capture();
  try {
    const ia = await a.openImage([sb.info]);
    const ib = await b.openImage([sb.info]);
    // Interleaved reads of both: every byte right, and what one fetched the other finds.
    const reads: Promise<void>[] = [];
    for (let off = 0; off < sb.file.length; off += 16384) {
      for (const img of [ia, ib]) reads.push(img.read(sb.chunks, off, 16384).then((got) => assert.ok(got.equals(sb.file.subarray(off, off + 16384)))));
    }
    await Promise.all(reads);
    assert.ok(a.counters.chunksFilled + b.counters.chunksFilled >= 32);
    await ib.close();
    // While `a` has the blob open, a damaged data file is not repaired by another opener: that
    // one serves the blob from the backend, and `a` keeps its cache.
    writeFileSync(join(work, `${sb.info.blobId}.blob.data`), Buffer.alloc(1), { flag: 'a' });
    const c = await service([sb], work, { log: capB.log });
    const ic = await c.openImage([sb.info]);
    assert.ok((await ic.read(sb.chunks, 0, sb.file.length)).equals(sb.file));
    assert.ok(capB.lines().some((l) => /another process uses it; serving blob \S+ from the backend without a cache/.test(l)), capB.lines().join('\n'));
    assert.ok((await ia.read(sb.chunks, 0, sb.file.length)).equals(sb.file));
    await ic.close();
    await c.close();
    await ia.close();
  } finally {
    await a.close();
    await b.close();
  }
});
