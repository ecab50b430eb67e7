import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';

import { candidatePaths, loadAddon } from '../../src/native/binding.js';
import { blake3, compress, CompressAlgo, createDigestHasher, decompress, digest, DigestAlgo, openChunkMap } from '../../src/native/index.js';
import { NydusError } from '../../src/util/errors.js';

test('loader tries the release build first, then the debug build', () => {
  const paths = candidatePaths();
  assert.match(paths[0] ?? '', /build\/Release\/nydus_native\.node$/);
  assert.match(paths[1] ?? '', /build\/Debug\/nydus_native\.node$/);
  assert.equal(loadAddon().abiInfo().limits['chunkMapHeaderSize'], 4096);
});

test('codecs round-trip and reject wrong sizes with a typed error', () => {
  const data = Buffer.from('nydus '.repeat(5000));
  for (const algo of [CompressAlgo.None, CompressAlgo.Lz4Block, CompressAlgo.Zstd]) {
    const c = compress(algo, data);
    assert.deepEqual(decompress(algo, c, data.length), data);
    if (algo !== CompressAlgo.None) {
      assert.ok(c.length < data.length / 10);
      assert.throws(() => decompress(algo, c, data.length + 1), (e: unknown) => NydusError.is(e, 'ERR_CORRUPT_CHUNK'));
    }
  }
  assert.throws(() => compress(CompressAlgo.Gzip, data), (e: unknown) => NydusError.is(e, 'ERR_NATIVE_CODEC'));
  assert.throws(() => decompress(3, Buffer.from('xx'), -1), RangeError);
});

test('digests match known answers, one-shot and streaming, for both digesters', () => {
  assert.equal(blake3(Buffer.from('abc')).toString('hex'), '6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85');
  assert.equal(digest(DigestAlgo.Sha256, Buffer.from('abc')).toString('hex'), 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  const big = Buffer.alloc(102400);
  for (let i = 0; i < big.length; i++) big[i] = i % 251;
  const want = {
    [DigestAlgo.Blake3]: 'bc3e3d41a1146b069abffad3c0d44860cf664390afce4d9661f7902e7943e085',
    // node:crypto as the independent answer.
    [DigestAlgo.Sha256]: createHash('sha256').update(big).digest('hex'),
  };
  for (const algo of [DigestAlgo.Blake3, DigestAlgo.Sha256]) {
    assert.equal(digest(algo, big).toString('hex'), want[algo]);
    const h = createDigestHasher(algo);
    for (let off = 0; off < big.length; off += 7000) h.update(big.subarray(off, off + 7000));
    assert.equal(h.digest().toString('hex'), want[algo]);
    // digest() does not end the hasher: a second call covers the same input, more input extends it.
    assert.equal(h.digest().toString('hex'), want[algo]);
    h.update(Buffer.from('x'));
    assert.equal(h.digest().toString('hex'), digest(algo, Buffer.concat([big, Buffer.from('x')])).toString('hex'));
  }
  assert.notEqual(want[DigestAlgo.Blake3], want[DigestAlgo.Sha256]);
  assert.throws(() => digest(2 as DigestAlgo, big), (e: unknown) => NydusError.is(e, 'ERR_NATIVE_CODEC') && /digester 2 is unknown/.test((e as Error).message));
  assert.throws(() => createDigestHasher(7 as DigestAlgo), (e: unknown) => NydusError.is(e, 'ERR_NATIVE_CODEC'));
  assert.throws(() => digest(DigestAlgo.Blake3, 'abc' as unknown as Buffer), TypeError);
});

test('chunk map persists bits MSB-first and reports bad files with ERR_CHUNK_MAP', () => {
  const dir = mkdtempSync(join(tmpdir(), 'nydus-cm-'));
  try {
    const path = join(dir, 'x.blob.data.chunk_map');
    const m = openChunkMap(path, 20);
    assert.equal(m.setReady(3), true);
    assert.equal(m.setReady(3), false);
    assert.equal(m.isReady(3), true);
    assert.equal(m.isReady(4), false);
    assert.throws(() => m.setReady(20), RangeError);
    m.close();
    const bytes = readFileSync(path);
    assert.equal(bytes.length, 4096 + 3);
    assert.equal(bytes.readUInt32LE(0), 0x424d4150);
    assert.equal(bytes[4096], 0b00010000);
    assert.equal(openChunkMap(path, 20).readyCount(), 1);
    assert.throws(() => openChunkMap(path, 40), (e: unknown) => NydusError.is(e, 'ERR_CHUNK_MAP') && /expected/.test((e as Error).message));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('native log records reach the JavaScript handler', async () => {
  const addon = loadAddon();
  const got: [number, string, string][] = [];
  // The bridge is unref'd (it must not keep a daemon alive), so hold the loop open meanwhile.
  const keepAlive = setTimeout(() => undefined, 10_000);
  await new Promise<void>((resolve) => {
    addon.setLogHandler((level, module, message) => {
      got.push([level, module, message]);
      resolve();
    });
    addon.setLogLevel(1);
    addon.nativeLog(3, 'test', 'hello from C++');
    addon.nativeLog(0, 'test', 'below the threshold');
  });
  clearTimeout(keepAlive);
  addon.setLogHandler(null);
  assert.deepEqual(got, [[3, 'test', 'hello from C++']]);
});
