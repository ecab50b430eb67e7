/**
 * The pseudo root and its router (src/fs/vfs.ts, pseudo-tree.ts, node-space.ts) with stand-in
 * filesystems: upstream's pseudo-directory semantics, id and handle translation per slot, the
 * mount at "/", ENOENT after detach, xattr ENOSYS kept from poisoning other mounts, and the
 * in-flight tracking an umount waits on. Plus the slot allocators of the mount table.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { globalId, innerOf, kSlotSpan, slotOf, slotRange } from '../../src/fs/node-space.js';
import { canonicalMountpoint, mountpointComponents } from '../../src/fs/pseudo-tree.js';
import { Vfs } from '../../src/fs/vfs.js';
import type { FuseAttr, FuseDirEntryPlus, FuseEntry, FuseFilesystem, FuseOpenReply, FuseRequestContext } from '../../src/fuse/index.js';
import { FuseErrno, fuseErrno } from '../../src/fuse/index.js';
import { BlobSlots, MountSlots } from '../../src/daemon/slots.js';
import { nullLogger } from '../../src/util/logger.js';

const ctx = (nodeid: number): FuseRequestContext => ({ nodeid, uid: 0, gid: 0, pid: 1 });
const attr = (ino: number, mode: number, size = 0): FuseAttr => ({ ino, mode, nlink: 1, uid: 0, gid: 0, size, atime: 0, mtime: 0, ctime: 0 });

/** A two-node filesystem: root (1) with file "f" (node 2, `content`), async reads when asked. */
function fakeFs(content: string, opts: { asyncRead?: Promise<void> } = {}): FuseFilesystem & { calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    lookup(_c, parent, name): FuseEntry | FuseErrno {
      calls.push(`lookup ${parent} ${name.toString()}`);
      if (parent === 1 && name.toString() === 'f') return { nodeid: 2, attr: attr(2, 0o100644, content.length), entryTimeout: 5 };
      return { nodeid: 0, entryTimeout: 5 };
    },
    getattr(_c, nodeid, fh) {
      calls.push(`getattr ${nodeid} ${String(fh)}`);
      return nodeid === 1 ? { attr: attr(1, 0o040755), attrTimeout: 7 } : { attr: attr(2, 0o100644, content.length) };
    },
    open(_c, nodeid): FuseOpenReply {
      calls.push(`open ${nodeid}`);
      return { fh: 3, keepCache: true };
    },
    read(_c, nodeid, fh, off, size) {
      calls.push(`read ${nodeid} ${fh}`);
      const data = Buffer.from(content).subarray(off, off + size);
      return opts.asyncRead ? opts.asyncRead.then(() => data) : data;
    },
    release(_c, nodeid, fh) {
      calls.push(`release ${nodeid} ${fh}`);
    },
    readdirplus(_c, nodeid, _fh, offset): FuseDirEntryPlus[] {
      if (nodeid !== 1 || offset > 0) return [];
      return [{ name: 'f', offset: 1, entry: { nodeid: 2, attr: attr(2, 0o100644, content.length) } }];
    },
    getxattr() {
      return fuseErrno('ENOSYS');
    },
  };
}

test('node ids: a 2^44 slot per filesystem, below 2^53', () => {
  assert.equal(kSlotSpan, 2 ** 44);
  const id = globalId(255, 2 ** 44 - 1) as number;
  assert.ok(id < 2 ** 53);
  assert.equal(slotOf(id), 255);
  assert.equal(innerOf(id), 2 ** 44 - 1);
  assert.equal(globalId(1, 2 ** 44), undefined);
  assert.deepEqual(slotRange(2), [2 * 2 ** 44, 3 * 2 ** 44]);
});

test('mountpoints: absolute, no "..", canonical spelling', () => {
  assert.deepEqual(mountpointComponents('/rafs//x/./lowerdir/'), ['rafs', 'x', 'lowerdir']);
  assert.equal(canonicalMountpoint('/'), '/');
  assert.equal(canonicalMountpoint('//a/b/'), '/a/b');
  assert.throws(() => mountpointComponents('rafs/x'), /must be an absolute path/);
  assert.throws(() => mountpointComponents('/a/../b'), /must not contain "\.\."/);
  assert.throws(() => mountpointComponents('/a\0b'), /NUL/);
  assert.throws(() => mountpointComponents(`/${'x'.repeat(256)}`), /longer than 255 bytes/);
});

test('pseudo directories: listed, looked up (entry timeout 0), crossing into mounts; ENOENT after detach', async () => {
  const vfs = new Vfs(nullLogger());
  const dir = vfs.tree.ensure(['rafs', 'c1', 'lowerdir']);
  const fs = fakeFs('hello');
  vfs.attach(dir, { slot: 3, fs });
  const rafs = vfs.lookup(ctx(1), 1, Buffer.from('rafs')) as FuseEntry;
  assert.equal(rafs.entryTimeout, 0);
  assert.equal(rafs.attr?.mode, 0o040777);
  assert.equal(rafs.attr?.uid, 0);
  const c1 = vfs.lookup(ctx(rafs.nodeid), rafs.nodeid, Buffer.from('c1')) as FuseEntry;
  const root = (await vfs.lookup(ctx(c1.nodeid), c1.nodeid, Buffer.from('lowerdir'))) as FuseEntry;
  assert.equal(root.nodeid, 3 * kSlotSpan + 1, 'the mount root');
  assert.equal(root.attr?.ino, root.nodeid);
  assert.equal(root.entryTimeout, 0);
  assert.equal(root.attrTimeout, 7);
  const missing = vfs.lookup(ctx(1), 1, Buffer.from('nope'));
  assert.ok(missing instanceof FuseErrno && missing.errno === 2, 'ENOENT, not a cached negative entry');
  // Inside the mount: inner ids translated both ways, handles too.
  const f = vfs.lookup(ctx(root.nodeid), root.nodeid, Buffer.from('f')) as FuseEntry;
  assert.equal(f.nodeid, 3 * kSlotSpan + 2);
  assert.equal(f.attr?.ino, f.nodeid);
  const neg = vfs.lookup(ctx(root.nodeid), root.nodeid, Buffer.from('g')) as FuseEntry;
  assert.deepEqual(neg, { nodeid: 0, entryTimeout: 5 });
  const h = vfs.open(ctx(f.nodeid), f.nodeid, 0) as FuseOpenReply;
  assert.equal(h.fh, 3 * kSlotSpan + 3);
  assert.deepEqual(vfs.read(ctx(f.nodeid), f.nodeid, h.fh, 1, 3), Buffer.from('ell'));
  assert.ok(fs.calls.includes('read 2 3'), fs.calls.join());
  const plus = vfs.readdirplus(ctx(root.nodeid), root.nodeid, 0, 0, 4096) as FuseDirEntryPlus[];
  assert.equal(plus[0]?.entry.nodeid, f.nodeid);
  // Pseudo listings: children only, 1-based cookies, the mounted child shown by its root.
  const list = vfs.readdir(ctx(c1.nodeid), c1.nodeid, 0, 0, 4096) as { name: string; ino: number; offset: number }[];
  assert.deepEqual(list.map((e) => [e.name, e.ino, e.offset]), [['lowerdir', root.nodeid, 1]]);
  assert.deepEqual(vfs.readdir(ctx(c1.nodeid), c1.nodeid, 0, 1, 4096), []);
  // xattrs: ENOSYS from one mount must not switch xattrs off for the whole connection.
  const x = vfs.getxattr(ctx(f.nodeid), f.nodeid, Buffer.from('user.a'));
  assert.ok(x instanceof FuseErrno && x.errno === 95, 'EOPNOTSUPP');
  assert.ok((vfs.getxattr(ctx(1), 1, Buffer.from('user.a')) as FuseErrno).errno === 61, 'pseudo: ENODATA');

  vfs.detach(3);
  const gone = vfs.getattr(ctx(f.nodeid), f.nodeid, undefined);
  assert.ok(gone instanceof FuseErrno && gone.errno === 2);
  assert.ok((vfs.read(ctx(f.nodeid), f.nodeid, h.fh, 0, 1) as FuseErrno).errno === 9, 'EBADF for old handles');
  assert.equal(vfs.release(ctx(f.nodeid), f.nodeid, h.fh, 0), undefined, 'releasing a gone handle is fine');
  // The pseudo directory stays (as upstream) and is empty.
  const again = vfs.lookup(ctx(c1.nodeid), c1.nodeid, Buffer.from('lowerdir')) as FuseEntry;
  assert.equal(again.nodeid, dir.id);
  assert.deepEqual(vfs.readdir(ctx(dir.id), dir.id, 0, 0, 4096), []);
});

test('a mount at "/" serves the FUSE root; readdir room limits listings', () => {
  const vfs = new Vfs(nullLogger());
  vfs.attach(vfs.tree.root, { slot: 9, fs: fakeFs('x') });
  assert.equal(vfs.rootSlot, 9);
  const a = vfs.getattr(ctx(1), 1, undefined) as { attr: FuseAttr };
  assert.equal(a.attr.ino, 1);
  assert.equal(a.attr.mode, 0o040755);
  const f = vfs.lookup(ctx(1), 1, Buffer.from('f')) as FuseEntry;
  assert.equal(f.nodeid, 9 * kSlotSpan + 2);
  vfs.detach(9);
  assert.equal(vfs.rootSlot, 0);
  assert.equal((vfs.getattr(ctx(1), 1, undefined) as { attr: FuseAttr }).attr.mode, 0o040777);
  const many = new Vfs(nullLogger());
  for (let i = 0; i < 50; i++) many.tree.ensure([`dir-${i}`]);
  const first = many.readdir(ctx(1), 1, 0, 0, 24 * 10) as { offset: number }[];
  assert.equal(first.length, 7, '32-byte records (5-byte names) in 240 bytes');
  const rest = many.readdir(ctx(1), 1, 0, first.at(-1)?.offset ?? 0, 1 << 16) as unknown[];
  assert.equal(first.length + rest.length, 50);
});

test('asynchronous answers are tracked per mount until they settle, also after detach', async () => {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const vfs = new Vfs(nullLogger());
  vfs.attach(vfs.tree.ensure(['m']), { slot: 2, fs: fakeFs('data', { asyncRead: gate }) });
  const node = 2 * kSlotSpan + 2;
  const pending = vfs.read(ctx(node), node, 2 * kSlotSpan + 3, 0, 4) as Promise<Buffer>;
  assert.equal(vfs.inflight(2).length, 1);
  assert.equal(vfs.inflight()[0]?.inode, node);
  vfs.detach(2);
  let idle = false;
  const waited = vfs.whenIdle(2).then(() => (idle = true));
  await new Promise((r) => setImmediate(r));
  assert.equal(idle, false, 'the umount waits for the running read');
  release();
  assert.deepEqual(await pending, Buffer.from('data'));
  await waited;
  assert.equal(vfs.inflight().length, 0);
  await vfs.whenIdle(2);
});

test('slot allocators: round-robin mount slots, FIFO blob slots, exhaustion', () => {
  const m = new MountSlots(1, 3);
  assert.deepEqual([m.take(), m.take()], [1, 2]);
  m.give(1);
  assert.equal(m.take(), 3, 'a freed slot comes back after the others');
  assert.equal(m.take(), 1);
  assert.equal(m.take(), undefined);
  const b = new BlobSlots(4);
  assert.deepEqual(b.take(3), [0, 1, 2]);
  assert.equal(b.take(2), undefined, 'all or nothing');
  b.give([1]);
  assert.deepEqual(b.take(2), [3, 1]);
  assert.equal(b.available, 0);
  // Freed slots come back in the order they were freed, after every slot never used.
  const c = new BlobSlots(6);
  assert.deepEqual(c.take(2), [0, 1]);
  c.give([1, 0]);
  assert.equal(c.available, 6);
  assert.deepEqual(c.take(5), [2, 3, 4, 5, 1]);
  c.give([3]);
  assert.deepEqual(c.take(2), [0, 3]);
  assert.equal(c.take(1), undefined);
});

test('forgets and unsent readdirplus records reach the mount that counts lookups, in its own ids', () => {
  const vfs = new Vfs(nullLogger());
  const got: string[] = [];
  const counting: FuseFilesystem = {
    ...fakeFs('x'),
    forget: (items) => got.push(...items.map((i) => `forget ${i.nodeid}x${i.nlookup}`)),
    readdirplusUnsent: (_c, dir, unsent) => got.push(`unsent ${dir}: ${unsent.map((u) => `${String(u.name)}=${u.entry.nodeid}`).join(',')}`),
  };
  vfs.attach(vfs.tree.ensure(['w']), { slot: 3, fs: counting });
  vfs.attach(vfs.tree.ensure(['r']), { slot: 4, fs: fakeFs('y') });
  const id = (slot: number, inner: number): number => globalId(slot, inner) as number;
  vfs.forget([{ nodeid: id(3, 7), nlookup: 2 }, { nodeid: 1, nlookup: 1 }, { nodeid: 2, nlookup: 1 }, { nodeid: id(4, 9), nlookup: 1 }, { nodeid: id(3, 1), nlookup: 5 }, { nodeid: id(9, 2), nlookup: 1 }]);
  vfs.readdirplusUnsent(ctx(id(3, 1)), id(3, 1), [{ name: 'a', offset: 1, entry: { nodeid: id(3, 8), entryTimeout: 1 } }, { name: 'b', offset: 2, entry: { nodeid: 0, entryTimeout: 1 } }]);
  // The pseudo tree (slot 0) and the FUSE root count nothing; slot 4 has no forget; slot 9 is empty.
  assert.deepEqual(got, ['forget 7x2', 'forget 1x5', 'unsent 1: a=8,b=0']);
});
