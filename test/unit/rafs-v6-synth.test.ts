import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  bufferSource,
  DT_BLK,
  DT_CHR,
  DT_DIR,
  DT_FIFO,
  DT_LNK,
  DT_REG,
  DT_SOCK,
  loadBlobMetaFromBlob,
  NydusErrorIs,
  openBootstrapBuffer,
  parseBlobMetaFile,
  type RafsImage,
} from '../helpers/rafs-test-imports.js';
import { buildV6, type SynthNode } from '../helpers/rafs-synth-v6.js';
import { oneBlob, readFileBytes, resolvePath } from '../helpers/rafs-read.js';

const isCode = (code: string) => (e: unknown) => NydusErrorIs(e, code);

function pattern(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    // Compressible but not trivially: runs of a pseudo-random byte.
    if (i % 7 === 0) x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    b[i] = (x >>> 16) & 0xff;
  }
  return b;
}

function names(img: RafsImage, ref: number, from = 0): string[] {
  const out: string[] = [];
  img.readDir(ref, from, (e) => (out.push(e.name.toString()), true));
  return out;
}

test('v6 synthetic: multi-block directories (plain and inline tail): lookup, readDir and resume', () => {
  for (const inlineData of [true, false]) {
    const children: Record<string, SynthNode> = {};
    const want: string[] = [];
    for (let i = 0; i < 1500; i++) {
      const n = `${'f'.repeat(i % 40)}-${i.toString(36)}`;
      children[n] = { type: 'file', size: 0, compact: i % 2 === 0 };
      want.push(n);
    }
    const { bootstrap, nids } = buildV6({ type: 'dir', children: { big: { type: 'dir', children } } }, { inlineData });
    const img = openBootstrapBuffer(bootstrap, 'synth');
    const big = nids.get('/big') as number;
    assert.ok(img.getAttr(big).size > 10 * 4096, 'several dirent blocks');
    const sorted = ['.', '..', ...want].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    assert.deepEqual(names(img, big), sorted);
    for (const n of want) assert.equal(img.lookup(big, Buffer.from(n)), nids.get(`/big/${n}`), n);
    for (const n of ['', '+', 'f', '-zzzz', 'ffff', 'g', '\xff', 'f'.repeat(256)]) assert.equal(img.lookup(big, Buffer.from(n)), undefined, n);
    // Resume from every 97th entry's nextOffset; arbitrary offsets round up to the next dirent.
    const offs: number[] = [];
    img.readDir(big, 0, (e) => (offs.push(e.nextOffset), true));
    for (let i = 0; i < offs.length; i += 97) assert.deepEqual(names(img, big, offs[i]), sorted.slice(i + 1));
    assert.deepEqual(names(img, big, (offs[10] as number) - 5), sorted.slice(11));
    assert.deepEqual(names(img, big, 1e12), []);
    let stopped = 0;
    img.readDir(big, 0, () => ++stopped < 3);
    assert.equal(stopped, 3);
  }
});

test('v6 synthetic: compact/extended attributes, devices, symlinks, hardlinks, xattrs, prefetch', () => {
  const longTarget = 'x/'.repeat(150);
  const blockTarget = 'y'.repeat(4096);
  const tree: SynthNode = {
    type: 'dir',
    uid: 7,
    gid: 8,
    children: {
      c: { type: 'file', data: Buffer.from('compact'), compact: true, uid: 65535, gid: 3, mode: 0o600 },
      e: { type: 'file', data: Buffer.from('extended'), uid: 100000, gid: 200000, mtime: 1700000000, mtimeNsec: 123, mode: 0o4755 },
      h: { type: 'hardlink', target: '/e' },
      chr: { type: 'chr', rdev: 0x0501 },
      blk: { type: 'blk', rdev: 0x0803, compact: true },
      fifo: { type: 'fifo' },
      sock: { type: 'sock' },
      l1: { type: 'symlink', target: longTarget },
      l2: { type: 'symlink', target: blockTarget, compact: true },
      x: {
        type: 'file',
        data: Buffer.alloc(0),
        xattrs: {
          'user.a': Buffer.from('1'),
          'user.longer-name': Buffer.alloc(300, 0x61),
          'trusted.t': Buffer.alloc(0),
          'security.capability': Buffer.from([1, 2, 3]),
          'system.posix_acl_access': Buffer.from('acl'),
        },
      },
      d: { type: 'dir', children: { sub: { type: 'dir', children: {} } } },
    },
  };
  const { bootstrap, nids } = buildV6(tree, { prefetch: ['/e', '/d'] });
  const img = openBootstrapBuffer(bootstrap);
  assert.equal(img.super.hasXattr, true);
  const at = (p: string) => img.getAttr(nids.get(p) as number);
  const c = at('/c');
  assert.deepEqual([c.uid, c.gid, c.mode, c.size, c.nlink, c.mtimeSec, c.ino], [65535, 3, 0o100600, 7, 1, 0, nids.get('/c')]);
  const e = at('/e');
  assert.deepEqual([e.uid, e.gid, e.mode, e.mtimeSec, e.mtimeNsec, e.nlink], [100000, 200000, 0o104755, 1700000000, 123, 2]);
  assert.equal(img.lookup(img.super.rootRef, Buffer.from('h')), nids.get('/e'), 'hardlink shares the nid');
  assert.equal(at('/chr').rdev, 0x0501);
  assert.equal(at('/blk').rdev, 0, 'compact inodes cannot carry rdev');
  assert.equal(at('/d').nlink, 3);
  assert.equal(at('/').nlink, 3);
  assert.deepEqual([at('/').uid, at('/').gid], [7, 8]);
  const types = new Map<string, number>();
  img.readDir(img.super.rootRef, 0, (d) => (types.set(d.name.toString(), d.type), true));
  assert.deepEqual(
    ['.', 'c', 'chr', 'blk', 'fifo', 'sock', 'l1', 'd', 'h'].map((n) => types.get(n)),
    [DT_DIR, DT_REG, DT_CHR, DT_BLK, DT_FIFO, DT_SOCK, DT_LNK, DT_DIR, DT_REG],
  );
  assert.equal(img.readLink(nids.get('/l1') as number).toString(), longTarget);
  assert.equal(img.readLink(nids.get('/l2') as number).toString(), blockTarget);
  const x = nids.get('/x') as number;
  assert.deepEqual(img.listXattrs(x).map(String), ['user.a', 'user.longer-name', 'trusted.t', 'security.capability', 'system.posix_acl_access']);
  assert.equal(img.getXattr(x, Buffer.from('user.longer-name'))?.length, 300);
  assert.deepEqual(img.getXattr(x, Buffer.from('security.capability')), Buffer.from([1, 2, 3]));
  assert.deepEqual(img.getXattr(x, Buffer.from('trusted.t')), Buffer.alloc(0));
  assert.equal(img.getXattr(x, Buffer.from('system.posix_acl_access'))?.toString(), 'acl');
  assert.equal(img.getXattr(x, Buffer.from('user.b')), undefined);
  assert.equal(img.getXattr(x, Buffer.from('user.')), undefined);
  assert.deepEqual(img.prefetchRefs(), [nids.get('/e'), nids.get('/d')]);
  assert.deepEqual(img.chunks(x), []);
  const paths: string[] = [];
  img.walk((p) => paths.push(p));
  assert.deepEqual(paths, ['/', '/blk', '/c', '/chr', '/d', '/d/sub', '/e', '/fifo', '/h', '/l1', '/l2', '/sock', '/x']);
});

test('v6 synthetic: chunk table path decodes files for every compressor and digester; holes read as zeros', () => {
  for (const compressor of ['none', 'lz4_block', 'zstd', 'gzip'] as const) {
    for (const digester of ['blake3', 'sha256'] as const) {
      const big = pattern(50_000, 3);
      const holey = pattern(5 * 4096, 9);
      holey.fill(0, 4096, 3 * 4096);
      const { bootstrap, blob, nids } = buildV6(
        {
          type: 'dir',
          children: {
            big: { type: 'file', data: big },
            holey: { type: 'file', data: holey, holes: [1, 2] },
            tiny: { type: 'file', data: Buffer.from('t') },
          },
        },
        { compressor, digester, chunkSize: 4096 },
      );
      const img = openBootstrapBuffer(bootstrap);
      assert.equal(img.super.compressor, compressor);
      assert.deepEqual(img.blobsNeedingMeta(), []);
      const src = oneBlob(blob.blob);
      assert.ok(readFileBytes(img, nids.get('/big') as number, src).equals(big), `${compressor}/${digester}`);
      assert.ok(readFileBytes(img, nids.get('/tiny') as number, src).equals(Buffer.from('t')));
      const hc = img.chunks(nids.get('/holey') as number);
      assert.deepEqual(hc.map((c) => c.fileOffset), [0, 3 * 4096, 4 * 4096]);
      assert.ok(readFileBytes(img, nids.get('/holey') as number, src).equals(holey));
      if (compressor !== 'none') assert.ok(img.chunks(nids.get('/big') as number).some((c) => c.compressed));
    }
  }
});

test('v6 synthetic: INLINED_CHUNK_DIGEST with CI v1 and v2 via setBlobMeta / the blob itself', () => {
  for (const ciV2 of [false, true]) {
    const data = pattern(30_000, 5);
    const { bootstrap, blob, nids } = buildV6({ type: 'dir', children: { f: { type: 'file', data } } }, { inlinedChunkDigest: true, ciV2, chunkSize: 8192 });
    const f = nids.get('/f') as number;
    const a = openBootstrapBuffer(bootstrap);
    assert.deepEqual(a.blobsNeedingMeta(), [0]);
    assert.throws(() => a.chunks(f), isCode('ERR_RAFS_BLOB_META_REQUIRED'));
    const info = a.blobs[0];
    assert.ok(info);
    a.setBlobMeta(0, loadBlobMetaFromBlob(bufferSource(blob.blob, 'synth-blob'), info));
    assert.ok(readFileBytes(a, f, oneBlob(blob.blob)).equals(data));
    assert.ok(a.chunks(f).every((c) => !c.digest.equals(Buffer.alloc(32))));
    const b = openBootstrapBuffer(bootstrap, 'x', { blobMetaProvider: (bl) => (bl.index === 0 ? parseBlobMetaFile(blob.metaFile, 'm', bl) : undefined) });
    assert.ok(readFileBytes(b, f, oneBlob(blob.blob)).equals(data));
  }
});

test('v6 synthetic: a directory cycle and bad dirents are reported, not followed forever', () => {
  const { bootstrap, nids } = buildV6({ type: 'dir', children: { a: { type: 'dir', children: { b: { type: 'dir', children: {} } } } } });
  const img = openBootstrapBuffer(bootstrap);
  const a = nids.get('/a') as number;
  let bOff = -1;
  img.readDir(a, 0, (e) => {
    if (e.name.toString() === 'b') return false;
    bOff = e.nextOffset;
    return true;
  });
  // /a is FLAT_INLINE: its dirents follow the 64-byte inode (no xattrs) at metaBase + nid × 32.
  const metaBase = bootstrap.readUInt32LE(1024 + 40) * 4096;
  const cyc = Buffer.from(bootstrap);
  cyc.writeBigUInt64LE(BigInt(a), metaBase + a * 32 + 64 + bOff);
  assert.throws(() => openBootstrapBuffer(cyc).walk(() => undefined), (e: unknown) => isCode('ERR_RAFS_CORRUPT')(e) && /cycle/.test((e as Error).message));
  const far = Buffer.from(bootstrap);
  far.writeBigUInt64LE(1n << 40n, metaBase + a * 32 + 64 + bOff);
  assert.throws(() => openBootstrapBuffer(far).readDir(a, 0, () => true), isCode('ERR_RAFS_CORRUPT'));
  const badType = Buffer.from(bootstrap);
  badType.writeUInt8(9, metaBase + a * 32 + 64 + bOff + 10);
  assert.throws(() => openBootstrapBuffer(badType).readDir(a, 0, () => true), isCode('ERR_RAFS_CORRUPT'));
  const nameoff = Buffer.from(bootstrap);
  nameoff.writeUInt16LE(4000, metaBase + a * 32 + 64 + 8);
  assert.throws(() => openBootstrapBuffer(nameoff).lookup(a, Buffer.from('b')), isCode('ERR_RAFS_CORRUPT'));
  assert.equal(resolvePath(img, '/a/b'), nids.get('/a/b'));
});

test('v6 synthetic TARFS: 512-byte blocks, chunks address the raw tar by block number', () => {
  const a = pattern(10_000, 11);
  const b = pattern(700, 12);
  const kids: Record<string, SynthNode> = { a: { type: 'file', data: a }, b: { type: 'file', data: b } };
  for (let i = 0; i < 60; i++) kids[`pad-${i}`] = { type: 'file', size: 0 };
  const { bootstrap, blob, nids } = buildV6({ type: 'dir', children: { d: { type: 'dir', children: kids } } }, { tarfs: true, chunkSize: 4096 });
  const img = openBootstrapBuffer(bootstrap);
  assert.deepEqual([img.super.tarfs, img.super.blockSize, img.super.compressor, img.blobs[0]?.features], [true, 512, 'none', 0x40 | 0x2000_0000 | 0x4000_0000]);
  const d = nids.get('/d') as number;
  assert.ok(img.getAttr(d).size > 512, 'multi-block directory in 512-byte blocks');
  assert.equal(names(img, d).length, 64);
  const ca = img.chunks(nids.get('/d/a') as number);
  assert.deepEqual(ca.map((c) => [c.fileOffset, c.uncompressedSize, c.compressedOffset % 512, c.compressed]), [
    [0, 4096, 0, false],
    [4096, 4096, 0, false],
    [8192, 10_000 - 8192, 0, false],
  ]);
  assert.ok(readFileBytes(img, nids.get('/d/a') as number, oneBlob(blob.blob)).equals(a));
  assert.ok(readFileBytes(img, nids.get('/d/b') as number, oneBlob(blob.blob)).equals(b));
});
