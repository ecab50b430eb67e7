/**
 * Demand-path readahead for local backends (src/storage/readahead.ts kLocalReadaheadDefaults):
 * a sequential reader of a localfs blob causes readahead fills of exactly the chunks after its
 * own misses, a bounded number of requests at a time, every compressed byte fetched once; a random reader causes
 * none; a readahead request that fails (the blob file ends early) ends the stream without
 * failing the READs that joined it; closing the storage with a readahead fill running ends it
 * and fetches nothing more. Every byte is checked (digest validation on).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';

import { kLocalFsSchema } from '../../src/config/schema-common.js';
import type { FetchRange } from '../../src/storage/fetch-plan.js';
import type { ImageStorage, StorageSettings } from '../../src/storage/index.js';
import { StorageService } from '../../src/storage/index.js';
import { kLocalReadaheadDefaults } from '../../src/storage/readahead.js';
import type { SyntheticBlob } from '../helpers/storage-fixtures.js';
import { buildBlob } from '../helpers/storage-fixtures.js';

const kChunks = 160;
const kChunkSize = 64 * 1024;
/** amplify_io 0: each miss fetches upstream's floor, 128 KiB (two chunks here). */
const kAmplify = 2;

describe('demand-path readahead on localfs', { timeout: 60_000 }, () => {
  const work = mkdtempSync(join(tmpdir(), 'nydusd-local-ra-'));
  after(() => rmSync(work, { recursive: true, force: true }));
  const sb: SyntheticBlob = buildBlob({ sizes: Array.from({ length: kChunks }, () => kChunkSize), compressor: 'none' });
  sb.info.blobId = createHash('sha256').update(sb.blob).digest('hex');
  let fresh = 0;

  /** A storage service over a blob directory holding `blob` (default: the whole blob). */
  async function open(blob: Buffer = sb.blob): Promise<{ svc: StorageService; img: ImageStorage; fetched: FetchRange[] }> {
    const dir = join(work, `run-${fresh++}`);
    mkdirSync(join(dir, 'blobs'), { recursive: true });
    mkdirSync(join(dir, 'cache'));
    writeFileSync(join(dir, 'blobs', sb.info.blobId), blob);
    const settings: StorageSettings = {
      backend: { type: 'localfs', config: kLocalFsSchema.parse({ dir: join(dir, 'blobs') }) },
      backendKey: 'backend.localfs',
      cache: { kind: 'blobcache', workDir: join(dir, 'cache'), workDirKey: 'cache.filecache.work_dir' },
      validate: true,
      batchSize: 0,
    };
    const svc = await StorageService.create(settings);
    const img = await svc.openImage([sb.info], { chunkLookup: () => (i) => sb.chunks[i] });
    const fetched: FetchRange[] = [];
    img.observeFetches((_b, r) => fetched.push(r));
    return { svc, img, fetched };
  }

  async function readChunk(img: ImageStorage, i: number): Promise<void> {
    const c = sb.chunks[i];
    assert.ok(c);
    const got = await img.read([c], c.fileOffset, c.uncompressedSize);
    assert.ok(got.equals(sb.file.subarray(c.fileOffset, c.fileOffset + c.uncompressedSize)), `chunk ${i}`);
  }

  const idx = (r: FetchRange): number[] => r.chunks.map((c) => c.chunkIndex);

  test('a sequential reader: readahead fills exactly the chunks after its misses, in blob order', async () => {
    const { svc, img, fetched } = await open();
    for (let i = 0; i < kChunks; i++) await readChunk(img, i);
    const { cache, backend } = svc.stats();
    await svc.close();
    // Misses at 0 and 2 (amplified to two chunks each) are not a stream yet; the one at 4 is:
    // readahead starts right after its fetch, at chunk 6.
    assert.deepEqual(fetched.slice(0, 3).map(idx), [[0, 1], [2, 3], [4, 5]]);
    assert.equal(fetched[3]?.chunks[0]?.chunkIndex, 6);
    assert.ok(cache.chunksReadahead >= kChunks / 2, `${cache.chunksReadahead} chunks read ahead`);
    // Every chunk was fetched exactly once, in blob order (readahead hands out consecutive
    // requests and the reader misses only past them: no overlap, no gap).
    const order = fetched.flatMap(idx);
    assert.deepEqual(order, Array.from({ length: kChunks }, (_, i) => i));
    assert.equal(backend.readBytes, sb.info.compressedSize);
    // Requests stay within the local request size, and few are needed.
    for (const r of fetched) assert.ok(r.length <= kLocalReadaheadDefaults.requestBytes, `request of ${r.length} bytes`);
    assert.ok(fetched.length <= 3 + Math.ceil(sb.info.compressedSize / kLocalReadaheadDefaults.requestBytes) + 4, `${fetched.length} requests`);
    assert.equal(cache.chunksFilled, kChunks);
  });

  test('a random reader causes no readahead', async () => {
    const { svc, img, fetched } = await open();
    // Strides of 67 chunks (mod 160): never a forward step of one or two chunks.
    for (let k = 0; k < kChunks; k++) await readChunk(img, (k * 67) % kChunks);
    const { cache } = svc.stats();
    await svc.close();
    assert.equal(cache.chunksReadahead, 0);
    for (const r of fetched) assert.ok(r.chunks.length <= kAmplify, `chunks ${idx(r).join(',')}`);
  });

  test('a failed readahead ends the stream; a READ that joined it is served on demand', async () => {
    // The blob file ends after chunk 19: the first readahead request (chunk 6 on) runs past it.
    const end = sb.chunks[19];
    assert.ok(end);
    const { svc, img, fetched } = await open(sb.blob.subarray(0, end.compressedOffset + end.compressedSize));
    await readChunk(img, 0);
    await readChunk(img, 2);
    // The miss at 4 starts readahead at chunk 6; the READ of 6, in the same turn, joins it.
    await Promise.all([readChunk(img, 4), readChunk(img, 6)]);
    assert.deepEqual(fetched.slice(0, 3).map(idx), [[0, 1], [2, 3], [4, 5]]);
    assert.equal(fetched[3]?.chunks[0]?.chunkIndex, 6, 'readahead from chunk 6');
    assert.ok((fetched[3]?.chunks.length ?? 0) > kAmplify);
    const again = fetched.slice(4).find((r) => r.chunks[0]?.chunkIndex === 6);
    assert.deepEqual(again && idx(again), [6, 7], 'chunk 6 fetched again on demand, one amplify_io window');
    for (let i = 7; i < 20; i++) await readChunk(img, i);
    const { backend } = svc.stats();
    await svc.close();
    assert.ok(backend.readErrors >= 1, 'the readahead request failed');
  });

  test('closing the storage with a readahead fill running ends readahead', async () => {
    const { svc, img, fetched } = await open();
    for (let i = 0; i < 5; i++) await readChunk(img, i);
    const { cache } = svc.stats();
    assert.ok(cache.chunksReadahead > 0, 'a readahead request is in flight');
    const issued = fetched.length;
    await svc.close();
    // Its delivery after close planned nothing more.
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(fetched.length, issued);
    await assert.rejects(() => readChunk(img, 100), /closed/);
  });
});
