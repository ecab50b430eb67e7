/**
 * OverlayFilesystem (src/fs/overlay-fs.ts) without a kernel: a synthetic RAFS v5 image below a
 * host upper directory. Precedence of upper names, whiteouts (also of names the lower never
 * had), opaque directories in both xattr spellings, a lower non-directory under an upper
 * directory, merged listings paged through small reply budgets (upper first, nothing lost or
 * repeated), node ids (lower ones passed through, upper ones from the host inode, hardlinks
 * shared), upper reads and handles, hidden private xattrs, bad names, lseek, access and a file
 * replaced on the host behind the view.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { linkSync, lstatSync, mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';

import type { AttrPolicy } from '../../src/fs/attr.js';
import { kUpperBase, OverlayFilesystem } from '../../src/fs/overlay-fs.js';
import { RafsFilesystem } from '../../src/fs/rafs-fs.js';
import type { FuseAttrReply, FuseDirEntry, FuseDirEntryPlus, FuseEntry, FuseOpenReply, FuseRequestContext } from '../../src/fuse/index.js';
import { FuseErrno, fuseDirentSize, kErrno } from '../../src/fuse/index.js';
import { setXattr } from '../../src/native/index.js';
import type { RafsImage } from '../../src/rafs/index.js';
import { openBootstrapBuffer } from '../../src/rafs/index.js';
import type { ImageStorage, StorageService } from '../../src/storage/index.js';
import { StorageService as Storage, storageSettings } from '../../src/storage/index.js';
import { nullLogger } from '../../src/util/logger.js';
import { buildV5 } from '../helpers/rafs-synth-v5.js';

const ctx: FuseRequestContext = { nodeid: 0, uid: 1000, gid: 1000, pid: 1 };
const policy: AttrPolicy = { uid: 0, gid: 0, startTimeSec: 1_700_000_000 };
const kRoot = process.getuid?.() === 0;
const lowerMany = Array.from({ length: 120 }, (_, i) => `lower-${String(i).padStart(3, '0')}`);
const upperMany = Array.from({ length: 80 }, (_, i) => `upper-${String(i).padStart(3, '0')}`);

let work = '';
let upper = '';
let image: RafsImage;
let service: StorageService;
let storage: ImageStorage;

const file = (s: string): { type: 'file'; data: Buffer } => ({ type: 'file', data: Buffer.from(s) });

before(async () => {
  work = mkdtempSync(join(tmpdir(), 'fs-overlay-'));
  const { bootstrap, blob } = buildV5(
    {
      type: 'dir',
      children: {
        keep: file('lower keep'),
        shadowed: file('lower shadowed'),
        gone: file('lower gone'),
        dir: { type: 'dir', children: { l1: file('l1'), both: file('lower both') } },
        opq: { type: 'dir', children: { old: file('old') } },
        uopq: { type: 'dir', children: { old: file('old') } },
        notdir: file('a lower file'),
        many: { type: 'dir', children: Object.fromEntries(lowerMany.map((n) => [n, file(n)])) },
      },
    },
    { compressor: 'none', digester: 'sha256', chunkSize: 4096, explicitUidGid: false, blobId: 'c'.repeat(64) },
  );
  image = openBootstrapBuffer(bootstrap, 'synthetic-v5');
  writeFileSync(join(work, 'c'.repeat(64)), blob.blob);
  service = await Storage.create(
    storageSettings({ version: 2, id: '', backend: { type: 'localfs', localfs: { dir: work, blob_file: '', alt_dirs: [] } }, external_backends: [], cache: { type: 'dummycache' } } as never),
    nullLogger(),
  );
  storage = await service.openImage(image.blobs);

  upper = join(work, 'upper');
  for (const d of ['', 'dir', 'opq', 'uopq', 'notdir', 'many']) mkdirSync(join(upper, d), { recursive: true });
  writeFileSync(join(upper, 'shadowed'), 'upper shadowed, longer');
  writeFileSync(join(upper, 'new'), 'new');
  linkSync(join(upper, 'new'), join(upper, 'new-link'));
  writeFileSync(join(upper, 'dir/both'), 'upper both');
  writeFileSync(join(upper, 'opq/fresh'), 'fresh');
  // trusted.* needs root (CAP_SYS_ADMIN); the test that reads it is skipped without.
  if (kRoot) setXattr(Buffer.from(join(upper, 'opq')), Buffer.from('trusted.overlay.opaque'), Buffer.from('y'));
  setXattr(Buffer.from(join(upper, 'uopq')), Buffer.from('user.overlay.opaque'), Buffer.from('y'));
  setXattr(Buffer.from(join(upper, 'new')), Buffer.from('user.visible'), Buffer.from('v'));
  setXattr(Buffer.from(join(upper, 'new')), Buffer.from('user.overlay.private'), Buffer.from('p'));
  for (const n of upperMany) writeFileSync(join(upper, 'many', n), n);
  if (kRoot) {
    execFileSync('mknod', [join(upper, 'gone'), 'c', '0', '0']);
    execFileSync('mknod', [join(upper, 'never'), 'c', '0', '0']);
    execFileSync('mknod', [join(upper, 'many', 'lower-000'), 'c', '0', '0']);
  }
});

after(async () => {
  await storage.close();
  await service.close();
  rmSync(work, { recursive: true, force: true });
});

function makeFs(): OverlayFilesystem {
  const lower = new RafsFilesystem(image, storage, { entryTimeout: 7, attrTimeout: 9, xattr: true, policy, log: nullLogger(), nativeBlobs: new Set() });
  return new OverlayFilesystem(lower, upper, { entryTimeout: 7, attrTimeout: 9, log: nullLogger() });
}

function ok<T>(r: T | FuseErrno): T {
  if (r instanceof FuseErrno) assert.fail(`unexpected errno ${r.errno}`);
  return r;
}

async function look(fs: OverlayFilesystem, parent: number, name: string): Promise<FuseEntry> {
  return ok(await fs.lookup(ctx, parent, Buffer.from(name)));
}

async function readAll(fs: OverlayFilesystem, nodeid: number): Promise<string> {
  const o = ok<FuseOpenReply>(await fs.open(ctx, nodeid, 0));
  const data = ok(await fs.read(ctx, nodeid, o.fh, 0, 1 << 16));
  await fs.release(ctx, nodeid, o.fh, 0);
  return Buffer.from(data).toString();
}

/** Every name of directory `nodeid`, paged through `budget`-byte replies. */
async function listAll(fs: OverlayFilesystem, nodeid: number, plus: boolean, budget: number): Promise<string[]> {
  const o = ok<FuseOpenReply>(await fs.opendir(ctx, nodeid, 0));
  const names: string[] = [];
  for (let offset = 0; ; ) {
    const r = ok<(FuseDirEntry | FuseDirEntryPlus)[]>(await (plus ? fs.readdirplus(ctx, nodeid, o.fh, offset, budget) : fs.readdir(ctx, nodeid, o.fh, offset, budget)));
    if (r.length === 0) break;
    assert.ok(r.reduce((n, e) => n + fuseDirentSize(Buffer.byteLength(e.name), plus), 0) <= budget);
    for (const e of r) names.push(String(e.name));
    offset = r.at(-1)?.offset ?? offset;
  }
  await fs.releasedir(ctx, nodeid, o.fh, 0);
  return names;
}

test('lookup: upper names win, lower names show through, lower ids pass through and upper ids follow the host inode', async () => {
  const fs = makeFs();
  const keep = await look(fs, 1, 'keep');
  assert.ok(keep.nodeid > 1 && keep.nodeid < kUpperBase);
  assert.equal(await readAll(fs, keep.nodeid), 'lower keep');
  const shadowed = await look(fs, 1, 'shadowed');
  assert.equal(shadowed.nodeid, kUpperBase + lstatSync(join(upper, 'shadowed')).ino);
  assert.equal(shadowed.attr?.size, 'upper shadowed, longer'.length);
  assert.equal(await readAll(fs, shadowed.nodeid), 'upper shadowed, longer');
  assert.equal((await look(fs, 1, 'new-link')).nodeid, (await look(fs, 1, 'new')).nodeid, 'upper hardlinks share a node');
  assert.equal((await look(fs, 1, 'shadowed')).nodeid, shadowed.nodeid, 'the same node on a second lookup');
  assert.deepEqual(await fs.lookup(ctx, 1, Buffer.from('absent')), { nodeid: 0, entryTimeout: 7 });
  // A merged directory: both layers, nlink 1; an upper file inside it wins over the lower one.
  const dir = await look(fs, 1, 'dir');
  assert.equal(dir.attr?.nlink, 1);
  assert.equal(await readAll(fs, (await look(fs, dir.nodeid, 'both')).nodeid), 'upper both');
  assert.equal(await readAll(fs, (await look(fs, dir.nodeid, 'l1')).nodeid), 'l1');
  // An upper directory over a lower file is not merged.
  const notdir = await look(fs, 1, 'notdir');
  assert.deepEqual(await listAll(fs, notdir.nodeid, false, 4096), ['.', '..']);
  assert.equal(notdir.attr?.nlink, lstatSync(join(upper, 'notdir')).nlink);
});

test('whiteouts hide lower names (and themselves); opaque directories hide the lower directory, in both xattr spellings', { skip: !kRoot && 'mknod of a whiteout needs root' }, async () => {
  const fs = makeFs();
  assert.deepEqual(await fs.lookup(ctx, 1, Buffer.from('gone')), { nodeid: 0, entryTimeout: 7 });
  assert.deepEqual(await fs.lookup(ctx, 1, Buffer.from('never')), { nodeid: 0, entryTimeout: 7 });
  for (const name of ['opq', 'uopq']) {
    const d = await look(fs, 1, name);
    assert.deepEqual(await fs.lookup(ctx, d.nodeid, Buffer.from('old')), { nodeid: 0, entryTimeout: 7 });
    assert.notEqual(d.attr?.nlink, 1, 'an opaque directory is not merged');
  }
  const root = await listAll(fs, 1, true, 4096);
  for (const hidden of ['gone', 'never']) assert.ok(!root.includes(hidden));
  assert.deepEqual(await listAll(fs, (await look(fs, 1, 'opq')).nodeid, false, 4096), ['.', '..', 'fresh']);
  assert.deepEqual(await listAll(fs, (await look(fs, 1, 'uopq')).nodeid, false, 4096), ['.', '..']);
});

test('merged listings: upper names first, then the lower ones not hidden, each once, through small replies', async () => {
  const fs = makeFs();
  const many = await look(fs, 1, 'many');
  const lowerShown = kRoot ? lowerMany.slice(1) : lowerMany;
  for (const plus of [false, true]) {
    const names = await listAll(fs, many.nodeid, plus, 512);
    assert.deepEqual(names.slice(0, 2), ['.', '..']);
    assert.deepEqual(names.slice(2, 2 + upperMany.length).sort(), upperMany);
    assert.deepEqual(names.slice(2 + upperMany.length), lowerShown);
  }
  const dir = await look(fs, 1, 'dir');
  assert.deepEqual((await listAll(fs, dir.nodeid, false, 4096)).sort(), ['.', '..', 'both', 'l1']);
  // Entries of a readdirplus are the lookups' entries.
  const o = ok<FuseOpenReply>(await fs.opendir(ctx, dir.nodeid, 0));
  const plus = ok<FuseDirEntryPlus[]>(await fs.readdirplus(ctx, dir.nodeid, o.fh, 0, 1 << 16));
  for (const e of plus.slice(2)) assert.equal(e.entry.nodeid, (await look(fs, dir.nodeid, String(e.name))).nodeid);
});

test('xattrs of upper nodes leave out overlayfs private names; bad names, stale nodes and handles get their errno', async () => {
  const fs = makeFs();
  const n = await look(fs, 1, 'new');
  assert.deepEqual((ok(await fs.listxattr(ctx, n.nodeid)) as Buffer[]).map(String), ['user.visible']);
  assert.equal(String(ok(await fs.getxattr(ctx, n.nodeid, Buffer.from('user.visible')))), 'v');
  assert.equal((await fs.getxattr(ctx, n.nodeid, Buffer.from('user.overlay.private')) as FuseErrno).errno, kErrno.ENODATA);
  const opq = await look(fs, 1, 'opq');
  assert.ok(!(ok(await fs.listxattr(ctx, opq.nodeid)) as Buffer[]).some((x) => String(x).includes('overlay')));
  assert.equal((await fs.lookup(ctx, 1, Buffer.from('a/b')) as FuseErrno).errno, kErrno.EINVAL);
  assert.equal((await fs.lookup(ctx, 1, Buffer.alloc(256, 0x61)) as FuseErrno).errno, kErrno.ENAMETOOLONG);
  assert.equal((await fs.lookup(ctx, n.nodeid, Buffer.from('x')) as FuseErrno).errno, kErrno.ENOTDIR);
  assert.equal((await fs.read(ctx, n.nodeid, kUpperBase + 12345, 0, 10) as FuseErrno).errno, kErrno.EBADF);
  assert.equal((await fs.getattr(ctx, kUpperBase + 2 ** 41, undefined) as FuseErrno).errno, kErrno.ENOENT);
  // lseek: upper files are all data; access: a read-only view.
  const o = ok<FuseOpenReply>(await fs.open(ctx, n.nodeid, 0));
  assert.equal(await fs.lseek(ctx, n.nodeid, o.fh, 1, 3), 1);
  assert.equal(await fs.lseek(ctx, n.nodeid, o.fh, 1, 4), 3);
  assert.equal((await fs.lseek(ctx, n.nodeid, o.fh, 3, 3) as FuseErrno).errno, kErrno.ENXIO);
  await fs.release(ctx, n.nodeid, o.fh, 0);
  assert.equal(fs.openFiles, 0);
  assert.equal((await fs.access({ ...ctx, uid: 0 }, n.nodeid, 2) as FuseErrno).errno, kErrno.EROFS);
  // Replaced on the host behind the view: that node is stale, the name leads to the new file.
  const victim = join(upper, 'dir', 'both');
  const before = await look(fs, (await look(fs, 1, 'dir')).nodeid, 'both');
  // Written aside and renamed over: the new inode exists while the old one does, so they differ.
  writeFileSync(`${victim}.tmp`, 'replaced');
  renameSync(`${victim}.tmp`, victim);
  assert.equal((await fs.getattr(ctx, before.nodeid, undefined) as FuseErrno).errno, kErrno.ESTALE);
  assert.equal((await fs.open(ctx, before.nodeid, 0) as FuseErrno).errno, kErrno.ESTALE);
  const after = await look(fs, (await look(fs, 1, 'dir')).nodeid, 'both');
  assert.equal(await readAll(fs, after.nodeid), 'replaced');
  const st = ok<FuseAttrReply>(await fs.getattr(ctx, 1, undefined));
  assert.equal(st.attr.nlink, 1, 'the root merges the image root');
});
