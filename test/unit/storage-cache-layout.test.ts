/**
 * Cache formats from configuration to files (issue 13 item 5): `cache.compressed` and the
 * filecache encryption keys are checked as upstream checks them, and each blob gets upstream's
 * files (`.blob.raw` sized to the compressed chunk data; `.blob.data` otherwise; the chunk map
 * always `<blob_id>.blob.data.chunk_map`).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { ConfigError, parseConfigText } from '../../src/config/index.js';
import { noBlobMeta } from '../../src/rafs/blob/types.js';
import { kBlobFeatures } from '../../src/rafs/layout/constants.js';
import { CacheLayout, compressedDataSize } from '../../src/storage/cache-layout.js';
import { storageSettings } from '../../src/storage/index.js';
import type { BlobInfo } from '../../src/storage/index.js';
import { NotSupportedError } from '../../src/util/errors.js';

const kKey = '000102030405060708090a0b0c0d0e0f' + '101112131415161718191a1b1c1d1e1f';

function v2(filecache: Record<string, unknown>, compressed = false): ReturnType<typeof storageSettings> {
  return storageSettings(parseConfigText(JSON.stringify({ version: 2, backend: { type: 'localfs', localfs: { dir: '/d' } }, cache: { type: 'filecache', compressed, filecache: { work_dir: '/w', ...filecache } } })).config);
}

function blob(o: Partial<BlobInfo> = {}): BlobInfo {
  return {
    index: 0,
    blobId: 'ab'.repeat(32),
    chunkCount: 4,
    chunkSize: 0x10000,
    compressor: 'zstd',
    digester: 'blake3',
    features: 0,
    compressedSize: 5000,
    uncompressedSize: 10_000,
    ...noBlobMeta(),
    ...o,
  };
}

test('settings: cache.compressed and encryption become the cache format; bad keys and combinations are refused', () => {
  const raw = v2({}, true).cache;
  assert.equal(raw.kind, 'blobcache');
  assert.deepEqual(raw.kind === 'blobcache' ? raw.format : undefined, { compressed: true });
  const enc = v2({ enable_encryption: true, encryption_key: kKey }).cache;
  assert.ok(enc.kind === 'blobcache' && enc.format?.encryption);
  assert.ok(enc.format.encryption.key.equals(Buffer.from(kKey, 'hex')));
  assert.equal(enc.format.encryption.convergent, false);
  const conv = v2({ enable_encryption: true, enable_convergent_encryption: true, encryption_key: kKey }).cache;
  assert.equal(conv.kind === 'blobcache' && conv.format?.encryption?.convergent, true);
  // Convergent without enable_encryption is nothing (as upstream).
  assert.deepEqual(((c) => (c.kind === 'blobcache' ? c.format : undefined))(v2({ enable_convergent_encryption: true }).cache), { compressed: false });

  assert.throws(() => v2({ enable_encryption: true }), (e: unknown) => e instanceof ConfigError && /cache\.filecache\.encryption_key: must be 64 hex digits/.test(e.message));
  assert.throws(() => v2({ enable_encryption: true, enable_convergent_encryption: true, encryption_key: 'xyz' }), ConfigError);
  assert.throws(() => v2({ enable_encryption: true, encryption_key: 'ab'.repeat(32) }), /two 16-byte halves are equal/);
  assert.throws(() => v2({ enable_encryption: true, encryption_key: kKey }, true), (e: unknown) => e instanceof ConfigError && /cache\.compressed and cache\.filecache\.enable_encryption cannot be combined/.test(e.message));
  // v1 names the v1 keys.
  const v1 = (): unknown =>
    storageSettings(parseConfigText(JSON.stringify({ device: { backend: { type: 'localfs', config: { dir: '/d' } }, cache: { type: 'blobcache', config: { work_dir: '/w', enable_encryption: true, encryption_key: '12' } } } })).config, 'v1');
  assert.throws(v1, /device\.cache\.config\.encryption_key/);
});

test('layout: upstream file names and sizes per format; gzip and RAFS v5 are refused where they cannot work', () => {
  const info = blob();
  const plain = CacheLayout.for(info, '/w', undefined, false);
  assert.equal(plain.kind, 'plain');
  assert.equal(plain.dataPath, `/w/${info.blobId}.blob.data`);
  assert.equal(plain.mapPath, `/w/${info.blobId}.blob.data.chunk_map`);
  assert.deepEqual([plain.minSize, plain.maxSize], [10_000, 10_000]);

  const raw = CacheLayout.for(info, '/w', { compressed: true }, false);
  assert.equal(raw.dataPath, `/w/${info.blobId}.blob.raw`);
  assert.equal(raw.mapPath, plain.mapPath);
  assert.deepEqual([raw.minSize, raw.maxSize], [5000, 5000]);
  const c = { compressedOffset: 100, compressedSize: 50, uncompressedOffset: 8192, uncompressedSize: 5000 };
  assert.deepEqual(raw.storedRange(c), { offset: 100, size: 50 });

  const key = Buffer.from(kKey, 'hex');
  const enc = CacheLayout.for(info, '/w', { compressed: false, encryption: { key, convergent: false } }, false);
  assert.equal(enc.dataPath, plain.dataPath);
  assert.deepEqual([enc.minSize, enc.maxSize], [10_000, 12_288]);
  assert.deepEqual(enc.storedRange(c), { offset: 8192, size: 8192 });

  assert.throws(() => CacheLayout.for(blob({ compressor: 'gzip' }), '/w', { compressed: true }, false), /gzip/);
  assert.throws(() => CacheLayout.for(blob({ readaheadOffset: 0, readaheadSize: 0 }), '/w', { compressed: false, encryption: { key, convergent: false } }, false), NotSupportedError);
});

test('compressed data size follows upstream: without CI, TOC and tar header', () => {
  assert.equal(compressedDataSize(blob()), 5000);
  const toc = kBlobFeatures.CAP_TAR_TOC;
  assert.equal(compressedDataSize(blob({ features: toc, metaCiOffset: 4000, metaCiCompressedSize: 300 })), 4000);
  assert.equal(compressedDataSize(blob({ features: toc | kBlobFeatures.HAS_TAR_HEADER, metaCiOffset: 4512, metaCiCompressedSize: 300 })), 4000);
  assert.equal(compressedDataSize(blob({ features: toc | kBlobFeatures.HAS_TAR_HEADER })), 5000 - 512);
  assert.equal(compressedDataSize(blob({ features: toc | kBlobFeatures.SEPARATE, metaCiOffset: 4000, metaCiCompressedSize: 300 })), 5000);
});
