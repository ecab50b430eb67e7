import assert from 'node:assert/strict';
import { test } from 'node:test';

import { chunkDigest, NydusErrorIs, openBootstrapBuffer } from '../helpers/rafs-test-imports.js';
import { buildV5 } from '../helpers/rafs-synth-v5.js';
import { oneBlob, readFileBytes, resolvePath } from '../helpers/rafs-read.js';

const isCode = (code: string) => (e: unknown) => NydusErrorIs(e, code);

function pattern(n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + (i >> 9)) & 0xff;
  return b;
}

test('v5 synthetic: HAS_HOLE files, compressed chunks, xattrs, explicit owners, devices, prefetch, inode digests', () => {
  for (const compressor of ['lz4_block', 'zstd', 'gzip', 'none'] as const) {
    const holey = pattern(6 * 4096 + 100);
    holey.fill(0, 0, 2 * 4096); // head hole: chunks 0, 1
    holey.fill(0, 4 * 4096, 5 * 4096); // middle hole: chunk 4
    const dense = pattern(3 * 4096);
    const { bootstrap, blob, refs } = buildV5(
      {
        type: 'dir',
        children: {
          holey: { type: 'file', data: holey, holes: [0, 1, 4] },
          dense: { type: 'file', data: dense, uid: 1000, gid: 1001, mtime: 1600000000, mtimeNsec: 5 },
          link: { type: 'hardlink', target: '/dense' },
          dev: { type: 'chr', rdev: 0x0103 },
          sl: { type: 'symlink', target: '../somewhere' },
          xa: { type: 'file', data: Buffer.alloc(0), xattrs: { 'user.k': Buffer.from('v'), 'security.selinux': Buffer.from('ctx\0') } },
          sub: { type: 'dir', children: { deep: { type: 'dir', children: {} } } },
        },
      },
      { compressor, digester: 'blake3', chunkSize: 4096, explicitUidGid: true, prefetch: ['/dense', '/sub'] },
    );
    const img = openBootstrapBuffer(bootstrap, `v5-${compressor}`);
    const src = oneBlob(blob.blob);
    const h = refs.get('/holey') as number;
    assert.deepEqual(img.chunks(h).map((c) => c.fileOffset), [2 * 4096, 3 * 4096, 5 * 4096, 6 * 4096]);
    assert.ok(readFileBytes(img, h, src).equals(holey), compressor);
    const d = refs.get('/dense') as number;
    assert.ok(readFileBytes(img, d, src).equals(dense));
    const l = refs.get('/link') as number;
    assert.notEqual(l, d);
    assert.deepEqual([img.getAttr(l).ino, img.getAttr(l).nlink, img.getAttr(d).nlink], [d, 2, 2]);
    assert.ok(readFileBytes(img, l, src).equals(dense));
    const a = img.getAttr(d);
    assert.deepEqual([a.uid, a.gid, a.implicitOwner, a.mtimeSec, a.mtimeNsec], [1000, 1001, false, 1600000000, 5]);
    assert.equal(img.getAttr(refs.get('/dev') as number).rdev, 0x0103);
    assert.equal(img.readLink(refs.get('/sl') as number).toString(), '../somewhere');
    const xa = refs.get('/xa') as number;
    assert.deepEqual(img.listXattrs(xa).map(String), ['user.k', 'security.selinux']);
    assert.equal(img.getXattr(xa, Buffer.from('security.selinux'))?.toString(), 'ctx\0');
    assert.equal(img.getXattr(xa, Buffer.from('user.x')), undefined);
    assert.deepEqual(img.chunks(xa), []);
    assert.deepEqual(img.prefetchRefs(), [d, refs.get('/sub')]);
    img.walk((p, ref, at) => {
      assert.equal(resolvePath(img, p), ref);
      if ((at.mode & 0o170000) === 0o100000) {
        assert.ok((img.inodeDigest(ref) as Buffer).equals(chunkDigest('blake3', Buffer.concat(img.chunks(ref).map((c) => c.digest)))), p);
      }
    });
    if (compressor !== 'none') assert.ok(img.chunks(d).some((c) => c.compressed));
  }
});

test('v5 synthetic: inconsistent chunk lists and child ranges are CORRUPT', () => {
  const { bootstrap, refs } = buildV5(
    { type: 'dir', children: { f: { type: 'file', data: pattern(3 * 4096) }, g: { type: 'file', data: pattern(100) } } },
    { chunkSize: 4096 },
  );
  const img = openBootstrapBuffer(bootstrap);
  const f = refs.get('/f') as number;
  const off = bootstrap.readUInt32LE(8192 + (f - 1) * 4) * 8;
  const fewer = Buffer.from(bootstrap);
  fewer.writeUInt32LE(2, off + 96); // child_count: 2 chunks for 3 chunks of data
  assert.throws(() => openBootstrapBuffer(fewer).chunks(f), isCode('ERR_RAFS_CORRUPT'));
  const overlap = Buffer.from(bootstrap);
  const chunk1 = off + 128 + 8 + 80; // record: inode + name "f" padded to 8, then chunk infos
  overlap.writeBigUInt64LE(0n, chunk1 + 64);
  assert.throws(() => openBootstrapBuffer(overlap).chunks(f), isCode('ERR_RAFS_CORRUPT'));
  const blobIdx = Buffer.from(bootstrap);
  blobIdx.writeUInt32LE(3, chunk1 + 32);
  assert.throws(() => openBootstrapBuffer(blobIdx).chunks(f), isCode('ERR_RAFS_CORRUPT'));
  const kids = Buffer.from(bootstrap);
  const rootOff = bootstrap.readUInt32LE(8192) * 8;
  kids.writeUInt32LE(1000, rootOff + 96);
  assert.throws(() => openBootstrapBuffer(kids).readDir(1, 0, () => true), isCode('ERR_RAFS_CORRUPT'));
  const notRoot = Buffer.from(bootstrap);
  notRoot.writeUInt32LE(0o100644, rootOff + 60);
  assert.throws(() => openBootstrapBuffer(notRoot), isCode('ERR_RAFS_CORRUPT'));
  assert.equal(img.chunks(f).length, 3);
});
