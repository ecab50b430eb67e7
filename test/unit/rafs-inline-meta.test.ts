import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';

import {
  BlobFile,
  bufferSource,
  chunkDigest,
  decodeChunk,
  extractTocEntry,
  findToc,
  getTocEntry,
  loadBlobMetaFromBlob,
  flipByte,
  NydusErrorIs,
  openBootstrap,
  openBootstrapBuffer,
  parseToc,
  sha256,
  tocDigest,
} from '../helpers/rafs-test-imports.js';
import { fixture, fixturesSkip } from '../helpers/paths.js';
import { oneBlob, readFileBytes, resolvePath } from '../helpers/rafs-read.js';

const kId = '2fa78cad554b75ac91a4a125ed148d0ddeb25efa4aaa8bd80e5dc292690a4dca';
const kPath = fixture('tests/texture/toc', kId);
/** Upstream storage/src/meta/toc.rs test: TocLocation::with_digest(9010, 1024, 4fdfbb36…). */
const kTocDigest = Buffer.from('4fdfbb36ef74a3c63a28e2abafa54044c7594155beb6ddad9f36825cfe58286c', 'hex');

const isCode = (code: string) => (e: unknown) => NydusErrorIs(e, code);

test('inline-meta blob opens as a bootstrap; blob id becomes the file stem', { skip: fixturesSkip() }, () => {
  const img = openBootstrap(kPath);
  assert.equal(img.super.version, 6);
  assert.equal(img.super.metaSize, 20480);
  assert.equal(img.blobs.length, 1);
  assert.equal(img.blobs[0]?.blobId, kId);
  const tree: [string, number][] = [];
  img.walk((p, _r, a) => tree.push([p, a.size]));
  assert.deepEqual(tree.slice(1), [
    ['/error.rs', 2816],
    ['/lib.rs', 678],
    ['/logger.rs', 3115],
  ]);
  assert.equal(openBootstrap(kPath, { blobId: 'c'.repeat(64) }).blobs[0]?.blobId, 'c'.repeat(64));
  assert.equal(openBootstrapBuffer(readFileSync(kPath), `/x/${kId}.blob`).blobs[0]?.blobId, kId);
});

test('inline-meta blob: contents decode from the same blob; chunk table agrees with the blob CI', { skip: fixturesSkip() }, () => {
  const raw = readFileSync(kPath);
  const img = openBootstrap(kPath);
  const info = img.blobs[0];
  assert.ok(info);
  const f = new BlobFile(kPath);
  const meta = loadBlobMetaFromBlob(f, info);
  f.close();
  assert.equal(meta.ci.count, 3);
  const sizes: Record<string, number> = { '/error.rs': 2816, '/lib.rs': 678, '/logger.rs': 3115 };
  for (const [path, size] of Object.entries(sizes)) {
    const ref = resolvePath(img, path) as number;
    const [c, ...more] = img.chunks(ref);
    assert.ok(c);
    assert.equal(more.length, 0);
    const e = meta.ci.get(c.chunkIndex);
    assert.deepEqual(
      [e.compressedOffset, e.compressedSize, e.uncompressedOffset, e.uncompressedSize, e.compressed],
      [c.compressedOffset, c.compressedSize, c.uncompressedOffset, c.uncompressedSize, c.compressed],
    );
    const data = readFileBytes(img, ref, oneBlob(raw, kId));
    assert.equal(data.length, size);
    assert.ok(chunkDigest('blake3', data).equals(c.digest));
  }
});

test('blob TOC: found from the tail at (9010, 1024); digest verified; wrong digest or location rejected', { skip: fixturesSkip() }, () => {
  const raw = readFileSync(kPath);
  const loc = findToc(raw.subarray(raw.length - 4096), raw.length, kId);
  assert.deepEqual(loc, { offset: 9010, size: 1024 });
  const bytes = raw.subarray(9010, 9010 + 1024);
  assert.ok(tocDigest(bytes).equals(kTocDigest));
  const toc = parseToc(bytes, { ...loc, digest: kTocDigest }, kId);
  assert.deepEqual(toc.map((e) => [e.name, e.compressor]), [
    ['image.blob', 'none'],
    ['blob.meta', 'none'],
    ['blob.meta.header', 'none'],
    ['image.boot', 'zstd'],
  ]);
  assert.equal(getTocEntry(toc, 'blob.meta')?.uncompressedSize, 0x30);
  assert.equal(getTocEntry(toc, 'blob.meta.header')?.uncompressedSize, 0x1000);
  const boot = getTocEntry(toc, 'image.boot');
  assert.ok(boot);
  const src = bufferSource(raw, kId);
  const bootstrap = extractTocEntry((o, l) => src.read(o, l), boot, raw.length, kId);
  assert.equal(bootstrap.length, 20480);
  assert.equal(sha256(bootstrap).toString('hex').slice(0, 8), 'd85f1b77');
  assert.equal(openBootstrapBuffer(bootstrap).super.inodeCount, 4);

  const wrong = Buffer.from(kTocDigest);
  flipByte(wrong, 0, 1);
  assert.throws(() => parseToc(bytes, { ...loc, digest: wrong }, kId), isCode('ERR_RAFS_DIGEST_MISMATCH'));
  const at = (offset: number, size: number): Buffer => raw.subarray(offset, offset + size);
  for (const [offset, size] of [
    [9010 + 128, 1024 - 128],
    [9000, 1024],
    [9010 - 128, 1024 + 128],
    [9010, 1000],
    [9010, 256],
  ] as const) {
    assert.throws(() => parseToc(at(offset, size), { offset, size, digest: kTocDigest }, kId), isCode('ERR_RAFS_CORRUPT'), `${offset}/${size}`);
  }
  // The tail of a blob without a TOC header.
  assert.throws(() => findToc(raw.subarray(0, 4096), raw.length, kId), isCode('ERR_RAFS_CORRUPT'));
});

test('inline-meta: damaged image.boot or a non-RAFS file gives a clear RafsError', { skip: fixturesSkip() }, () => {
  const raw = readFileSync(kPath);
  const damaged = Buffer.from(raw);
  flipByte(damaged, 7997 + 200, 0x55); // inside the zstd image.boot entry (offset 7997, 501 bytes)
  assert.throws(
    () => openBootstrapBuffer(damaged, kId),
    (e: unknown) => NydusErrorIs(e, 'ERR_RAFS_CORRUPT_CHUNK') || NydusErrorIs(e, 'ERR_RAFS_DIGEST_MISMATCH'),
  );
  assert.throws(
    () => openBootstrap(fixture('tests/texture/zran/zran-two-streams.tar.gz')),
    (e: unknown) => NydusErrorIs(e, 'ERR_RAFS_CORRUPT') && /zran-two-streams/.test((e as Error).message),
  );
  assert.throws(() => openBootstrapBuffer(Buffer.alloc(100)), isCode('ERR_RAFS_CORRUPT'));
});

test('zstd fixture: the .zst frame decodes to the TOC blob (frame content size checked)', { skip: fixturesSkip() }, () => {
  const zst = readFileSync(fixture('tests/texture/zstd', `${kId}.zst`));
  const raw = readFileSync(kPath);
  assert.ok(decodeChunk('zstd', zst, raw.length).equals(raw));
  assert.throws(() => decodeChunk('zstd', zst, raw.length + 1), isCode('ERR_RAFS_CORRUPT_CHUNK'));
});
