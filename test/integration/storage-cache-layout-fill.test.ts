/**
 * Compressed (`.blob.raw`) and encrypted caches are stores of the one native fill
 * (native/core/cache/layout_store.h): a miss through CachedBlob writes the layout's file on a fill
 * thread, sets the bits, and hits decode to the chunk's bytes. An encrypted cache checks digests
 * even when the configuration does not validate (XTS cannot tell damaged data), and a chunk the
 * layout cannot hold (no digest under convergent encryption) fails alone, never written.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';

import { BlobBackend, CachedBlob, newCounters } from '../../src/storage/index.js';
import type { BlobCacheContext } from '../../src/storage/index.js';
import type { CacheFormat } from '../../src/storage/cache-layout.js';
import { nullLogger } from '../../src/util/logger.js';
import { buildBlob, MemoryBackend } from '../helpers/storage-fixtures.js';
import type { SyntheticBlob } from '../helpers/storage-fixtures.js';

const tmpRoot = mkdtempSync(join(tmpdir(), 'nydus-layout-fill-'));
after(() => rmSync(tmpRoot, { recursive: true, force: true }));
const kKey = Buffer.from('a1b2c3d4e5f60718293a4b5c6d7e8f900f1e2d3c4b5a69788796a5b4c3d2e1f0', 'hex');

function ctxFor(sb: SyntheticBlob, name: string, format: CacheFormat, blob = sb.blob): BlobCacheContext {
  const workDir = join(tmpRoot, name);
  mkdirSync(workDir);
  return { backend: new BlobBackend(new MemoryBackend(new Map([[sb.info.blobId, blob]]))), workDir, validate: false, batchSize: 0, counters: newCounters(), log: nullLogger(), format };
}

async function readWhole(b: CachedBlob, sb: SyntheticBlob): Promise<Buffer> {
  const total = sb.data.reduce((n, d) => n + d.length, 0);
  const out = Buffer.alloc(total);
  await b.readInto(sb.chunks, 0, out);
  return out;
}

test('compressed cache: the native fill keeps the backend bytes at their compressed offsets; hits decode', async () => {
  const sb = buildBlob({ compressor: 'zstd' });
  const ctx = ctxFor(sb, 'raw', { compressed: true });
  const b = await CachedBlob.open(sb.info, ctx);
  try {
    await b.ensureReady(sb.chunks);
    for (const c of sb.chunks) assert.ok(b.chunkMap.isReady(c.chunkIndex), `chunk ${c.chunkIndex} ready`);
    assert.equal(ctx.counters.chunksFilled, sb.chunks.length);
    const raw = readFileSync(join(ctx.workDir, `${sb.info.blobId}.blob.raw`));
    for (const c of sb.chunks) {
      const at = [c.compressedOffset, c.compressedOffset + c.compressedSize] as const;
      assert.ok(raw.subarray(...at).equals(sb.blob.subarray(...at)), `chunk ${c.chunkIndex} stored as served`);
    }
    assert.ok((await readWhole(b, sb)).equals(Buffer.concat(sb.data)));
  } finally {
    await b.close();
  }
});

test('encrypted cache: the fill checks digests without validate, stores no plaintext, and hits decrypt', async () => {
  const sb = buildBlob({ compressor: 'lz4_block' });
  // The backend serves a stored (uncompressed) chunk with one byte changed: it "decodes" fine,
  // only its digest tells.
  const bad = Buffer.from(sb.blob);
  const victim = sb.chunks.find((c) => !c.compressed && c.uncompressedSize > 64) ?? assert.fail('a stored chunk');
  bad[victim.compressedOffset + 10] = (bad[victim.compressedOffset + 10] ?? 0) ^ 0x01;
  const ctx = ctxFor(sb, 'enc', { compressed: false, encryption: { key: kKey, convergent: false } }, bad);
  const b = await CachedBlob.open(sb.info, ctx);
  try {
    const good = sb.chunks.filter((c) => c !== victim);
    await b.ensureReady(good);
    await assert.rejects(b.ensureReady([victim]), { code: 'ERR_CHUNK_DIGEST' });
    assert.equal(b.chunkMap.isReady(victim.chunkIndex), false, 'a chunk that fails its digest is never marked');
    const disk = readFileSync(join(ctx.workDir, `${sb.info.blobId}.blob.data`));
    for (const [i, d] of sb.data.entries()) {
      if (d.length >= 64) assert.equal(disk.indexOf(d.subarray(0, 64)), -1, `plaintext of chunk ${i} on disk`);
    }
    for (const c of good) {
      const out = Buffer.alloc(c.uncompressedSize);
      await b.readInto([c], c.fileOffset, out);
      assert.ok(out.equals(sb.data[c.chunkIndex] ?? Buffer.alloc(0)), `chunk ${c.chunkIndex}`);
    }
  } finally {
    await b.close();
  }
});

test('convergent encryption: a chunk without a digest has no key and fails alone; the others are cached', async () => {
  const sb = buildBlob({ compressor: 'zstd' });
  const ctx = ctxFor(sb, 'conv', { compressed: false, encryption: { key: kKey, convergent: true } });
  const b = await CachedBlob.open(sb.info, ctx);
  try {
    const blind = { ...(sb.chunks[2] ?? assert.fail()), digest: Buffer.alloc(32) };
    await assert.rejects(b.ensureReady([blind]), { code: 'ERR_BAD_CHUNK' });
    assert.equal(b.chunkMap.isReady(blind.chunkIndex), false);
    const rest = sb.chunks.filter((c) => c.chunkIndex !== blind.chunkIndex);
    await b.ensureReady(rest);
    for (const c of rest) assert.ok(b.chunkMap.isReady(c.chunkIndex));
  } finally {
    await b.close();
  }
});
