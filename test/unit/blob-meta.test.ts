import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { gzipSync } from 'node:zlib';

import { compress } from '../../src/native/index.js';
import { zstdFrameContentSize } from '../../src/rafs/blob/codec.js';
import {
  chunkDigest,
  decodeChunk,
  decodeChunkInfoArray,
  decodeZranContexts,
  flipByte,
  NydusErrorIs,
  parseBlobMetaFile,
  parseBlobMetaHeader,
  parseTarHeader,
} from '../helpers/rafs-test-imports.js';
import { fixture, fixturesSkip } from '../helpers/paths.js';
import { SynthBlob, tarHeader } from '../helpers/rafs-synth-blob.js';

const isCode = (code: string) => (e: unknown) => NydusErrorIs(e, code);
const kZranMeta = fixture('tests/texture/zran/233c72f2b6b698c07021c4da367cfe2dff4f049efbaa885ca0ff760ea297865a.blob.meta');

test('zran .blob.meta cache file: header, CI v2 entries and inflate contexts (INDEX.md values)', { skip: fixturesSkip() }, () => {
  const buf = readFileSync(kZranMeta);
  assert.equal(buf.length, 663552 + 4096);
  const meta = parseBlobMetaFile(buf, 'zran.blob.meta');
  const h = meta.header;
  assert.deepEqual(
    [h.features, h.ciCompressor, h.ciEntries, h.ciOffset, h.ciCompressedSize, h.ciUncompressedSize, h.zranOffset, h.zranSize, h.zranCount],
    [0xf, 'none', 163, 0, 0xa1290, 0xa1290, 3912, 656200, 21],
  );
  assert.equal(h.zranOffset, 163 * 24);
  assert.equal(meta.ci.version, 2);
  let maxEnd = 0;
  for (let i = 0; i < meta.ci.count; i++) {
    const e = meta.ci.get(i);
    assert.ok(e.zran && e.compressed && !e.batch && !e.encrypted, `chunk ${i} flags`);
    assert.ok(e.ctxIndex < 21, 'zran index within the context table');
    maxEnd = Math.max(maxEnd, e.uncompressedOffset + e.uncompressedSize);
  }
  assert.equal(Math.ceil(maxEnd / 4096) * 4096, 0x16c6000, 'blob uncompressed size');
  const first = meta.ci.get(0);
  assert.deepEqual([first.uncompressedOffset, first.compressedOffset, first.ctxIndex, first.ctxOffset], [0, 0xb8, 0, 0x400]);
  const ctx = decodeZranContexts(buf.subarray(0, h.ciUncompressedSize), h);
  assert.equal(ctx.length, 21);
  assert.equal(ctx.reduce((s, c) => s + c.dictSize, 0), 0xa0348 - 21 * 40, 'dictionary table size');
  assert.deepEqual([ctx[0]?.inOffset, ctx[0]?.outOffset, ctx[0]?.dictSize], [10, 0, 0]);
  assert.deepEqual([ctx[1]?.dictSize, ctx[1]?.ctxByte, ctx[1]?.ctxBits], [32768, 103, 5]);
  assert.throws(() => meta.ci.get(163), isCode('ERR_RAFS_CORRUPT'));
  // Wrong size, broken magics, encrypted meta.
  assert.throws(() => parseBlobMetaFile(buf.subarray(4096), 'cut'), isCode('ERR_RAFS_CORRUPT'));
  const bad = Buffer.from(buf);
  bad.writeUInt32LE(0, bad.length - 4);
  assert.throws(() => parseBlobMetaFile(bad, 'magic2'), isCode('ERR_RAFS_CORRUPT'));
  const enc = Buffer.from(buf);
  enc.writeUInt32LE(0xf | 0x100, enc.length - 4096 + 4);
  assert.throws(() => parseBlobMetaFile(enc, 'enc'), isCode('ERR_RAFS_UNSUPPORTED'));
  const flags = Buffer.from(buf);
  flags[7] = 0x40; // an undefined v2 flag bit on chunk 0
  assert.throws(() => parseBlobMetaFile(flags, 'flags').ci.get(0), isCode('ERR_RAFS_CORRUPT'));
});

test('CI v1 and v2 entries round-trip through the synthetic encoder, incl. 16 MiB sizes and >4 GiB offsets', () => {
  for (const v2 of [false, true]) {
    const blob = new SynthBlob('zstd', 'blake3', true, v2);
    // v2 stores csize in 24 bits without the minus-one bias, so 16 MiB only fits in v1.
    const a = blob.addFake(v2 ? 0xffffff : 0x1000000);
    const b = blob.addFake(1);
    const c = blob.add(Buffer.alloc(5000, 7));
    const out = blob.finish();
    const h = parseBlobMetaHeader(out.header);
    const ci = decodeChunkInfoArray(out.ci, h);
    assert.equal(ci.version, v2 ? 2 : 1);
    for (const s of [a, b, c]) {
      const e = ci.get(s.index);
      assert.deepEqual([e.compressedOffset, e.compressedSize, e.uncompressedOffset, e.uncompressedSize, e.compressed], [s.coff, s.csize, s.uoff, s.usize, s.compressed]);
    }
    // A chunk far into a large blob: v1 packs offsets into 40/44 bits.
    const big = { index: 0, coff: 0x12_3456_789a, csize: 0x80_0000, uoff: 0x1_2345_6000, usize: 0xff_ffff, compressed: true, digest: Buffer.alloc(32) };
    const e = decodeChunkInfoArray(blob.ciEntry(big), { ...h, ciEntries: 1 }).get(0);
    assert.deepEqual([e.compressedOffset, e.compressedSize, e.uncompressedOffset, e.uncompressedSize], [big.coff, big.csize, big.uoff, big.usize]);
  }
  assert.throws(() => decodeChunkInfoArray(Buffer.alloc(15), { ...parseBlobMetaHeader(new SynthBlob('none', 'sha256', true).finish().header), ciEntries: 1 }), isCode('ERR_RAFS_CORRUPT'));
});

test('decodeChunk: none, lz4_block, zstd, gzip; sizes are enforced before allocating', () => {
  const data = Buffer.from('nydus chunk '.repeat(2000));
  assert.ok(decodeChunk('none', data, data.length).equals(data));
  assert.ok(decodeChunk('lz4_block', compress(1, data), data.length).equals(data));
  assert.ok(decodeChunk('zstd', compress(3, data), data.length).equals(data));
  assert.ok(decodeChunk('gzip', gzipSync(data), data.length).equals(data));
  for (const [algo, c] of [
    ['none', data],
    ['lz4_block', compress(1, data)],
    ['zstd', compress(3, data)],
    ['gzip', gzipSync(data)],
  ] as const) {
    assert.throws(() => decodeChunk(algo, c, data.length - 1), isCode('ERR_RAFS_CORRUPT_CHUNK'), algo);
    assert.throws(() => decodeChunk(algo, c, data.length + 1), isCode('ERR_RAFS_CORRUPT_CHUNK'), algo);
  }
  // A forged size far beyond what the input can hold fails fast.
  assert.throws(() => decodeChunk('lz4_block', Buffer.alloc(10), 0x40000000), isCode('ERR_RAFS_CORRUPT_CHUNK'));
  assert.throws(() => decodeChunk('zstd', compress(3, data), 0x40000000), isCode('ERR_RAFS_CORRUPT_CHUNK'));
  assert.throws(() => decodeChunk('gzip', Buffer.from('not gzip'), 100), isCode('ERR_RAFS_CORRUPT_CHUNK'));
  assert.throws(() => decodeChunk('zstd', Buffer.alloc(8), 100), isCode('ERR_RAFS_CORRUPT_CHUNK'));
  assert.equal(zstdFrameContentSize(compress(3, data)), data.length);
  assert.equal(zstdFrameContentSize(Buffer.alloc(10)), undefined);
});

test('chunkDigest: both digesters through the addon (known answers, sha256 against node:crypto)', () => {
  const d = Buffer.from('abc');
  assert.ok(chunkDigest('sha256', d).equals(createHash('sha256').update(d).digest()));
  assert.equal(chunkDigest('blake3', d).toString('hex'), '6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85');
});

test('tar headers: GNU header parses; checksum, magic and number errors are CORRUPT', () => {
  const h = tarHeader('rafs.blob.toc', 1024);
  assert.deepEqual(parseTarHeader(h), { name: 'rafs.blob.toc', size: 1024, typeflag: '0' });
  const sum = Buffer.from(h);
  flipByte(sum, 0, 1);
  assert.throws(() => parseTarHeader(sum, 'x', 100), (e: unknown) => isCode('ERR_RAFS_CORRUPT')(e) && /x: tar header at offset 100: checksum/.test((e as Error).message));
  const magic = Buffer.from(h);
  magic.write('xxxxx', 257);
  assert.throws(() => parseTarHeader(magic), isCode('ERR_RAFS_CORRUPT'));
  const size = tarHeader('a', 0);
  size.write('9', 124);
  assert.throws(() => parseTarHeader(size), isCode('ERR_RAFS_CORRUPT'));
  assert.throws(() => parseTarHeader(Buffer.alloc(100)), isCode('ERR_RAFS_CORRUPT'));
});
