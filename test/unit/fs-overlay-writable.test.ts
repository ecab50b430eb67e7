/**
 * WritableOverlay (src/fs/overlay-writable.ts, overlay-nodes.ts) without a kernel: a synthetic
 * RAFS v5 image below empty upper and work directories, driven as the kernel would.
 * - The node table follows the kernel's lookup counts: LOOKUP, READDIRPLUS records and the
 *   entry ops count, FORGET (and records a reply could not carry) take them back; a node at
 *   zero is dropped unless a known node lives below it; the root always stays; a node found
 *   again has its old id; create/unlink loops do not grow the table; an unlinked open file is
 *   still served through its handle until forgotten.
 * - suid/sgid are cleared as Linux does when the kernel leaves it to the filesystem
 *   (FUSE_WRITE_KILL_SUIDGID, FATTR_KILL_SUIDGID) and on writes and truncates by callers other
 *   than root, and kept otherwise.
 * - FALLOCATE acts on the upper file; a lower (read-only) handle gets EBADF.
 * - RENAME_EXCHANGE swaps upper objects (copying lower ones up), keeps each node with its object,
 *   refuses lower directories (EXDEV); a directory landing in a merged one turns opaque.
 */
import assert from 'node:assert/strict';
import { lstatSync, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';

import type { AttrPolicy } from '../../src/fs/attr.js';
import { RafsFilesystem } from '../../src/fs/rafs-fs.js';
import { WritableOverlay } from '../../src/fs/overlay-writable.js';
import type { FuseCreateReply, FuseDirEntryPlus, FuseEntry, FuseOpenReply, FuseRequestContext } from '../../src/fuse/index.js';
import { FuseErrno, kErrno } from '../../src/fuse/index.js';
import { readXattrs } from '../../src/native/index.js';
import { nullLogger } from '../../src/util/logger.js';
import type { OpenedSynthImage } from '../helpers/synth-image.js';
import { openSynthV5 } from '../helpers/synth-image.js';

const ctx: FuseRequestContext = { nodeid: 0, uid: 0, gid: 0, pid: 1 };
const policy: AttrPolicy = { uid: 0, gid: 0, startTimeSec: 1_700_000_000 };
const kMany = Array.from({ length: 60 }, (_, i) => `f${String(i).padStart(2, '0')}`);
const O_RDWR = 2;

let work = '';
let img: OpenedSynthImage;
let n = 0;

const file = (s: string): { type: 'file'; data: Buffer } => ({ type: 'file', data: Buffer.from(s) });
const B = (s: string): Buffer => Buffer.from(s);

before(async () => {
  work = mkdtempSync(join(tmpdir(), 'fs-wovl-'));
  const tree = {
    type: 'dir' as const,
    children: {
      keep: file('lower keep'),
      dir: { type: 'dir' as const, children: { a: file('a'), sub: { type: 'dir' as const, children: { deep: file('deep') } } } },
      many: { type: 'dir' as const, children: Object.fromEntries(kMany.map((m) => [m, file(m)])) },
    },
  };
  img = await openSynthV5(work, tree, { compressor: 'none', digester: 'sha256', chunkSize: 4096, explicitUidGid: false, blobId: 'd'.repeat(64) });
});

after(async () => {
  await img.close();
  rmSync(work, { recursive: true, force: true });
});

/** A fresh overlay over the image with empty upper and work directories. */
async function makeFs(): Promise<{ fs: WritableOverlay; upper: string }> {
  const base = join(work, `o${n++}`);
  const upper = join(base, 'upper');
  const wd = join(base, 'work');
  mkdirSync(upper, { recursive: true });
  mkdirSync(wd);
  const lower = new RafsFilesystem(img.image, img.storage, { entryTimeout: 7, attrTimeout: 9, xattr: true, policy, log: nullLogger(), nativeBlobs: new Set() });
  const fs = new WritableOverlay(lower, upper, wd, { entryTimeout: 1, attrTimeout: 1, log: nullLogger() });
  await fs.prepare();
  return { fs, upper };
}

function ok<T>(r: T | FuseErrno): T {
  if (r instanceof FuseErrno) assert.fail(`unexpected errno ${r.errno}`);
  return r;
}

async function look(fs: WritableOverlay, parent: number, name: string): Promise<FuseEntry> {
  const e = ok(await fs.lookup(ctx, parent, B(name)));
  assert.notEqual(e.nodeid, 0, `${name} not found`);
  return e;
}

async function errnoOf(p: unknown): Promise<number> {
  const r = await p;
  return r instanceof FuseErrno ? r.errno : 0;
}

/** READDIRPLUS of a whole directory, as the kernel pages it; the records sent. */
async function readdirplusAll(fs: WritableOverlay, nodeid: number): Promise<FuseDirEntryPlus[]> {
  const o = ok<FuseOpenReply>(await fs.opendir(ctx, nodeid));
  const out: FuseDirEntryPlus[] = [];
  for (let offset = 0; ; ) {
    const r = ok(await fs.readdirplus(ctx, nodeid, o.fh, offset, 4096));
    if (r.length === 0) break;
    out.push(...r);
    offset = r.at(-1)?.offset ?? offset;
  }
  fs.releasedir(ctx, nodeid, o.fh);
  return out;
}

test('the node table follows lookup counts: FORGET drops nodes, ids come back the same, the root stays', async () => {
  const { fs } = await makeFs();
  assert.equal(fs.nodeCount, 1);
  const dir = await look(fs, 1, 'dir');
  const a1 = await look(fs, dir.nodeid, 'a');
  const a2 = await look(fs, dir.nodeid, 'a');
  assert.equal(a2.nodeid, a1.nodeid);
  assert.equal(fs.nodeCount, 3);

  // A READDIRPLUS listing counts every record but "." and "..".
  const many = await look(fs, 1, 'many');
  const recs = await readdirplusAll(fs, many.nodeid);
  assert.equal(recs.length, kMany.length + 2);
  assert.equal(fs.nodeCount, 4 + kMany.length);
  fs.forget(recs.filter((r) => !['.', '..'].includes(String(r.name))).map((r) => ({ nodeid: r.entry.nodeid, nlookup: 1 })));
  assert.equal(fs.nodeCount, 4, 'every listed node forgotten');

  // Two lookups of "a": one FORGET of 1 keeps it, the second drops it.
  fs.forget([{ nodeid: a1.nodeid, nlookup: 1 }]);
  assert.equal(ok(await fs.getattr(ctx, a1.nodeid)).attr.ino, a1.nodeid);
  // "dir" forgotten while "a" is still known: it stays (a's path goes through it).
  fs.forget([{ nodeid: dir.nodeid, nlookup: 1 }]);
  assert.equal(ok(await fs.getattr(ctx, a1.nodeid)).attr.size, 1);
  assert.equal(fs.nodeCount, 4);
  fs.forget([{ nodeid: a1.nodeid, nlookup: 1 }]);
  assert.equal(fs.nodeCount, 2, 'a and then dir went');
  assert.equal(await errnoOf(fs.getattr(ctx, a1.nodeid)), kErrno.ENOENT);
  assert.equal(await errnoOf(fs.getattr(ctx, dir.nodeid)), kErrno.ENOENT);

  // Found again: the same ids. Unknown ids and the root are ignored by FORGET.
  const dirAgain = await look(fs, 1, 'dir');
  assert.equal(dirAgain.nodeid, dir.nodeid);
  assert.equal((await look(fs, dirAgain.nodeid, 'a')).nodeid, a1.nodeid);
  fs.forget([{ nodeid: 1, nlookup: 1000 }, { nodeid: 123456, nlookup: 1 }]);
  assert.equal(ok(await fs.getattr(ctx, 1)).attr.ino, 1);
  // A reply that could not carry a record: its lookup was never counted.
  fs.readdirplusUnsent(ctx, 1, [{ name: 'many', offset: 9, entry: { nodeid: many.nodeid, entryTimeout: 1 } }]);
  assert.equal(await errnoOf(fs.getattr(ctx, many.nodeid)), kErrno.ENOENT);
  // DESTROY: the kernel forgot everything.
  fs.destroy({ reason: 'destroy' });
  assert.equal(fs.nodeCount, 1);
});

test('ids of copied-up and upper objects survive being forgotten; create/unlink loops keep the table flat', async () => {
  const { fs } = await makeFs();
  const dir = await look(fs, 1, 'dir');
  const a = await look(fs, dir.nodeid, 'a');
  ok(await fs.setattr(ctx, a.nodeid, { mode: 0o600 }));
  const made = ok<FuseEntry>(await fs.mkdir(ctx, dir.nodeid, B('made'), 0o755));
  fs.forget([{ nodeid: a.nodeid, nlookup: 1 }, { nodeid: made.nodeid, nlookup: 1 }, { nodeid: dir.nodeid, nlookup: 1 }]);
  assert.equal(fs.nodeCount, 1);
  const dir2 = await look(fs, 1, 'dir');
  assert.equal((await look(fs, dir2.nodeid, 'a')).nodeid, a.nodeid, 'a copied-up file keeps its lower id');
  assert.equal((await look(fs, dir2.nodeid, 'made')).nodeid, made.nodeid, 'an upper directory keeps its id');

  const before = fs.nodeCount;
  for (let i = 0; i < 200; i++) {
    const c = ok<FuseCreateReply>(await fs.create(ctx, 1, B(`tmp${i}`), O_RDWR, 0o644));
    ok(await fs.write(ctx, c.entry.nodeid, c.open.fh, 0, B('x')));
    await fs.release(ctx, c.entry.nodeid, c.open.fh, 0);
    assert.equal(await errnoOf(fs.unlink(ctx, 1, B(`tmp${i}`))), 0);
    fs.forget([{ nodeid: c.entry.nodeid, nlookup: 1 }]);
  }
  assert.equal(fs.nodeCount, before);
});

test('an unlinked open file is served through its handle until forgotten; hard links are one node', async () => {
  const { fs, upper } = await makeFs();
  const c = ok<FuseCreateReply>(await fs.create(ctx, 1, B('f'), O_RDWR, 0o644));
  const l = ok<FuseEntry>(await fs.link(ctx, c.entry.nodeid, 1, B('g')));
  assert.equal(l.nodeid, c.entry.nodeid);
  assert.equal(l.attr?.nlink, 2);
  assert.equal(await errnoOf(fs.unlink(ctx, 1, B('f'))), 0);
  // Still reachable by its other name, same node.
  assert.equal((await look(fs, 1, 'g')).nodeid, c.entry.nodeid);
  assert.equal(await errnoOf(fs.unlink(ctx, 1, B('g'))), 0);
  // Its last name is gone but the kernel holds it (open): fstat and ftruncate by handle work.
  ok(await fs.write(ctx, c.entry.nodeid, c.open.fh, 0, B('hello')));
  assert.equal(ok(await fs.getattr(ctx, c.entry.nodeid, c.open.fh)).attr.size, 5);
  assert.equal(ok(await fs.setattr(ctx, c.entry.nodeid, { size: 2, fh: c.open.fh })).attr.size, 2);
  assert.equal(await errnoOf(fs.getattr(ctx, c.entry.nodeid)), kErrno.ENOENT);
  await fs.release(ctx, c.entry.nodeid, c.open.fh, 0);
  // A new file may take the host inode number meanwhile: it gets another id.
  const d = ok<FuseCreateReply>(await fs.create(ctx, 1, B('h'), O_RDWR, 0o644));
  assert.notEqual(d.entry.nodeid, c.entry.nodeid);
  await fs.release(ctx, d.entry.nodeid, d.open.fh, 0);
  fs.forget([{ nodeid: c.entry.nodeid, nlookup: 3 }, { nodeid: d.entry.nodeid, nlookup: 1 }]);
  assert.equal(fs.nodeCount, 1);
  assert.equal(lstatSync(join(upper, 'h')).size, 0);
});

test('suid/sgid are cleared where Linux clears them when the kernel leaves it to the filesystem', async () => {
  const { fs, upper } = await makeFs();
  const make = async (name: string, mode: number): Promise<FuseCreateReply> => {
    const c = ok<FuseCreateReply>(await fs.create(ctx, 1, B(name), O_RDWR, mode));
    ok(await fs.setattr(ctx, c.entry.nodeid, { mode }));
    return c;
  };
  const perm = (name: string): number => statSync(join(upper, name)).mode & 0o7777;
  const cases: [string, number, number][] = [
    ['suid', 0o4755, 0o755],
    ['sgid-x', 0o2775, 0o775],
    ['sgid-nox', 0o2765, 0o2765], // no group execute: mandatory-locking marker, kept
    ['both', 0o6777, 0o777],
  ];
  for (const [name, mode, want] of cases) {
    const c = await make(name, mode);
    ok(await fs.write(ctx, c.entry.nodeid, c.open.fh, 0, B('x'), 0));
    assert.equal(perm(name), mode, `${name}: a privileged write keeps the bits`);
    ok(await fs.write(ctx, c.entry.nodeid, c.open.fh, 1, B('y'), 1 << 2));
    assert.equal(perm(name), want, `${name}: FUSE_WRITE_KILL_SUIDGID`);
    await fs.release(ctx, c.entry.nodeid, c.open.fh, 0);
  }
  const t = await make('trunc', 0o6775);
  const a = ok(await fs.setattr(ctx, t.entry.nodeid, { size: 0, killSuidgid: true }));
  assert.equal(a.attr.mode & 0o7777, 0o775, 'FATTR_KILL_SUIDGID on a truncate');
  const k = await make('kept', 0o4755);
  ok(await fs.setattr(ctx, k.entry.nodeid, { size: 0 }));
  assert.equal(perm('kept'), 0o4755, 'a truncate without the flag keeps them');
  ok(await fs.setattr(ctx, k.entry.nodeid, { uid: 0, killSuidgid: true }));
  assert.equal(perm('kept'), 0o755, 'FATTR_KILL_SUIDGID on a chown');
  // A caller other than root: the request says nothing of capabilities, so it is unprivileged;
  // a group it is not in loses even a no-group-execute sgid (Linux's current rule).
  const user: FuseRequestContext = { nodeid: 0, uid: 1000, gid: 1000, pid: 1 };
  const u = await make('user', 0o6765);
  ok(await fs.write(user, u.entry.nodeid, u.open.fh, 0, B('x'), 0));
  assert.equal(perm('user'), 0o765, 'an unprivileged write');
  ok(await fs.setattr(ctx, u.entry.nodeid, { mode: 0o4755 }));
  ok(await fs.write(user, u.entry.nodeid, u.open.fh, 0, B('x'), 0));
  assert.equal(perm('user'), 0o755, 'checked again after a mode change');
  const ut = await make('user-trunc', 0o2745);
  ok(await fs.setattr(user, ut.entry.nodeid, { size: 0 }));
  assert.equal(perm('user-trunc'), 0o745, 'an unprivileged truncate');
  // A directory's sgid (inheritance) is never touched.
  const d = ok<FuseEntry>(await fs.mkdir(ctx, 1, B('d'), 0o2775));
  ok(await fs.setattr(ctx, d.nodeid, { uid: 0, killSuidgid: true }));
  assert.equal(perm('d'), 0o2775);
});

test('FALLOCATE acts on the upper file; a lower handle is refused with EBADF', async () => {
  const { fs, upper } = await makeFs();
  const keep = await look(fs, 1, 'keep');
  const ro = ok<FuseOpenReply>(await fs.open(ctx, keep.nodeid, 0));
  assert.equal(await errnoOf(fs.fallocate(ctx, keep.nodeid, ro.fh, 0, 4096, 0)), kErrno.EBADF);
  await fs.release(ctx, keep.nodeid, ro.fh, 0);
  // Opened for writing: copied up, then allocated on the host.
  const rw = ok<FuseOpenReply>(await fs.open(ctx, keep.nodeid, O_RDWR));
  assert.equal(await errnoOf(fs.fallocate(ctx, keep.nodeid, rw.fh, 0, 1 << 20, 0)), 0);
  assert.equal(lstatSync(join(upper, 'keep')).size, 1 << 20);
  // FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE: the size stays, the data reads as zeros.
  assert.equal(await errnoOf(fs.fallocate(ctx, keep.nodeid, rw.fh, 0, 4096, 3)), 0);
  assert.equal(lstatSync(join(upper, 'keep')).size, 1 << 20);
  const data = ok(await fs.read(ctx, keep.nodeid, rw.fh, 0, 10));
  assert.deepEqual(Buffer.from(data), Buffer.alloc(10));
  // PUNCH_HOLE without KEEP_SIZE: the host's EOPNOTSUPP, as Linux answers it.
  assert.equal(await errnoOf(fs.fallocate(ctx, keep.nodeid, rw.fh, 0, 4096, 2)), kErrno.EOPNOTSUPP);
  await fs.release(ctx, keep.nodeid, rw.fh, 0);
});

test('RENAME_EXCHANGE swaps an upper and a lower file and keeps both nodes; lower directories are EXDEV', async () => {
  const { fs, upper } = await makeFs();
  const dir = await look(fs, 1, 'dir');
  const a = await look(fs, dir.nodeid, 'a');
  const c = ok<FuseCreateReply>(await fs.create(ctx, 1, B('x'), O_RDWR, 0o644));
  ok(await fs.write(ctx, c.entry.nodeid, c.open.fh, 0, B('upper x')));
  await fs.release(ctx, c.entry.nodeid, c.open.fh, 0);
  assert.equal(await errnoOf(fs.rename(ctx, 1, B('x'), dir.nodeid, B('a'), 2)), 0);
  assert.equal(lstatSync(join(upper, 'dir', 'a')).size, 7);
  assert.equal(lstatSync(join(upper, 'x')).size, 1);
  // Each node moved with its object.
  assert.equal((await look(fs, dir.nodeid, 'a')).nodeid, c.entry.nodeid);
  assert.equal((await look(fs, 1, 'x')).nodeid, a.nodeid);
  // A directory with a lower part cannot move; a missing name is ENOENT; flags together EINVAL.
  assert.equal(await errnoOf(fs.rename(ctx, 1, B('dir'), 1, B('x'), 2)), kErrno.EXDEV);
  assert.equal(await errnoOf(fs.rename(ctx, 1, B('x'), 1, B('nothing'), 2)), kErrno.ENOENT);
  assert.equal(await errnoOf(fs.rename(ctx, 1, B('x'), 1, B('keep'), 3)), kErrno.EINVAL);
  assert.equal(await errnoOf(fs.rename(ctx, 1, B('x'), 1, B('keep'), 4)), kErrno.EINVAL);
  // A directory of an upper-only one (not opaque) exchanged into a merged directory turns opaque.
  const np = ok<FuseEntry>(await fs.mkdir(ctx, 1, B('np'), 0o755));
  ok<FuseEntry>(await fs.mkdir(ctx, np.nodeid, B('ud'), 0o755));
  assert.equal(readXattrs(Buffer.from(join(upper, 'np', 'ud'))).length, 0);
  assert.equal(await errnoOf(fs.rename(ctx, np.nodeid, B('ud'), dir.nodeid, B('a'), 2)), 0);
  assert.equal(lstatSync(join(upper, 'dir', 'a')).isDirectory(), true);
  assert.equal(lstatSync(join(upper, 'np', 'ud')).size, 7);
  assert.deepEqual(readXattrs(Buffer.from(join(upper, 'dir', 'a'))).map(([k, v]) => `${k.toString()}=${v.toString()}`), ['trusted.overlay.opaque=y']);
});
