/**
 * BlobMeta's offset index (src/storage/blob-meta.ts): a readahead-log replay finds the chunks of
 * its ranges by binary search over the CI's compressed offsets instead of listing every chunk of
 * the blob, which is only right while the CI is in offset order; a CI that is not says so.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { decodeChunkInfoArray, parseBlobMetaRegion } from '../../src/rafs/index.js';
import { BlobMeta } from '../../src/storage/index.js';
import { buildBlob } from '../helpers/storage-fixtures.js';

function metaOf(sb: ReturnType<typeof buildBlob>, reorder?: (ci: Buffer) => void): BlobMeta {
  const { metaCiOffset: at, metaCiCompressedSize: cs } = sb.info;
  const region = sb.blob.subarray(at, at + cs + 4096);
  const parsed = parseBlobMetaRegion(region, sb.info);
  const ci = Buffer.from(parsed.ci.bytes);
  reorder?.(ci);
  return new BlobMeta(parsed.header, decodeChunkInfoArray(ci, parsed.header), Buffer.from(region.subarray(cs)));
}

test('blob meta: the CI of a built blob is in offset order and lowerBound finds each chunk', () => {
  const sb = buildBlob({ withCi: true });
  const meta = metaOf(sb);
  assert.equal(meta.offsetSorted, true);
  for (const c of sb.chunks) {
    assert.equal(meta.ci.compressedOffset(c.chunkIndex), c.compressedOffset);
    assert.equal(meta.lowerBound(c.compressedOffset), c.chunkIndex, `chunk ${c.chunkIndex} starts there`);
    assert.equal(meta.lowerBound(c.compressedOffset + 1), c.chunkIndex + 1, `chunk ${c.chunkIndex + 1} is the next start`);
  }
  assert.equal(meta.lowerBound(0), 0);
  assert.equal(meta.lowerBound(Number.MAX_SAFE_INTEGER), sb.chunks.length);
});

test('blob meta: a CI out of offset order is not searched', () => {
  const sb = buildBlob({ withCi: true });
  // Entries 2 and 3 swapped (24-byte v2 entries).
  const meta = metaOf(sb, (ci) => {
    const e2 = Buffer.from(ci.subarray(48, 72));
    ci.copy(ci, 48, 72, 96);
    e2.copy(ci, 72);
  });
  assert.equal(meta.ci.compressedOffset(2), sb.chunks[3]?.compressedOffset);
  assert.equal(meta.offsetSorted, false);
});
