/**
 * The filesystem layer (src/fs) on synthetic images, without a kernel: node ids, negative
 * entries, presentation rules (root 0755, implicit owner, start time for missing mtimes),
 * resumable readdir within the reply budget, xattr gating, open checks, lseek over holes, and
 * READs (including holes) through a dummycache storage.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';

import type { AttrPolicy } from '../../src/fs/attr.js';
import { kRootNodeId } from '../../src/fs/nodes.js';
import { RafsFilesystem } from '../../src/fs/rafs-fs.js';
import type { FuseAttr, FuseAttrReply, FuseDirEntry, FuseDirEntryPlus, FuseEntry, FuseRequestContext } from '../../src/fuse/index.js';
import { FuseErrno, fuseDirentSize } from '../../src/fuse/index.js';
import type { RafsImage } from '../../src/rafs/index.js';
import { openBootstrapBuffer } from '../../src/rafs/index.js';
import type { ImageStorage, StorageService } from '../../src/storage/index.js';
import { StorageService as Storage, storageSettings } from '../../src/storage/index.js';
import { nullLogger } from '../../src/util/logger.js';
import { buildV5 } from '../helpers/rafs-synth-v5.js';

const ctx: FuseRequestContext = { nodeid: 0, uid: 1000, gid: 1000, pid: 1 };
const policy: AttrPolicy = { uid: 4242, gid: 4343, startTimeSec: 1_700_000_000 };
const kChunk = 4096;

function pattern(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed + (i >> 9)) & 0xff;
  return b;
}

const holey = pattern(6 * kChunk + 100, 1);
holey.fill(0, 0, 2 * kChunk);
holey.fill(0, 4 * kChunk, 5 * kChunk);
const manyNames = Array.from({ length: 300 }, (_, i) => `entry-${String(i).padStart(4, '0')}`);

let work = '';
let image: RafsImage;
let service: StorageService;
let storage: ImageStorage;

function makeFs(opts: { xattr?: boolean } = {}): RafsFilesystem {
  return new RafsFilesystem(image, storage, {
    entryTimeout: 7,
    attrTimeout: 9,
    xattr: opts.xattr ?? true,
    policy,
    log: nullLogger(),
    nativeBlobs: new Set(),
  });
}

before(async () => {
  work = mkdtempSync(join(tmpdir(), 'fs-rafs-'));
  const { bootstrap, blob } = buildV5(
    {
      type: 'dir',
      mode: 0o700,
      children: {
        holey: { type: 'file', data: holey, holes: [0, 1, 4] },
        dense: { type: 'file', data: pattern(3 * kChunk, 2), mtime: 1_600_000_000, mtimeNsec: 5 },
        link: { type: 'hardlink', target: '/dense' },
        sl: { type: 'symlink', target: '../somewhere' },
        xa: { type: 'file', data: Buffer.alloc(0), xattrs: { 'user.k': Buffer.from('v') } },
        many: { type: 'dir', children: Object.fromEntries(manyNames.map((n) => [n, { type: 'file' as const, data: Buffer.alloc(0) }])) },
      },
    },
    { compressor: 'zstd', digester: 'blake3', chunkSize: kChunk, explicitUidGid: false, blobId: 'b'.repeat(64) },
  );
  image = openBootstrapBuffer(bootstrap, 'synthetic-v5');
  writeFileSync(join(work, 'b'.repeat(64)), blob.blob);
  service = await Storage.create(
    storageSettings({ version: 2, id: '', backend: { type: 'localfs', localfs: { dir: work, blob_file: '', alt_dirs: [] } }, external_backends: [], cache: { type: 'dummycache' } } as never),
    nullLogger(),
  );
  storage = await service.openImage(image.blobs);
});

after(async () => {
  await storage.close();
  await service.close();
  rmSync(work, { recursive: true, force: true });
});

function entry(r: unknown): FuseEntry {
  assert.ok(!(r instanceof FuseErrno), `unexpected errno ${(r as FuseErrno).errno}`);
  return r as FuseEntry;
}

test('lookup: entries carry the node id, attrs and timeouts; hardlinks share a node id; misses are negative entries', () => {
  const fs = makeFs();
  const dense = entry(fs.lookup(ctx, kRootNodeId, Buffer.from('dense')));
  const link = entry(fs.lookup(ctx, kRootNodeId, Buffer.from('link')));
  assert.ok(dense.nodeid > 1);
  assert.equal(link.nodeid, dense.nodeid);
  assert.deepEqual([dense.entryTimeout, dense.attrTimeout], [7, 9]);
  const a = dense.attr as FuseAttr;
  assert.deepEqual([a.uid, a.gid, a.nlink, a.size, a.mtime, a.mtimeNsec], [4242, 4343, 2, 3 * kChunk, 1_600_000_000, 5]);
  assert.deepEqual(fs.lookup(ctx, kRootNodeId, Buffer.from('nope')), { nodeid: 0, entryTimeout: 7 });
  assert.equal((fs.lookup(ctx, dense.nodeid, Buffer.from('x')) as FuseErrno).errno, 20 /* ENOTDIR */);
  assert.equal((fs.lookup(ctx, 999_999, Buffer.from('x')) as FuseErrno).errno, 2 /* ENOENT: never handed out */);
});

test('getattr: the root shows 0755 and missing mtimes show the start time', () => {
  const fs = makeFs();
  const root = fs.getattr(ctx, kRootNodeId) as FuseAttrReply;
  assert.equal(root.attr.mode & 0o7777, 0o755);
  assert.equal(root.attr.mode & 0o170000, 0o040000);
  const xa = entry(fs.lookup(ctx, kRootNodeId, Buffer.from('xa')));
  assert.equal((xa.attr as FuseAttr).mtime, 1_700_000_000);
  assert.equal(root.attrTimeout, 9);
});

test('readdir: stable offsets resume anywhere, every reply fits its buffer, nothing lost or repeated', () => {
  const fs = makeFs();
  const many = entry(fs.lookup(ctx, kRootNodeId, Buffer.from('many'))).nodeid;
  for (const plus of [false, true]) {
    const seen: string[] = [];
    let offset = 0;
    for (let round = 0; round < 1000; round++) {
      const r = plus ? fs.readdirplus(ctx, many, 0, offset, 4096) : fs.readdir(ctx, many, 0, offset, 4096);
      assert.ok(Array.isArray(r));
      if (r.length === 0) break;
      const used = r.reduce((n, e) => n + fuseDirentSize(Buffer.byteLength(e.name), plus), 0);
      assert.ok(used <= 4096);
      for (const e of r) seen.push(String(e.name));
      offset = r.at(-1)?.offset ?? offset;
    }
    assert.deepEqual(seen, ['.', '..', ...manyNames]);
  }
  // Resuming from the middle gives the same tail.
  const all = fs.readdir(ctx, many, 0, 0, 1 << 20) as FuseDirEntry[];
  const mid = all[150] as FuseDirEntry;
  const tail = fs.readdir(ctx, many, 0, mid.offset, 1 << 20) as FuseDirEntry[];
  assert.deepEqual(tail.map((e) => String(e.name)), all.slice(151).map((e) => String(e.name)));
  const plus = fs.readdirplus(ctx, many, 0, 0, 1 << 20) as FuseDirEntryPlus[];
  assert.equal(plus.length, manyNames.length + 2);
});

test('xattrs: served when enabled, ENODATA when absent, ENOSYS when switched off', () => {
  const on = makeFs({ xattr: true });
  const xa = entry(on.lookup(ctx, kRootNodeId, Buffer.from('xa'))).nodeid;
  assert.deepEqual(on.getxattr(ctx, xa, Buffer.from('user.k')), Buffer.from('v'));
  assert.equal((on.getxattr(ctx, xa, Buffer.from('user.none')) as FuseErrno).errno, 61 /* ENODATA */);
  assert.deepEqual((on.listxattr(ctx, xa) as Buffer[]).map(String), ['user.k']);
  const off = makeFs({ xattr: false });
  assert.equal((off.getxattr(ctx, xa, Buffer.from('user.k')) as FuseErrno).errno, 38 /* ENOSYS */);
  assert.equal((off.listxattr(ctx, xa) as FuseErrno).errno, 38);
});

test('open/readlink check types; READ through dummycache returns the bytes, holes as zeros', async () => {
  const fs = makeFs();
  assert.equal((fs.open(ctx, kRootNodeId) as FuseErrno).errno, 21 /* EISDIR */);
  const sl = entry(fs.lookup(ctx, kRootNodeId, Buffer.from('sl'))).nodeid;
  assert.deepEqual(fs.readlink(ctx, sl), Buffer.from('../somewhere'));
  const h = entry(fs.lookup(ctx, kRootNodeId, Buffer.from('holey'))).nodeid;
  assert.equal((fs.readlink(ctx, h) as FuseErrno).errno, 22 /* EINVAL */);
  const o = fs.open(ctx, h);
  assert.ok(!(o instanceof FuseErrno) && o.extents === undefined, 'dummycache blobs are read through JS');
  const data = await fs.read(ctx, h, o.fh, 0, holey.length + 4096);
  assert.ok(Buffer.isBuffer(data) && data.equals(holey));
  const part = await fs.read(ctx, h, o.fh, 3 * kChunk + 10, 5000);
  assert.ok(Buffer.isBuffer(part) && part.equals(holey.subarray(3 * kChunk + 10, 3 * kChunk + 5010)));
  assert.equal(fs.jsReads, 2);
  fs.release(ctx, h, o.fh);
  assert.equal(((await fs.read(ctx, h, o.fh, 0, 10)) as FuseErrno).errno, 9 /* EBADF after release */);
});

test('lseek: SEEK_DATA and SEEK_HOLE follow the chunk map of a file with holes', () => {
  const fs = makeFs();
  const h = entry(fs.lookup(ctx, kRootNodeId, Buffer.from('holey'))).nodeid;
  const o = fs.open(ctx, h);
  assert.ok(!(o instanceof FuseErrno));
  const seek = (off: number, whence: number): number => {
    const r = fs.lseek(ctx, h, o.fh, off, whence);
    return r instanceof FuseErrno ? -r.errno : r;
  };
  assert.equal(seek(0, 3), 2 * kChunk); // first data after the head hole
  assert.equal(seek(2 * kChunk, 4), 4 * kChunk); // data runs to the middle hole
  assert.equal(seek(4 * kChunk + 1, 3), 5 * kChunk);
  assert.equal(seek(5 * kChunk, 4), holey.length); // EOF counts as a hole
  assert.equal(seek(holey.length, 3), -6 /* ENXIO at EOF */);
  assert.equal(seek(0, 4), 0); // offset 0 is already in a hole
  assert.equal(seek(0, 1), -22 /* only DATA/HOLE reach us */);
});
