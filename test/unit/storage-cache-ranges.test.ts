/**
 * The check of a warm cache's ready bits over holes (cache-files.ts dropBitsOverHoles) takes the
 * chunk ranges either one chunk at a time or all at once from the chunk info array
 * (CacheLayout.storedRanges, BlobChunkInfoArray.ranges). Both must give the same ranges and clear
 * the same bits.
 */
import assert from 'node:assert/strict';
import { closeSync, ftruncateSync, mkdirSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';

import { openChunkMap } from '../../src/native/index.js';
import { noBlobMeta } from '../../src/rafs/blob/types.js';
import type { BlobChunkInfoArray } from '../../src/rafs/index.js';
import { decodeChunkInfoArray, parseBlobMetaHeader } from '../../src/rafs/index.js';
import type { BlobInfo } from '../../src/storage/index.js';
import { dropBitsOverHoles } from '../../src/storage/cache-files.js';
import { CacheLayout } from '../../src/storage/cache-layout.js';
import { SynthBlob } from '../helpers/rafs-synth-blob.js';

const root = mkdtempSync(join(tmpdir(), 'nydus-ranges-'));
after(() => rmSync(root, { recursive: true, force: true }));

const kKey = { key: Buffer.alloc(32, 1), convergent: false };

/** A chunk info array of real and size-only chunks (sizes not all 4 KiB multiples). */
function chunkInfo(v2: boolean): { ci: BlobChunkInfoArray; info: BlobInfo } {
  const b = new SynthBlob('zstd', 'blake3', true, v2);
  b.add(Buffer.alloc(12_288, 1));
  b.add(Buffer.from('not a multiple of 4096 '.repeat(300)));
  b.addFake(4096);
  b.addFake(70_000);
  b.add(Buffer.alloc(8192, 2));
  const out = b.finish();
  const ci = decodeChunkInfoArray(out.ci, parseBlobMetaHeader(out.header));
  const last = ci.get(ci.count - 1);
  const info: BlobInfo = {
    index: 0,
    blobId: 'cd'.repeat(32),
    chunkCount: ci.count,
    chunkSize: 0x100000,
    compressor: 'zstd',
    digester: 'blake3',
    features: 0,
    compressedSize: last.compressedOffset + last.compressedSize,
    uncompressedSize: last.uncompressedOffset + last.uncompressedSize,
    ...noBlobMeta(),
  };
  return { ci, info };
}

test('storedRanges gives what storedRange gives for each entry, for every layout and both CI versions', () => {
  for (const v2 of [false, true]) {
    const { ci, info } = chunkInfo(v2);
    for (const format of [undefined, { compressed: true }, { compressed: false, encryption: kKey }]) {
      const layout = CacheLayout.for(info, root, format, false);
      const indexes = Uint32Array.from([4, 0, 2, 1, 3, 2, ci.count, 0xffffffff]);
      const got = Array.from(layout.storedRanges(ci).of(indexes));
      const want = Array.from(indexes).flatMap((i) => {
        if (i >= ci.count) return [Number.NaN, Number.NaN];
        const r = layout.storedRange(ci.get(i));
        return [r.offset, r.size];
      });
      assert.deepEqual(got, want, `${v2 ? 'v2' : 'v1'} ${layout.kind}`);
    }
  }
});

test('a v2 entry with undefined flags fails the bulk read as it fails get()', () => {
  const b = new SynthBlob('none', 'sha256', true, true);
  b.addFake(4096);
  b.addFake(4096);
  const out = b.finish();
  out.ci[24 + 7] = 0x40; // an undefined flag bit on chunk 1 (the top byte of its second word)
  const ci = decodeChunkInfoArray(out.ci, parseBlobMetaHeader(out.header));
  const expected = (() => {
    try {
      ci.get(1);
    } catch (err) {
      return err as Error;
    }
    throw new Error('get() accepted the entry');
  })();
  assert.throws(() => ci.ranges(Uint32Array.from([0, 1]), false), { message: expected.message });
  assert.deepEqual(Array.from(ci.ranges(Uint32Array.from([0]), false)), [0, 4096]);
});

/**
 * A plain cache of `info` in a fresh folder: the data file sized to the blob with only `written`
 * chunks' bytes in it (the rest holes), every chunk marked ready.
 */
function plainCache(name: string, ci: BlobChunkInfoArray, info: BlobInfo, written: number[], size = info.uncompressedSize): { dir: string; layout: CacheLayout } {
  const dir = join(root, name);
  const layout = CacheLayout.for(info, dir, undefined, false);
  mkdirSync(dir);
  const fd = openSync(layout.dataPath, 'w');
  for (const i of written) {
    const e = ci.get(i);
    writeSync(fd, Buffer.alloc(e.uncompressedSize, 0x5a), 0, e.uncompressedSize, e.uncompressedOffset);
  }
  // Holes after the last written chunk, or a file cut short.
  ftruncateSync(fd, size);
  closeSync(fd);
  const map = openChunkMap(layout.mapPath, info.chunkCount, true);
  for (let i = 0; i < info.chunkCount; i++) map.setReady(i);
  map.close();
  return { dir, layout };
}

/** Runs the check on the cache in `dir`; returns how many bits it cleared and which stay set. */
function check(layout: CacheLayout, info: BlobInfo, ranges: Parameters<typeof dropBitsOverHoles>[1]): { cleared: number; ready: number[] } {
  const map = openChunkMap(layout.mapPath, info.chunkCount, true);
  const fd = openSync(layout.dataPath, 'r');
  try {
    const cleared = dropBitsOverHoles({ fh: { fd } as never, map }, ranges);
    return { cleared, ready: Array.from(map.readyIndexes()) };
  } finally {
    closeSync(fd);
    map.close();
  }
}

test('ready bits over holes: the bulk ranges clear exactly the bits the per-chunk ranges clear', () => {
  for (const v2 of [false, true]) {
    const { ci, info } = chunkInfo(v2);
    const all = Array.from({ length: ci.count }, (_, i) => i);
    const last = ci.get(ci.count - 1);
    const cases: [string, number[], number | undefined, number[]][] = [
      ['every chunk written (one extent)', all, undefined, all],
      ['chunks 1 and 3 never written', [0, 2, 4], undefined, [0, 2, 4]],
      ['the data file cut inside the last chunk', all, last.uncompressedOffset + 4096, all.slice(0, -1)],
      ['nothing written', [], undefined, []],
    ];
    for (const [what, written, size, stays] of cases) {
      const label = `${v2 ? 'v2' : 'v1'}: ${what}`;
      const one = plainCache(`one-${v2}-${written.length}-${size ?? 0}`, ci, info, written, size);
      const byChunk = check(one.layout, info, (i) => (i < ci.count ? one.layout.storedRange(ci.get(i)) : undefined));
      const bulk = plainCache(`bulk-${v2}-${written.length}-${size ?? 0}`, ci, info, written, size);
      const byArray = check(bulk.layout, info, bulk.layout.storedRanges(ci));
      assert.deepEqual(byArray, byChunk, label);
      assert.deepEqual(byArray.ready, stays, label);
      assert.equal(byArray.cleared, ci.count - stays.length, label);
    }
  }
});
