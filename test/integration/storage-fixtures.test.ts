/**
 * The blob cache against upstream-made blobs (fixtures/nydus/INDEX.md): a RAFS v6 zstd blob with
 * CI and chunk digests, an inline-meta blob with a TOC, and the RAFS v5 repeatable blob whose
 * chunk records (with sha256 and blake3 digests) come from two upstream bootstraps.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';

import { decodeChunkInfoArray, parseBlobMetaHeader } from '../../src/rafs/index.js';
import { StorageService } from '../../src/storage/index.js';
import type { BlobInfo, ChunkInfo, StorageSettings } from '../../src/storage/index.js';
import { fixture, fixturesSkip } from '../helpers/paths.js';
import { readV5Image } from '../helpers/v5-chunks.js';

const skip = fixturesSkip();
const tmpRoot = mkdtempSync(join(tmpdir(), 'nydus-fixture-cache-'));
after(() => rmSync(tmpRoot, { recursive: true, force: true }));
let seq = 0;

function settings(dir: string, validate: boolean, kind: 'blobcache' | 'dummycache' = 'blobcache'): StorageSettings {
  return {
    backend: { type: 'localfs', config: { dir, blob_file: '', alt_dirs: [] } },
    backendKey: 'backend.localfs',
    // Caches always go to a temp dir: the fixtures are read in place and never written.
    cache: kind === 'blobcache' ? { kind, workDir: join(tmpRoot, `c${seq++}`), workDirKey: 'cache.filecache.work_dir' } : { kind },
    validate,
    batchSize: 1 << 20,
  };
}

const kV6Id = 'be7d77eeb719f70884758d1aa800ed0fb09d701aaec469964e9d54325f0d5fef';

function v6Fixture(): { info: BlobInfo; chunks: ChunkInfo[]; blob: Buffer } {
  const blob = readFileSync(fixture('tests/texture/blobs', kV6Id));
  // From INDEX.md: chunk data [0,7802), CI (2 x 16 B, uncompressed) @8314, header @8346,
  // chunk digests @12954; lib.rs = chunk 0, sync_io.rs = chunk 1; 9 blocks uncompressed.
  const info: BlobInfo = {
    index: 0,
    blobId: kV6Id,
    chunkCount: 2,
    compressor: 'zstd',
    digester: 'blake3',
    features: 0x70000021,
    compressedSize: 7802,
    uncompressedSize: 9 * 4096,
    metaCiCompressor: 'none',
    metaCiOffset: 8314,
    metaCiCompressedSize: 32,
    metaCiUncompressedSize: 32,
    chunkSize: 0x100000,
    tocSize: 1024,
    tocDigest: Buffer.alloc(32),
  };
  const digest = (i: number): Buffer => blob.subarray(12954 + 32 * i, 12954 + 32 * (i + 1));
  const chunks: ChunkInfo[] = [
    { fileOffset: 0, blobIndex: 0, chunkIndex: 0, compressedOffset: 0, compressedSize: 4828, uncompressedOffset: 0, uncompressedSize: 16931, compressed: true, digest: digest(0) },
    { fileOffset: 0, blobIndex: 0, chunkIndex: 1, compressedOffset: 4828, compressedSize: 2974, uncompressedOffset: 20480, uncompressedSize: 13400, compressed: true, digest: digest(1) },
  ];
  return { info, chunks, blob };
}

test('RAFS v6 zstd blob: chunks validate against the blob digests; blob.meta matches upstream', { skip }, async () => {
  const { info, chunks, blob } = v6Fixture();
  const s = settings(fixture('tests/texture/blobs'), true);
  const service = await StorageService.create(s);
  try {
    const image = await service.openImage([info]);
    const lib = await image.read([chunks[0] as ChunkInfo], 0, 16931);
    const sync = await image.read([chunks[1] as ChunkInfo], 0, 13400);
    assert.match(lib.toString('utf8', 0, 80), /^\/\/ Copyright/);
    assert.match(sync.toString(), /fn /);
    assert.equal(service.stats().cache.digestErrors, 0);
    const work = s.cache.kind === 'blobcache' ? s.cache.workDir : '';
    const meta = readFileSync(join(work, `${kV6Id}.blob.meta`));
    assert.equal(meta.length, 4096 + 4096);
    assert.ok(meta.subarray(0, 32).equals(blob.subarray(8314, 8346)), 'uncompressed CI');
    assert.ok(meta.subarray(32, 4096).equals(Buffer.alloc(4096 - 32)));
    assert.ok(meta.subarray(4096).equals(blob.subarray(8346, 8346 + 4096)), 'header as in the blob');
  } finally {
    await service.close();
  }
  // Warm restart: zero backend reads, same bytes.
  const again = await StorageService.create(s);
  try {
    const image = await again.openImage([info]);
    const lib = await image.read([chunks[0] as ChunkInfo], 0, 16931);
    assert.match(lib.toString('utf8', 0, 80), /^\/\/ Copyright/);
    assert.equal(again.stats().backend.readCount, 0);
  } finally {
    await again.close();
  }
});

test('RAFS v6 blob: a tampered digest is rejected with EIO', { skip }, async () => {
  const { info, chunks } = v6Fixture();
  const service = await StorageService.create(settings(fixture('tests/texture/blobs'), true));
  try {
    const image = await service.openImage([info]);
    const bad = { ...(chunks[1] as ChunkInfo), digest: Buffer.from((chunks[0] as ChunkInfo).digest) };
    await assert.rejects(image.read([bad], 0, 100), { code: 'ERR_CHUNK_DIGEST', errno: 5 });
  } finally {
    await service.close();
  }
});

test('inline-meta TOC blob: chunks from its own CI decode to the three source files', { skip }, async () => {
  const id = '2fa78cad554b75ac91a4a125ed148d0ddeb25efa4aaa8bd80e5dc292690a4dca';
  const blob = readFileSync(fixture('tests/texture/toc', id));
  const headerAt = 3389; // CI (3 x 16 B) @3341, then its header (found by its magics)
  const header = parseBlobMetaHeader(blob.subarray(headerAt, headerAt + 4096));
  assert.equal(header.ciEntries, 3);
  assert.equal(header.ciOffset, 3341);
  const ci = decodeChunkInfoArray(blob.subarray(3341, 3341 + 48), header);
  const entries = [0, 1, 2].map((i) => ci.get(i));
  const info: BlobInfo = {
    index: 0,
    blobId: id,
    chunkCount: 3,
    compressor: 'zstd',
    digester: 'blake3',
    features: header.features,
    compressedSize: 0,
    uncompressedSize: 3 * 4096,
    metaCiCompressor: 'none',
    metaCiOffset: 3341,
    metaCiCompressedSize: 48,
    metaCiUncompressedSize: 48,
    chunkSize: 0x100000,
    tocSize: 0,
    tocDigest: Buffer.alloc(32),
  };
  const chunks: ChunkInfo[] = entries.map((e) => ({
    chunkIndex: e.index,
    compressedOffset: e.compressedOffset,
    compressedSize: e.compressedSize,
    uncompressedOffset: e.uncompressedOffset,
    uncompressedSize: e.uncompressedSize,
    compressed: e.compressed,
    fileOffset: 0,
    blobIndex: 0,
    digest: Buffer.alloc(32),
  }));
  const service = await StorageService.create(settings(fixture('tests/texture/toc'), true));
  try {
    const image = await service.openImage([info]);
    const sizes: number[] = [];
    for (const c of chunks) {
      const data = await image.read([c], 0, c.uncompressedSize);
      assert.match(data.toString(), /(use |\/\/|pub )/);
      sizes.push(data.length);
    }
    assert.deepEqual(sizes.sort((a, b) => a - b), [678, 2816, 3115]);
  } finally {
    await service.close();
  }
});

for (const name of ['sha256-nocompress-repeatable', 'blake3-lz4_block-non_repeatable']) {
  test(`RAFS v5 blob with chunks from ${name}: every chunk validates, files read back, warm restart`, { skip }, async () => {
    const v5 = readV5Image(fixture('tests/texture/repeatable', name));
    assert.equal(v5.blobs.length, 1);
    assert.equal(v5.chunks.length, 23);
    const blobsDir = fixture('tests/texture/repeatable/blobs');
    const raw = readFileSync(join(blobsDir, (v5.blobs[0] as BlobInfo).blobId));
    const s = settings(blobsDir, true);
    const service = await StorageService.create(s);
    try {
      const image = await service.openImage(v5.blobs);
      for (const f of v5.files) {
        const data = await image.read(f.chunks, 0, f.size);
        assert.equal(data.length, f.size);
        for (const c of f.chunks) {
          // Uncompressed v5 blob: the file's bytes are the blob's bytes at the chunk offsets.
          const want = raw.subarray(c.compressedOffset, c.compressedOffset + c.uncompressedSize);
          assert.ok(data.subarray(c.fileOffset, c.fileOffset + c.uncompressedSize).equals(want));
        }
      }
      const st = service.stats();
      assert.equal(st.cache.digestErrors, 0);
      assert.equal(st.cache.chunksFilled, 23);
    } finally {
      await service.close();
    }
    const warm = await StorageService.create(s);
    try {
      const image = await warm.openImage(v5.blobs);
      for (const f of v5.files) await image.read(f.chunks, 0, f.size);
      assert.equal(warm.stats().backend.readCount, 0);
    } finally {
      await warm.close();
    }
  });
}

test('RAFS v5 blob through dummycache: validated reads across chunks, tampered digests rejected', { skip }, async () => {
  const v5 = readV5Image(fixture('tests/texture/repeatable', 'sha256-nocompress-repeatable'));
  const service = await StorageService.create(settings(fixture('tests/texture/repeatable/blobs'), true, 'dummycache'));
  try {
    const image = await service.openImage(v5.blobs);
    const big = v5.files.find((f) => f.chunks.length === 3);
    assert.ok(big);
    const data = await image.read(big.chunks, 1000, 2_000_000);
    assert.equal(data.length, 2_000_000);
    assert.equal(service.stats().cache.digestErrors, 0);
    const tampered = big.chunks.map((c, i) => (i === 1 ? { ...c, digest: Buffer.alloc(32) } : { ...c, digest: Buffer.alloc(32, 9) }));
    await assert.rejects(image.read(tampered, 0, 100), { code: 'ERR_CHUNK_DIGEST' });
  } finally {
    await service.close();
  }
});
