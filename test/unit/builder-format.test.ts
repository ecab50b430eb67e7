import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';

import { encodeBlobMetaHeader, encodeChunkInfoV1, encodeToc, gnuTarHeader } from '../../src/rafs/builder/blob-format.js';
import type { BlobChunk } from '../../src/rafs/builder/types.js';
import { direntsSize, encodeDirents } from '../../src/rafs/builder/v6-dirents.js';
import { normalizeXattrs, v5XattrRecordSize, v6XattrIcount, v6XattrSize, writeV5Xattrs, writeV6Xattrs } from '../../src/rafs/builder/xattrs.js';
import { buildVerityTree, kZeroPageDigest, levelPages } from '../../src/rafs/export/verity.js';
import { fixture, fixturesSkip } from '../helpers/paths.js';

const kBlob = 'tests/texture/blobs/be7d77eeb719f70884758d1aa800ed0fb09d701aaec469964e9d54325f0d5fef';

function chunk(p: Partial<BlobChunk>): BlobChunk {
  return { digest: Buffer.alloc(32), index: 0, compressedOffset: 0, compressedSize: 1, uncompressedOffset: 0, uncompressedSize: 1, compressed: true, fileOffset: 0, ...p };
}

test('blob trailer encoders reproduce the upstream fixture blob byte for byte', { skip: fixturesSkip() }, () => {
  const blob = readFileSync(fixture(kBlob));
  // Tar headers that follow "image.blob" (7802 bytes of chunks) and "blob.meta" (32 + 4096).
  assert.deepEqual(gnuTarHeader('image.blob', 7802), blob.subarray(7802, 8314));
  assert.deepEqual(gnuTarHeader('blob.meta', 32 + 4096), blob.subarray(12442, 12954));
  assert.deepEqual(gnuTarHeader('rafs.blob.toc', 512), blob.subarray(14042, 14554));
  const ci = encodeChunkInfoV1([
    chunk({ compressedOffset: 0, compressedSize: 4828, uncompressedOffset: 0, uncompressedSize: 16931 }),
    chunk({ compressedOffset: 4828, compressedSize: 2974, uncompressedOffset: 20480, uncompressedSize: 13400 }),
  ]);
  assert.deepEqual(ci, blob.subarray(8314, 8346));
  const header = encodeBlobMetaHeader({ features: 0x70000021, ciCompressor: 0, ciEntries: 2, ciOffset: 8314, ciCompressedSize: 32, ciUncompressedSize: 32 });
  assert.deepEqual(header, blob.subarray(8346, 8346 + 4096));
  // TOC entries: identical except two bytes of upstream's reserved tail (uninitialised there).
  const tocEntry = encodeToc([{ name: 'blob.meta', compressor: 0, digest: blob.subarray(13530 + 128 + 24, 13530 + 128 + 56), compressedOffset: 8314, compressedSize: 32, uncompressedSize: 32 }]);
  assert.deepEqual(tocEntry.subarray(0, 124), blob.subarray(13530 + 128, 13530 + 128 + 124));
});

test('chunk info v1 rejects what it cannot encode', () => {
  assert.throws(() => encodeChunkInfoV1([chunk({ uncompressedOffset: 100 })]), /cannot be encoded/);
  assert.throws(() => encodeChunkInfoV1([chunk({ compressedOffset: 2 ** 40 })]), /40 bits/);
  assert.throws(() => encodeChunkInfoV1([chunk({ uncompressedSize: 2 ** 24 + 1 })]), /out of range/);
  // 16 MiB (the largest chunk) fits: size-1 uses all 24 bits.
  const big = encodeChunkInfoV1([chunk({ uncompressedSize: 2 ** 24, compressedSize: 2 ** 24 })]);
  assert.equal(big.readBigUInt64LE(0) >> 44n, 0xfffffn);
});

test('gnu tar header uses base-256 for sizes of 8 GiB and more', () => {
  const h = gnuTarHeader('image.boot', 2 ** 33 + 5);
  assert.equal(h[124], 0x80);
  assert.equal(h.readUInt32BE(132), 5);
  assert.equal(h.readUInt8(131), 2);
});

test('xattrs: namespaces, sizes and encodings', () => {
  const x = normalizeXattrs(
    [
      { name: Buffer.from('user.b'), value: Buffer.from([0, 1]) },
      { name: Buffer.from('system.posix_acl_access'), value: Buffer.alloc(28) },
      { name: Buffer.from('security.selinux'), value: Buffer.from('ctx') },
    ],
    'f',
  );
  assert.deepEqual(x.map((a) => a.name.toString()), ['security.selinux', 'system.posix_acl_access', 'user.b']);
  // header 12 + (4+7+3 -> 16) + (4+0+28 = 32) + (4+1+2 -> 8)
  assert.equal(v6XattrSize(x), 12 + 16 + 32 + 8);
  assert.equal(v6XattrIcount(x), 1 + (16 + 32 + 8) / 4);
  const buf = Buffer.alloc(v6XattrSize(x));
  assert.equal(writeV6Xattrs(buf, 0, x), buf.length);
  assert.deepEqual([buf[12], buf[13], buf.readUInt16LE(14)], [7, 6, 3]); // len, index 6 (security.), value size
  assert.equal(buf.subarray(16, 23).toString(), 'selinux');
  assert.deepEqual([buf[28], buf[29]], [0, 2]); // ACL: empty suffix, index 2
  const v5 = Buffer.alloc(v5XattrRecordSize(x));
  assert.equal(writeV5Xattrs(v5, 0, x), v5.length);
  assert.equal(Number(v5.readBigUInt64LE(0)), 4 + 17 + 3 + 4 + 24 + 28 + 4 + 7 + 2);

  assert.throws(() => normalizeXattrs([{ name: Buffer.from('com.apple.quarantine'), value: Buffer.alloc(1) }], 'f'), /outside the namespaces/);
  assert.throws(() => normalizeXattrs([{ name: Buffer.from('system.posix_acl_accessX'), value: Buffer.alloc(1) }], 'f'), /outside the namespaces/);
  assert.throws(() => normalizeXattrs([{ name: Buffer.from('user.'), value: Buffer.alloc(1) }], 'f'), /empty name/);
  assert.throws(() => normalizeXattrs([{ name: Buffer.from('user.v'), value: Buffer.alloc(65536) }], 'f'), /value is 65536 bytes/);
});

test('dirents: sorted entries never straddle a 4 KiB block; names end at the next nameoff', () => {
  const names = ['.', '..'];
  for (let i = 0; i < 800; i++) names.push(`file-${String(i).padStart(4, '0')}`);
  const specs = names.map((n, i) => ({ name: Buffer.from(n), nid: 1000 + i, mode: 0o100644 }));
  const size = direntsSize(specs);
  const data = encodeDirents(specs, size);
  assert.equal(data.length, size);
  const seen: string[] = [];
  for (let blk = 0; blk * 4096 < size; blk++) {
    const end = Math.min(size, (blk + 1) * 4096);
    const block = data.subarray(blk * 4096, end);
    const count = block.readUInt16LE(8) / 12;
    for (let i = 0; i < count; i++) {
      const nameoff = block.readUInt16LE(i * 12 + 8);
      const next = i + 1 < count ? block.readUInt16LE((i + 1) * 12 + 8) : block.length;
      let name = block.subarray(nameoff, next);
      const nul = name.indexOf(0);
      if (nul >= 0) name = name.subarray(0, nul);
      seen.push(name.toString());
      assert.equal(Number(block.readBigUInt64LE(i * 12)), 1000 + names.indexOf(name.toString()));
      assert.equal(block[i * 12 + 10], 1);
    }
  }
  assert.deepEqual(seen, [...names].sort());
  assert.ok(size > 4096 * 3, 'the directory spans several blocks');
});

test('verity tree levels follow upstream MerkleTree', () => {
  assert.deepEqual(levelPages(1), []);
  assert.deepEqual(levelPages(2), [1]);
  assert.deepEqual(levelPages(128), [1]);
  assert.deepEqual(levelPages(129), [2, 1]);
  assert.deepEqual(levelPages(128 * 128 + 1), [129, 2, 1]);
  assert.deepEqual(buildVerityTree(Buffer.alloc(0)).rootDigest, kZeroPageDigest);
  const one = Buffer.alloc(32, 7);
  assert.deepEqual(buildVerityTree(one).rootDigest, one);
  const { tree } = buildVerityTree(Buffer.alloc(129 * 32, 1));
  assert.equal(tree.length, 3 * 4096);
  // Top level first; unused slots of level 1 hold the zero-page digest.
  assert.deepEqual(tree.subarray(4096 * 3 - 32), kZeroPageDigest);
});

test('xattrs beyond the u16 i_xattr_icount are refused', () => {
  const big = Array.from({ length: 5 }, (_, i) => ({ name: Buffer.from(`user.v${i}`), value: Buffer.alloc(60000) }));
  assert.throws(() => v6XattrIcount(big), /RAFS v6 stores at most/);
  assert.equal(v6XattrIcount(big.slice(0, 4)) <= 0xffff, true);
});
