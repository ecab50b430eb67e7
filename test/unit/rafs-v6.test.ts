import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { test } from 'node:test';

import {
  BlobFile,
  bufferSource,
  chunkDigest,
  type ChunkInfo,
  DT_DIR,
  DT_REG,
  loadBlobMetaFromBlob,
  flipByte,
  NydusErrorIs,
  openBootstrap,
  openBootstrapBuffer,
  parseBlobMetaFile,
  parseBlobMetaRegion,
  readBlobToc,
} from '../helpers/rafs-test-imports.js';
import { fixture, fixturesSkip } from '../helpers/paths.js';
import { oneBlob, readFileBytes, resolvePath } from '../helpers/rafs-read.js';

const kBoot = fixture('tests/texture/bootstrap/rafs-v6-2.2.boot');
const kBlobId = 'be7d77eeb719f70884758d1aa800ed0fb09d701aaec469964e9d54325f0d5fef';
const kBlobPath = fixture('tests/texture/blobs', kBlobId);

/** INDEX.md: lib.rs ci 0 c@0/4828 → u@0/16931; sync_io.rs ci 1 c@4828/2974 → u@20480/13400. */
const kExpectedChunks: Record<string, Omit<ChunkInfo, 'digest'>> = {
  '/lib.rs': { fileOffset: 0, blobIndex: 0, chunkIndex: 0, compressedOffset: 0, compressedSize: 4828, uncompressedOffset: 0, uncompressedSize: 16931, compressed: true },
  '/sync_io.rs': { fileOffset: 0, blobIndex: 0, chunkIndex: 1, compressedOffset: 4828, compressedSize: 2974, uncompressedOffset: 20480, uncompressedSize: 13400, compressed: true },
};

test('v6 2.2 bootstrap: superblock, blob table, device slot and tree match INDEX.md', { skip: fixturesSkip() }, () => {
  const img = openBootstrap(kBoot);
  const s = img.super;
  assert.deepEqual(
    [s.version, s.flags, s.compressor, s.digester, s.explicitUidGid, s.inlinedChunkDigest, s.rootRef, s.inodeCount, s.blockSize, s.metaSize, s.chunkSize],
    [6, 0x194, 'zstd', 'blake3', true, true, 128, 3, 4096, 20480, 0x100000],
  );
  assert.equal(img.blobs.length, 1);
  const b = img.blobs[0];
  assert.ok(b);
  assert.deepEqual(
    [b.blobId, b.chunkCount, b.features, b.compressedSize, b.uncompressedSize, b.metaCiCompressor, b.metaCiOffset, b.metaCiCompressedSize, b.metaCiUncompressedSize, b.tocSize],
    [kBlobId, 2, 0x70000021, 14554, 0x9000, 'none', 8314, 32, 32, 1024],
  );
  assert.equal(b.tocDigest.toString('hex').slice(0, 8), 'cfc89ed0');
  assert.deepEqual([b.deviceBlocks, b.mappedBlkaddr], [9, 512]);

  const seen: [string, number, number, number][] = [];
  img.walk((p, ref, a) => seen.push([p, ref, a.mode, a.size]));
  assert.deepEqual(seen, [
    ['/', 128, 0o40755, 67],
    ['/lib.rs', 133, 0o100644, 16931],
    ['/sync_io.rs', 136, 0o100644, 13400],
  ]);
  const a = img.getAttr(133);
  assert.deepEqual(
    [a.ino, a.uid, a.gid, a.implicitOwner, a.nlink, a.mtimeSec, a.mtimeNsec, a.rdev, a.blocks],
    [133, 0, 0, false, 1, 0x63f23c61, 0x25789c56, 0, Math.ceil(16931 / 512)],
  );
  assert.equal(img.getAttr(128).nlink, 2);
  assert.deepEqual(img.prefetchRefs(), []);
  assert.deepEqual(img.listXattrs(133), []);
  assert.equal(img.inodeDigest(133), undefined);
});

test('v6 readDir: dirent byte offsets, resumable anywhere; lookup by binary search', { skip: fixturesSkip() }, () => {
  const img = openBootstrap(kBoot);
  const all: [string, number, number, number][] = [];
  img.readDir(128, 0, (e) => (all.push([e.name.toString(), e.ref, e.type, e.nextOffset]), true));
  assert.deepEqual(all, [
    ['.', 128, DT_DIR, 12],
    ['..', 128, DT_DIR, 24],
    ['lib.rs', 133, DT_REG, 36],
    ['sync_io.rs', 136, DT_REG, 4096],
  ]);
  for (const [i, off] of [0, 12, 24, 36, 4096].entries()) {
    const rest: string[] = [];
    img.readDir(128, off, (e) => (rest.push(e.name.toString()), true));
    assert.deepEqual(rest, all.slice(i).map((x) => x[0]));
  }
  // An offset between dirents rounds up to the next one.
  const mid: string[] = [];
  img.readDir(128, 13, (e) => (mid.push(e.name.toString()), true));
  assert.deepEqual(mid, ['lib.rs', 'sync_io.rs']);
  assert.equal(img.lookup(128, Buffer.from('lib.rs')), 133);
  assert.equal(img.lookup(128, Buffer.from('sync_io.rs')), 136);
  assert.equal(img.lookup(128, Buffer.from('..')), 128);
  for (const absent of ['a', 'lib', 'lib.rs0', 'sync_io.r', 'zzz', '-']) assert.equal(img.lookup(128, Buffer.from(absent)), undefined, absent);
  assert.throws(() => img.lookup(133, Buffer.from('x')), (e: unknown) => NydusErrorIs(e, 'ERR_RAFS_NOT_DIR'));
  assert.throws(() => img.readDir(128, -1, () => true), (e: unknown) => NydusErrorIs(e, 'ERR_RAFS_WRONG_TYPE'));
  assert.throws(() => img.getAttr(130), (e: unknown) => NydusErrorIs(e, 'ERR_RAFS_CORRUPT'), 'nid inside another inode');
  assert.throws(() => img.getAttr(1e9), (e: unknown) => NydusErrorIs(e, 'ERR_RAFS_BAD_INODE'));
});

test('v6 INLINED_CHUNK_DIGEST: chunks() demands blob meta, never guesses', { skip: fixturesSkip() }, () => {
  const img = openBootstrap(kBoot);
  assert.deepEqual(img.blobsNeedingMeta(), [0]);
  assert.throws(
    () => img.chunks(133),
    (e: unknown) => NydusErrorIs(e, 'ERR_RAFS_BLOB_META_REQUIRED') && /blob meta/.test((e as Error).message),
  );
});

function checkChunksAndContents(img: ReturnType<typeof openBootstrap>, digestsKnown: boolean): void {
  const blob = oneBlob(readFileSync(kBlobPath), kBlobId);
  // The bootstrap also carries a chunk info table (80-byte rows at 16384); CI + blob.digest must agree with it.
  const boot = readFileSync(kBoot);
  const rows = [0, 1].map((i) => boot.subarray(16384 + i * 80, 16384 + (i + 1) * 80));
  for (const [path, want] of Object.entries(kExpectedChunks)) {
    const ref = resolvePath(img, path) as number;
    const cs = img.chunks(ref);
    assert.equal(cs.length, 1);
    const c = cs[0] as ChunkInfo;
    const { digest, ...rest } = c;
    assert.deepEqual(rest, want, path);
    const row = rows.find((r) => r.readUInt32LE(72) === c.chunkIndex) as Buffer;
    assert.deepEqual(
      [row.readUInt32LE(40), row.readUInt32LE(44), Number(row.readBigUInt64LE(48)), Number(row.readBigUInt64LE(56))],
      [c.compressedSize, c.uncompressedSize, c.compressedOffset, c.uncompressedOffset],
    );
    const data = readFileBytes(img, ref, blob);
    assert.equal(data.length, img.getAttr(ref).size);
    if (digestsKnown) {
      assert.ok(digest.equals(row.subarray(0, 32)), 'blob.digest row = chunk table digest');
      assert.ok(chunkDigest('blake3', data).equals(digest), `${path} blake3`);
    } else {
      assert.ok(digest.equals(Buffer.alloc(32)), 'zero digest = not available');
      assert.ok(chunkDigest('blake3', data).equals(row.subarray(0, 32)));
    }
    assert.match(data.toString('utf8'), /\bfn\b|\buse\b/, 'Rust source');
  }
}

test('v6 INLINED_CHUNK_DIGEST with blobDir: CI from the blob, digests from its TOC; files decode and verify', { skip: fixturesSkip() }, () => {
  const img = openBootstrap(kBoot, { blobDir: dirname(kBlobPath) });
  checkChunksAndContents(img, true);
  assert.deepEqual(img.blobsNeedingMeta(), []);
});

test('v6 INLINED_CHUNK_DIGEST with setBlobMeta from the blob region, the TOC and a .blob.meta cache file', { skip: fixturesSkip() }, () => {
  const raw = readFileSync(kBlobPath);
  const probe = openBootstrap(kBoot);
  const info = probe.blobs[0];
  assert.ok(info);

  // Storage-layer style: fetch ci_compressed_size + 4096 bytes at ci_offset, plus blob.digest.
  const img1 = openBootstrap(kBoot);
  const region = raw.subarray(info.metaCiOffset, info.metaCiOffset + info.metaCiCompressedSize + 4096);
  const meta = parseBlobMetaRegion(region, info);
  assert.equal(meta.header.features, 0x70000021);
  assert.equal(meta.ci.version, 1);
  const toc = readBlobToc(bufferSource(raw, kBlobId), info);
  assert.deepEqual(toc.map((e) => e.name), ['image.blob', 'blob.meta', 'blob.meta.header', 'blob.digest']);
  const dg = toc[3];
  assert.ok(dg);
  meta.digests = raw.subarray(dg.compressedOffset, dg.compressedOffset + dg.compressedSize);
  img1.setBlobMeta(0, meta);
  checkChunksAndContents(img1, true);

  // Cache-file style: [CI padded to 4 KiB][header], no digests.
  const ci = Buffer.alloc(4096);
  region.copy(ci, 0, 0, info.metaCiCompressedSize);
  const metaFile = Buffer.concat([ci, region.subarray(info.metaCiCompressedSize)]);
  const img2 = openBootstrap(kBoot);
  img2.setBlobMeta(0, parseBlobMetaFile(metaFile, 'be7d.blob.meta', info));
  checkChunksAndContents(img2, false);

  // Whole-blob loader (what blobDir uses), through a real file.
  const f = new BlobFile(kBlobPath);
  const loaded = loadBlobMetaFromBlob(f, info);
  f.close();
  assert.equal(loaded.digests?.length, 64);
  const img3 = openBootstrapBuffer(readFileSync(kBoot), kBoot);
  img3.setBlobMeta(0, loaded);
  checkChunksAndContents(img3, true);

  // A meta for the wrong blob is refused.
  assert.throws(() => img3.setBlobMeta(0, { ...loaded, digests: Buffer.alloc(32) }), (e: unknown) => NydusErrorIs(e, 'ERR_RAFS_CORRUPT'));
  assert.throws(() => img3.setBlobMeta(1, loaded), (e: unknown) => NydusErrorIs(e, 'ERR_RAFS_NOT_FOUND'));
});

test('v6 blob TOC at the blob-table location must match blob_toc_digest', { skip: fixturesSkip() }, () => {
  const raw = readFileSync(kBlobPath);
  const info = openBootstrap(kBoot).blobs[0];
  assert.ok(info);
  const bad = { ...info, tocDigest: Buffer.alloc(32, 1) };
  assert.throws(() => readBlobToc(bufferSource(raw, kBlobId), bad), (e: unknown) => NydusErrorIs(e, 'ERR_RAFS_DIGEST_MISMATCH'));
  const moved = { ...info, tocSize: 1024 + 128 };
  assert.throws(() => readBlobToc(bufferSource(raw, kBlobId), moved), (e: unknown) => NydusErrorIs(e, 'ERR_RAFS_DIGEST_MISMATCH') || NydusErrorIs(e, 'ERR_RAFS_CORRUPT'));
  // A corrupted digest row is caught when the data is verified.
  const img = openBootstrap(kBoot, { blobDir: dirname(kBlobPath) });
  const c = img.chunks(133)[0] as ChunkInfo;
  const forged = Buffer.from(raw);
  flipByte(forged, c.compressedOffset + 100, 0xff);
  assert.throws(() => readFileBytes(img, 133, oneBlob(forged)), (e: unknown) => NydusErrorIs(e, 'ERR_RAFS_CORRUPT_CHUNK') || NydusErrorIs(e, 'ERR_RAFS_DIGEST_MISMATCH'));
});

test('file errors are RafsErrors: missing bootstrap, a directory, a blobDir without the blob', { skip: fixturesSkip() }, () => {
  assert.throws(() => openBootstrap('/nonexistent/rafs.boot'), (e: unknown) => NydusErrorIs(e, 'ERR_RAFS_NOT_FOUND') && /nonexistent/.test((e as Error).message));
  assert.throws(() => openBootstrap(dirname(kBoot)), (e: unknown) => NydusErrorIs(e, 'ERR_RAFS_IO'));
  const img = openBootstrap(kBoot, { blobDir: dirname(kBoot) });
  assert.throws(() => img.chunks(133), (e: unknown) => NydusErrorIs(e, 'ERR_RAFS_BLOB_META_REQUIRED'));
});
