/**
 * Requests fill their chunks while the bytes arrive (src/storage/stream-fill.ts): the chunks of
 * the half of a request that arrived are cached (decoded, digest-checked) while the rest is still
 * on its way; when the request fails after that, only the chunks that had not arrived fail. An
 * on-demand miss is served once its own chunk arrived, before the amplify_io window behind it. The backend here is an in-process stand-in for a slow link that reports
 * progress and then holds (the HTTP progress path itself is tested against a real server in
 * test/unit/storage-http-progress.test.ts and through nginx in storage-remote-readahead).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';

import type { BlobCacheContext, RawBackend, ReadOptions } from '../../src/storage/index.js';
import { BlobBackend, CachedBlob, newCounters, StorageError } from '../../src/storage/index.js';
import { nullLogger } from '../../src/util/logger.js';
import { buildBlob } from '../helpers/storage-fixtures.js';

const root = mkdtempSync(join(tmpdir(), 'nydus-streamfill-'));
after(() => rmSync(root, { recursive: true, force: true }));

/**
 * Serves one blob; a read longer than `holdAbove` that asks for progress gets its first half
 * reported, then waits.
 */
class HalfThenHold implements RawBackend {
  readonly type = 'half-then-hold';
  held = 0;
  private _release: ((ok: boolean) => void)[] = [];
  constructor(
    private readonly _blob: Buffer,
    private readonly _holdAbove = 0,
  ) {}
  size(): Promise<number> {
    return Promise.resolve(this._blob.length);
  }
  async tryRead(blobId: string, offset: number, length: number, _signal?: AbortSignal, opts: ReadOptions = {}): Promise<Buffer> {
    const buf = Buffer.from(this._blob.subarray(offset, offset + length));
    if (!opts.onProgress || length <= this._holdAbove) return buf;
    opts.onProgress(buf, length >> 1);
    this.held++;
    const ok = await new Promise<boolean>((r) => this._release.push(r));
    if (!ok) throw new StorageError('ERR_BACKEND', `blob ${blobId}: the link died`);
    opts.onProgress(buf, length);
    return buf;
  }
  release(ok: boolean): void {
    for (const r of this._release.splice(0)) r(ok);
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 500 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(cond(), what);
}

for (const outcome of ['delivered', 'failed'] as const) {
  test(`a readahead request fills the chunks that arrived before it ${outcome === 'delivered' ? 'ends' : 'fails'}`, async () => {
    const sb = buildBlob({ sizes: Array.from({ length: 48 }, () => 64 * 1024), compressor: 'none' });
    // The misses' own requests (128 KiB: amplify_io's minimum) pass; readahead's are held.
    const raw = new HalfThenHold(sb.blob, 128 * 1024);
    const counters = newCounters();
    const ctx: BlobCacheContext = {
      backend: new BlobBackend(raw),
      workDir: mkdtempSync(join(root, 'cache-')),
      validate: true,
      batchSize: 0,
      counters,
      log: nullLogger(),
      readahead: { initialWindow: 16 * 64 * 1024, maxWindow: 16 * 64 * 1024, requestBytes: 16 * 64 * 1024 },
    };
    const blob = await CachedBlob.open(sb.info, ctx, { chunkLookup: (i) => sb.chunks[i] });
    try {
      const chunk = (i: number) => sb.chunks[i] as NonNullable<(typeof sb.chunks)[number]>;
      // Three forward misses: the third starts the stream, one request ahead of chunk 5.
      for (const i of [0, 2, 4]) await blob.ensureReady([chunk(i)]);
      await until(() => raw.held === 1, 'one readahead request held');
      assert.ok(counters.chunksReadahead > 2);
      const ahead = Array.from({ length: counters.chunksReadahead }, (_, k) => 6 + k);
      const last = ahead.at(-1) as number;
      // The first half of the request arrived: its chunks are cached while it is held.
      await until(() => blob.isReady(6), 'chunk 6 cached while its request is still held');
      assert.equal(blob.isReady(last), false, `chunk ${last} has not arrived`);
      raw.release(outcome === 'delivered');
      await blob.settled();
      const ready = ahead.filter((i) => blob.isReady(i));
      if (outcome === 'delivered') {
        assert.deepEqual(ready, ahead);
      } else {
        assert.ok(ready.length > 0 && ready.length < ahead.length, `ready: ${ready.join(',')}`);
        assert.equal(blob.isReady(last), false);
      }
      // What was cached is the right data.
      const out = Buffer.alloc(chunk(6).uncompressedSize);
      await blob.readInto([chunk(6)], chunk(6).fileOffset, out);
      assert.ok(out.equals(sb.file.subarray(chunk(6).fileOffset, chunk(6).fileOffset + out.length)));
    } finally {
      raw.release(true);
      await blob.close();
    }
  });
}

test('an on-demand miss is served once its chunk arrived, before the amplified rest of its request', async () => {
  const sb = buildBlob({ sizes: Array.from({ length: 16 }, () => 64 * 1024), compressor: 'none' });
  const raw = new HalfThenHold(sb.blob);
  const counters = newCounters();
  // amplify_io 1 MiB: a miss on chunk 0 fetches chunks 0..15 in one request.
  const ctx: BlobCacheContext = { backend: new BlobBackend(raw), workDir: mkdtempSync(join(root, 'cache-')), validate: true, batchSize: 1024 * 1024, counters, log: nullLogger() };
  const blob = await CachedBlob.open(sb.info, ctx, { chunkLookup: (i) => sb.chunks[i] });
  try {
    const chunk = (i: number) => sb.chunks[i] as NonNullable<(typeof sb.chunks)[number]>;
    let served = false;
    const miss = blob.ensureReady([chunk(0)]).then(() => (served = true));
    await until(() => served, 'the miss is served while its request is held with only its first half delivered');
    await miss;
    assert.equal(raw.held, 1);
    assert.equal(counters.chunksAmplified, 15);
    assert.equal(blob.isReady(15), false, 'chunk 15 has not arrived');
    const out = Buffer.alloc(chunk(0).uncompressedSize);
    await blob.readInto([chunk(0)], chunk(0).fileOffset, out);
    assert.ok(out.equals(sb.file.subarray(0, out.length)));
    raw.release(true);
    await blob.settled();
    assert.ok(Array.from({ length: 16 }, (_, i) => blob.isReady(i)).every(Boolean));
  } finally {
    raw.release(true);
    await blob.close();
  }
});
