/**
 * The writable overlay (`--writable` with `overlay.upper_dir` / `overlay.work_dir`): a RAFS
 * image as the read-only lower layer, a host directory as the upper, with kernel overlayfs(5)
 * semantics and the same on-disk upper format (overlay-upper.ts), so an upper directory written
 * here can be mounted by the kernel's overlayfs and the other way round:
 * - a lower object is copied up (overlay-copyup.ts) before its data or metadata changes, its
 *   parent directories first;
 * - removing a name the lower layer has leaves a whiteout (character device 0/0); a directory
 *   made where a whiteout was is opaque (`trusted.overlay.opaque=y`);
 * - renaming a directory that has a lower part is EXDEV (as the kernel without redirect_dir:
 *   `mv` then copies), and so is renaming over one;
 * - listings merge the upper names (whiteouts hidden) with the lower names they do not cover.
 *
 * Nodes are merged-tree objects, each remembered by the (parent, name) it was last seen under.
 * Its id is the lower node's when the name has a lower entry of the same kind (so a copied-up
 * file keeps its inode number, as with overlayfs), else kUpperBase + the upper inode number:
 * both are functions of the two layers, so the ids are the same after a restart, and after the
 * kernel forgot a node and looks it up again. Upper files with several names (hard links) are
 * one node. The node table (overlay-nodes.ts) counts the kernel's lookups and drops what FORGET
 * releases; the session never remembers answers for a writable range.
 *
 * Every change of the tree runs under one lock (a promise chain): copy-ups, whiteouts and
 * renames of one request can never interleave with another's. Reads and writes of open files
 * do not take it.
 */
import type { BigIntStats } from 'node:fs';
import { constants as fsc } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { chmod, lchown, link, mkdir, open, rename, rm, symlink, unlink } from 'node:fs/promises';

import type { FuseAttr, FuseAttrReply, FuseCreateReply, FuseDirEntry, FuseDirEntryPlus, FuseEntry, FuseFilesystem, FuseForget, FuseInitInfo, FuseOpenReply, FuseReadMiss, FuseRequestContext, FuseResult, FuseSetattr, FuseStatfs } from '../fuse/index.js';
import { errnoOf, FuseErrno, fuseErrno, kErrno } from '../fuse/index.js';
import { hostFallocate, hostMknod, hostRemoveXattr, hostRename2, hostSetXattr, readXattrs } from '../native/index.js';
import type { Logger } from '../util/logger.js';
import { isDirMode, S_IFCHR } from '../util/mode-bits.js';
import { CopyUp, kOriginXattr } from './overlay-copyup.js';
import { kRootId } from './node-space.js';
import type { OverlayLower } from './overlay-fs.js';
import { kUpperBase } from './overlay-fs.js';
import type { WNode } from './overlay-nodes.js';
import { newNode, NodeTable } from './overlay-nodes.js';
import { inodeKey, upperAttr, upperKind, UpperDir } from './overlay-upper.js';
import type { WItem } from './overlay-writable-io.js';
import { OverlayWritableIo } from './overlay-writable-io.js';
import { kWriteKillSuidgid, SetattrTarget } from './overlay-setattr.js';

export type { WNode } from './overlay-nodes.js';

export interface WritableOverlayOptions {
  entryTimeout: number;
  attrTimeout: number;
  log: Logger;
}


const kDot = Buffer.from('.');
const kDotDot = Buffer.from('..');
const kOpaqueXattr = Buffer.from('trusted.overlay.opaque');
const kPrivate = [Buffer.from('trusted.overlay.'), Buffer.from('user.overlay.')];
const kMaxTimeout = 1;
const kRenameNoreplace = 1;
const kRenameExchange = 2;
/** Fresh ids (a collision of the rule above) count from here. */
const kFreshBase = kUpperBase + 2 ** 42;

const enoent = (): FuseErrno => fuseErrno(kErrno.ENOENT);

export class WritableOverlay implements FuseFilesystem {
  readonly upper: UpperDir;
  private readonly _table: NodeTable;
  private readonly _copy: CopyUp;
  private readonly _io: OverlayWritableIo;
  private _lock: Promise<unknown> = Promise.resolve();
  private readonly _t: { entry: number; attr: number };

  constructor(
    readonly lower: OverlayLower,
    upperDir: string,
    workDir: string,
    private readonly _opts: WritableOverlayOptions,
    lowerRoot = kRootId,
  ) {
    this.upper = new UpperDir(upperDir);
    this._copy = new CopyUp(lower, workDir);
    this._io = new OverlayWritableIo(this, _opts.log);
    this._t = { entry: Math.min(_opts.entryTimeout, kMaxTimeout), attr: Math.min(_opts.attrTimeout, kMaxTimeout) };
    this._table = new NodeTable(lowerRoot, kFreshBase);
  }

  /** Nodes the kernel may name now (the root included): what FORGET keeps bounded. */
  get nodeCount(): number {
    return this._table.size;
  }

  /** Clears what an interrupted copy-up left behind (call before serving). */
  prepare(): Promise<void> {
    return this._copy.sweep();
  }

  // --- nodes ----------------------------------------------------------------------------------

  node(id: number): WNode | FuseErrno {
    return this._table.get(id) ?? fuseErrno(kErrno.ENOENT);
  }

  rel(n: WNode): Buffer {
    return this._table.rel(n);
  }

  path(n: WNode): Buffer {
    return this.upper.path(this.rel(n));
  }

  private _childPath(dir: WNode, name: Buffer): Buffer {
    return this.upper.path(UpperDir.child(this.rel(dir), name));
  }

  private _lowerEntry(ctx: FuseRequestContext, dir: WNode, name: Buffer): Promise<FuseEntry | undefined> | undefined {
    if (dir.lower === undefined) return undefined;
    return Promise.resolve(this.lower.lookup(ctx, dir.lower, name)).then((e) => {
      if (e instanceof FuseErrno) {
        if (e.errno === kErrno.ENOENT) return undefined;
        throw e;
      }
      return e.nodeid === 0 || (e.nodeid >= kUpperBase) ? undefined : e;
    });
  }

  /** The lower node id upper object `rel` was copied up from (kOriginXattr), if any. */
  private _origin(rel: Buffer): number | undefined {
    const v = readXattrs(this.upper.path(rel)).find(([k]) => k.equals(kOriginXattr))?.[1];
    const n = v === undefined ? NaN : Number(v.toString('latin1'));
    return Number.isSafeInteger(n) && n > 0 && n < kUpperBase ? n : undefined;
  }

  /** `name` in directory `dir` of the merged tree: its node, or undefined when there is none. */
  async child(ctx: FuseRequestContext, dir: WNode, name: Buffer): Promise<WNode | undefined> {
    const rel = UpperDir.child(this.rel(dir), name);
    const st = dir.upper ? await this.upper.stat(rel) : undefined;
    const known = this._table.byName(dir.id, name);
    if (st && upperKind(st) === 'whiteout') return undefined;
    const le = await this._lowerEntry(ctx, dir, name);
    if (st) return this._upperChild(dir, name, rel, st, le, known);
    if (!le?.attr) return undefined;
    if (known && !known.upper && known.lower === le.nodeid) return known;
    return newNode(this._table.freshId(le.nodeid), dir.id, name, isDirMode(le.attr.mode), le.nodeid, false);
  }

  private _upperChild(dir: WNode, name: Buffer, rel: Buffer, st: BigIntStats, le: FuseEntry | undefined, known: WNode | undefined): WNode {
    const isDir = st.isDirectory();
    const lowerSame = le?.attr !== undefined && isDirMode(le.attr.mode) === isDir ? le.nodeid : undefined;
    if (isDir) {
      const merged = lowerSame !== undefined && !this.upper.opaque(rel) ? lowerSame : undefined;
      if (known?.dir) {
        known.upper = true;
        known.lower = merged;
        return known;
      }
      return newNode(this._table.freshId(merged ?? kUpperBase + Number(st.ino)), dir.id, name, true, merged, true);
    }
    const key = inodeKey(st);
    if (known && !known.dir && known.key === key) return known;
    // Another name of a known file (a hard link): the same node (ref() records the name).
    const linked = this._table.byKey(key);
    if (linked) return linked;
    // A copied-up file keeps its lower node id (all its names: hard links made after the copy-up
    // share the xattr); a file made in the upper layer has its host inode's.
    const id = this._table.freshId(this._origin(rel) ?? kUpperBase + Number(st.ino));
    return newNode(id, dir.id, name, false, lowerSame, true, key);
  }

  // --- attributes -----------------------------------------------------------------------------

  async attrOf(ctx: FuseRequestContext, n: WNode): Promise<FuseAttr | FuseErrno> {
    // Its path may name another object by now (an open handle still answers: getattr by fh).
    if (n.orphan) return enoent();
    if (!n.upper) {
      if (n.lower === undefined) return enoent();
      const a = await this.lower.getattr(ctx, n.lower, undefined);
      return a instanceof FuseErrno ? a : { ...a.attr, ino: n.id };
    }
    const st = await this.upper.stat(this.rel(n));
    if (!st || (n.key !== undefined && inodeKey(st) !== n.key)) return fuseErrno(kErrno.ESTALE);
    return this.upperAttrOf(n, st);
  }

  upperAttrOf(n: WNode, st: BigIntStats): FuseAttr {
    return upperAttr(st, n.id, n.dir && n.lower !== undefined ? 1 : Number(st.nlink));
  }

  async entryOf(ctx: FuseRequestContext, n: WNode): Promise<FuseEntry | FuseErrno> {
    const attr = await this.attrOf(ctx, n);
    if (attr instanceof FuseErrno) return attr;
    return { nodeid: n.id, generation: 0, attr, entryTimeout: this._t.entry, attrTimeout: this._t.attr };
  }

  fail(what: string, err: unknown): FuseErrno {
    if (err instanceof FuseErrno) return err;
    const { errno, expected } = errnoOf(err);
    if (!expected) this._opts.log.error(`${what}: ${(err as Error).message}`);
    return fuseErrno(errno);
  }

  /** Runs `fn` under the tree lock; its FuseErrno answers and host errors become replies. */
  locked<T>(what: string, fn: () => Promise<T | FuseErrno>): Promise<T | FuseErrno> {
    const run = this._lock.then(fn).catch((err: unknown) => this.fail(what, err));
    this._lock = run;
    return run;
  }

  /** Makes `n` (and its parents) present in the upper layer. Call under the lock. */
  async copyUp(ctx: FuseRequestContext, n: WNode): Promise<void> {
    if (n.upper) return;
    const parent = this._table.get(n.parent);
    if (!parent || n.lower === undefined || n.orphan) throw enoent();
    await this.copyUp(ctx, parent);
    const a = await this.lower.getattr(ctx, n.lower, undefined);
    if (a instanceof FuseErrno) throw a;
    const dest = this.path(n);
    await this._copy.copy(ctx, n.lower, a.attr, dest);
    n.upper = true;
    if (!n.dir) {
      const st = await this.upper.stat(this.rel(n));
      if (st) this._table.setKey(n, inodeKey(st));
    }
  }

  private _checkName(name: Buffer): FuseErrno | undefined {
    if (name.length > 255) return fuseErrno(kErrno.ENAMETOOLONG);
    if (name.includes(0x2f) || name.equals(kDot) || name.equals(kDotDot)) return fuseErrno(kErrno.EINVAL);
    return undefined;
  }

  /** The directory node `parent`, copied up, with `name` checked and free (a whiteout there is
   * removed; `wasWhiteout` tells). Call under the lock. */
  private async _prepareNew(ctx: FuseRequestContext, parent: number, name: Buffer): Promise<{ dir: WNode; path: Buffer; wasWhiteout: boolean } | FuseErrno> {
    const bad = this._checkName(name);
    if (bad) return bad;
    const dir = this.node(parent);
    if (dir instanceof FuseErrno) return dir;
    if (!dir.dir) return fuseErrno(kErrno.ENOTDIR);
    if (await this.child(ctx, dir, name)) return fuseErrno(kErrno.EEXIST);
    await this.copyUp(ctx, dir);
    const path = this._childPath(dir, name);
    const st = await this.upper.stat(UpperDir.child(this.rel(dir), name));
    const wasWhiteout = st !== undefined && upperKind(st) === 'whiteout';
    if (wasWhiteout) await unlink(path);
    this._table.unbind(dir, name);
    return { dir, path, wasWhiteout };
  }

  /** Owner of what the caller makes: the caller's, as overlayfs creates with the caller's creds. */
  private async _own(ctx: FuseRequestContext, path: Buffer): Promise<void> {
    if (process.geteuid?.() === 0) await lchown(path, ctx.uid, ctx.gid);
  }

  private async _made(ctx: FuseRequestContext, dir: WNode, name: Buffer): Promise<FuseEntry | FuseErrno> {
    const n = await this.child(ctx, dir, name);
    return n ? this._counted(ctx, n, dir, name) : fuseErrno(kErrno.EIO);
  }

  /**
   * The entry of `n` as the kernel will count it (by `name` in `dir`; none for "." and ".."):
   * one lookup more, taken back when the entry cannot be made.
   */
  private async _counted(ctx: FuseRequestContext, n: WNode, dir?: WNode, name?: Buffer): Promise<FuseEntry | FuseErrno> {
    const cur = this._table.ref(n, dir, name);
    try {
      const e = await this.entryOf(ctx, cur);
      if (e instanceof FuseErrno) this._table.unref(cur.id, 1);
      return e;
    } catch (err) {
      this._table.unref(cur.id, 1);
      throw err;
    }
  }

  /** A listing's record as READDIRPLUS sends it: counted, unless "." / ".." or negative. */
  private _countedRecord(dir: WNode, i: WItem): FuseEntry {
    if (!i.node || i.entry.nodeid === 0 || i.name.equals(kDot) || i.name.equals(kDotDot)) return i.entry;
    // Removed since the listing was made: the name alone (nodeid 0 carries no lookup).
    if (i.node.orphan) return { nodeid: 0, entryTimeout: 0 };
    const cur = this._table.ref(i.node, dir, i.name);
    if (cur.id === i.entry.nodeid) return i.entry;
    return { ...i.entry, nodeid: cur.id, ...(i.entry.attr ? { attr: { ...i.entry.attr, ino: cur.id } } : {}) };
  }

  // --- FuseFilesystem: reading ------------------------------------------------------------------

  init(info: FuseInitInfo): void {
    if (info.reinit) this._forgetAll();
    this.lower.init?.(info);
  }

  destroy(info: { reason: 'destroy' | 'reset' }): void {
    this._forgetAll();
    this.lower.destroy?.(info);
  }

  /** The kernel forgot every node and handle. */
  private _forgetAll(): void {
    this._io.closeAll();
    this._table.reset();
  }

  forget(items: readonly FuseForget[]): void {
    for (const { nodeid, nlookup } of items) this._table.unref(nodeid, nlookup);
  }

  readdirplusUnsent(_ctx: FuseRequestContext, _nodeid: number, unsent: readonly FuseDirEntryPlus[]): void {
    for (const r of unsent) {
      const name = typeof r.name === 'string' ? Buffer.from(r.name) : r.name;
      if (r.entry.nodeid !== 0 && !name.equals(kDot) && !name.equals(kDotDot)) this._table.unref(r.entry.nodeid, 1);
    }
  }

  async lookup(ctx: FuseRequestContext, parent: number, name: Buffer): Promise<FuseEntry | FuseErrno> {
    const dir = this.node(parent);
    if (dir instanceof FuseErrno) return dir;
    if (!dir.dir) return fuseErrno(kErrno.ENOTDIR);
    if (name.length > 255) return fuseErrno(kErrno.ENAMETOOLONG);
    try {
      if (name.equals(kDot)) return await this._counted(ctx, dir);
      if (name.equals(kDotDot)) return await this._counted(ctx, this._table.get(dir.parent) ?? dir);
      const n = await this.child(ctx, dir, name);
      return n ? await this._counted(ctx, n, dir, name) : { nodeid: 0, entryTimeout: this._t.entry };
    } catch (err) {
      return this.fail('lookup', err);
    }
  }

  async getattr(ctx: FuseRequestContext, nodeid: number, fh?: number): Promise<FuseAttrReply | FuseErrno> {
    const n = this.node(nodeid);
    if (n instanceof FuseErrno) return n;
    try {
      // fstat of an open upper file answers from the file (also once unlinked).
      const f = fh === undefined ? undefined : this._io.file(fh);
      const attr = f ? this.upperAttrOf(n, await f.stat({ bigint: true })) : await this.attrOf(ctx, n);
      return attr instanceof FuseErrno ? attr : { attr, attrTimeout: this._t.attr };
    } catch (err) {
      return this.fail('getattr', err);
    }
  }

  readlink(ctx: FuseRequestContext, nodeid: number): FuseResult<Buffer | string> {
    const n = this.node(nodeid);
    if (n instanceof FuseErrno) return n;
    if (!n.upper) return n.lower === undefined ? enoent() : this.lower.readlink(ctx, n.lower);
    return this.upper.readlink(this.rel(n)).catch((err: unknown) => this.fail('readlink', err));
  }

  statfs(): FuseResult<FuseStatfs> {
    return this.upper.statfs().catch((err: unknown) => this.fail('statfs', err));
  }

  getxattr(ctx: FuseRequestContext, nodeid: number, name: Buffer): FuseResult<Buffer | string> {
    const n = this.node(nodeid);
    if (n instanceof FuseErrno) return n;
    if (!n.upper) return n.lower === undefined ? enoent() : this.lower.getxattr(ctx, n.lower, name);
    try {
      return this.upper.xattrs(this.rel(n)).find(([k]) => k.equals(name))?.[1] ?? fuseErrno(kErrno.ENODATA);
    } catch (err) {
      return this.fail('getxattr', err);
    }
  }

  listxattr(ctx: FuseRequestContext, nodeid: number): FuseResult<ReadonlyArray<Buffer | string>> {
    const n = this.node(nodeid);
    if (n instanceof FuseErrno) return n;
    if (!n.upper) return n.lower === undefined ? enoent() : this.lower.listxattr(ctx, n.lower);
    try {
      return this.upper.xattrs(this.rel(n)).map(([k]) => k);
    } catch (err) {
      return this.fail('listxattr', err);
    }
  }

  /** The merged listing of directory `dir`: ".", "..", then every visible name with its entry. */
  async list(ctx: FuseRequestContext, dir: WNode): Promise<WItem[] | FuseErrno> {
    const self = await this.entryOf(ctx, dir);
    if (self instanceof FuseErrno) return self;
    const up = await this.entryOf(ctx, this._table.get(dir.parent) ?? dir);
    if (up instanceof FuseErrno) return up;
    const out: WItem[] = [{ name: kDot, entry: self }, { name: kDotDot, entry: up }];
    const seen = new Set<string>();
    const names: Buffer[] = dir.upper ? await this.upper.list(this.rel(dir)) : [];
    if (dir.lower !== undefined) {
      const lowerNames = await this._io.lowerNames(ctx, dir.lower);
      if (lowerNames instanceof FuseErrno) return lowerNames;
      names.push(...lowerNames);
    }
    for (const name of names) {
      const k = name.toString('latin1');
      if (seen.has(k)) continue;
      seen.add(k);
      const n = await this.child(ctx, dir, name);
      if (!n) continue;
      const e = await this.entryOf(ctx, n);
      if (e instanceof FuseErrno) continue;
      out.push({ name, entry: e, node: n });
    }
    return out;
  }

  opendir(ctx: FuseRequestContext, nodeid: number): FuseResult<FuseOpenReply> {
    return this._io.opendir(ctx, nodeid);
  }

  readdir(ctx: FuseRequestContext, nodeid: number, fh: number, offset: number, size: number): FuseResult<FuseDirEntry[]> {
    return this._io.page(ctx, nodeid, fh, offset, size, false, (i, next): FuseDirEntry => ({ name: i.name, ino: i.entry.nodeid, mode: i.entry.attr?.mode ?? 0, offset: next }));
  }

  readdirplus(ctx: FuseRequestContext, nodeid: number, fh: number, offset: number, size: number): FuseResult<FuseDirEntryPlus[]> {
    const dir = this.node(nodeid);
    if (dir instanceof FuseErrno) return dir;
    return this._io.page(ctx, nodeid, fh, offset, size, true, (i, next): FuseDirEntryPlus => ({ name: i.name, offset: next, entry: this._countedRecord(dir, i) }));
  }

  releasedir(_ctx: FuseRequestContext, _nodeid: number, fh: number): void {
    this._io.releasedir(fh);
  }

  open(ctx: FuseRequestContext, nodeid: number, flags: number): FuseResult<FuseOpenReply> {
    return this._io.open(ctx, nodeid, flags);
  }

  read(ctx: FuseRequestContext, nodeid: number, fh: number, offset: number, size: number): FuseResult<Buffer | Uint8Array> {
    return this._io.read(ctx, nodeid, fh, offset, size);
  }

  readMiss(ctx: FuseRequestContext, miss: FuseReadMiss): void | FuseErrno | Promise<void | FuseErrno> {
    return this.lower.readMiss ? this.lower.readMiss(ctx, miss) : fuseErrno(kErrno.EIO);
  }

  release(ctx: FuseRequestContext, nodeid: number, fh: number, flags: number): FuseResult<void> {
    return this._io.release(ctx, nodeid, fh, flags);
  }

  write(ctx: FuseRequestContext, _nodeid: number, fh: number, offset: number, data: Buffer, flags = 0): FuseResult<number> {
    return this._io.write(fh, offset, data, ctx, (flags & kWriteKillSuidgid) !== 0);
  }

  flush(): void {}

  fsync(_ctx: FuseRequestContext, _nodeid: number, fh: number, datasync: boolean): FuseResult<void> {
    return this._io.fsync(fh, datasync);
  }

  lseek(ctx: FuseRequestContext, nodeid: number, fh: number, offset: number, whence: number): FuseResult<number> {
    return this._io.lseek(ctx, nodeid, fh, offset, whence);
  }

  /** On the upper file (a handle open for writing was copied up at OPEN), as overlayfs does. */
  fallocate(_ctx: FuseRequestContext, _nodeid: number, fh: number, offset: number, length: number, mode: number): FuseResult<void> {
    const f = this._io.file(fh);
    // A lower handle is read-only: fallocate(2) needs a file open for writing.
    if (!f) return fuseErrno(kErrno.EBADF);
    try {
      hostFallocate(f.fd, mode, offset, length);
      return undefined;
    } catch (err) {
      return this.fail('fallocate', err);
    }
  }

  // --- FuseFilesystem: changing -----------------------------------------------------------------

  create(ctx: FuseRequestContext, parent: number, name: Buffer, flags: number, mode: number): Promise<FuseCreateReply | FuseErrno> {
    return this.locked('create', async () => {
      const p = await this._prepareNew(ctx, parent, name);
      if (p instanceof FuseErrno) return p;
      const f = await open(p.path, (flags & ~fsc.O_APPEND) | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, mode & 0o7777);
      try {
        await f.chmod(mode & 0o7777);
        await this._own(ctx, p.path);
      } catch (err) {
        await f.close();
        throw err;
      }
      const entry = await this._made(ctx, p.dir, name);
      if (entry instanceof FuseErrno) {
        await f.close();
        return entry;
      }
      return { entry, open: this._io.adopt(f) };
    });
  }

  /** Makes `name` in `parent` with `make` (permission bits `mode`, unless undefined), owned by
   * the caller, and answers its entry. */
  private _makeNew(what: string, ctx: FuseRequestContext, parent: number, name: Buffer, mode: number | undefined, make: (path: Buffer, p: { dir: WNode; wasWhiteout: boolean }) => Promise<void>): Promise<FuseEntry | FuseErrno> {
    return this.locked(what, async () => {
      const p = await this._prepareNew(ctx, parent, name);
      if (p instanceof FuseErrno) return p;
      await make(p.path, p);
      if (mode !== undefined) await chmod(p.path, mode & 0o7777);
      await this._own(ctx, p.path);
      return this._made(ctx, p.dir, name);
    });
  }

  mknod(ctx: FuseRequestContext, parent: number, name: Buffer, mode: number, rdev: number): Promise<FuseEntry | FuseErrno> {
    return this._makeNew('mknod', ctx, parent, name, mode, (path) => Promise.resolve(hostMknod(path, mode, rdev)));
  }

  mkdir(ctx: FuseRequestContext, parent: number, name: Buffer, mode: number): Promise<FuseEntry | FuseErrno> {
    return this._makeNew('mkdir', ctx, parent, name, mode, async (path, p) => {
      await mkdir(path);
      // As overlayfs: a directory made where a whiteout was is opaque, so the lower directory
      // of that name does not show. (Elsewhere the lower has no such name: overlayfs leaves it
      // plain, and marks it opaque only when it moves into a merged directory: _opaqueIn.)
      if (p.wasWhiteout) hostSetXattr(path, kOpaqueXattr, Buffer.from('y'), 0);
    });
  }

  symlink(ctx: FuseRequestContext, parent: number, name: Buffer, target: Buffer): Promise<FuseEntry | FuseErrno> {
    return this._makeNew('symlink', ctx, parent, name, undefined, (path) => symlink(target, path));
  }

  link(ctx: FuseRequestContext, nodeid: number, newParent: number, newName: Buffer): Promise<FuseEntry | FuseErrno> {
    return this.locked('link', async () => {
      const n = this.node(nodeid);
      if (n instanceof FuseErrno) return n;
      if (n.dir) return fuseErrno(kErrno.EPERM);
      const p = await this._prepareNew(ctx, newParent, newName);
      if (p instanceof FuseErrno) return p;
      await this.copyUp(ctx, n);
      await link(this.path(n), p.path);
      return this._made(ctx, p.dir, newName);
    });
  }

  /** Removes `name` from `dir` in the merged tree; a whiteout stays where the lower has it. */
  private async _remove(ctx: FuseRequestContext, parent: number, name: Buffer, wantDir: boolean): Promise<void | FuseErrno> {
    const dir = this.node(parent);
    if (dir instanceof FuseErrno) return dir;
    const n = await this.child(ctx, dir, name);
    if (!n) return enoent();
    if (n.dir !== wantDir) return fuseErrno(wantDir ? kErrno.ENOTDIR : kErrno.EISDIR);
    if (wantDir) {
      const l = await this.list(ctx, n);
      if (l instanceof FuseErrno) return l;
      if (l.length > 2) return fuseErrno(kErrno.ENOTEMPTY);
    }
    await this.copyUp(ctx, dir);
    const path = this._childPath(dir, name);
    // Whether the lower layer has this name: then a whiteout must hide it.
    const below = (await this._lowerEntry(ctx, dir, name)) !== undefined;
    if (n.upper) {
      // An empty merged directory may still hold whiteouts in its upper part.
      if (wantDir) await rm(path, { recursive: true });
      else await unlink(path);
    }
    if (below) hostMknod(path, S_IFCHR, 0);
    this._table.unbind(dir, name);
  }

  unlink(ctx: FuseRequestContext, parent: number, name: Buffer): Promise<void | FuseErrno> {
    return this.locked('unlink', () => this._remove(ctx, parent, name, false));
  }

  rmdir(ctx: FuseRequestContext, parent: number, name: Buffer): Promise<void | FuseErrno> {
    return this.locked('rmdir', () => this._remove(ctx, parent, name, true));
  }

  rename(ctx: FuseRequestContext, parent: number, name: Buffer, newParent: number, newName: Buffer, flags: number): Promise<void | FuseErrno> {
    return this.locked('rename', async () => {
      // RENAME_WHITEOUT is EINVAL, as from the kernel's overlayfs.
      if ((flags & ~(kRenameNoreplace | kRenameExchange)) !== 0 || flags === (kRenameNoreplace | kRenameExchange)) return fuseErrno(kErrno.EINVAL);
      const bad = this._checkName(newName);
      if (bad) return bad;
      const from = this.node(parent);
      const to = this.node(newParent);
      if (from instanceof FuseErrno) return from;
      if (to instanceof FuseErrno) return to;
      const n = await this.child(ctx, from, name);
      if (!n) return enoent();
      // A directory with a lower part cannot move without redirect_dir: EXDEV (mv copies).
      if (await this._pinned(ctx, n, from, name)) return fuseErrno(kErrno.EXDEV);
      const target = await this.child(ctx, to, newName);
      if ((flags & kRenameExchange) !== 0) return this._exchange(ctx, { dir: from, name, n }, { dir: to, name: newName, n: target });
      if (target === n) return undefined;
      if (target) {
        if ((flags & kRenameNoreplace) !== 0) return fuseErrno(kErrno.EEXIST);
        if (target.dir !== n.dir) return fuseErrno(n.dir ? kErrno.ENOTDIR : kErrno.EISDIR);
        if (target.dir) {
          if (target.lower !== undefined || !target.upper) return fuseErrno(kErrno.EXDEV);
          const l = await this.list(ctx, target);
          if (l instanceof FuseErrno) return l;
          if (l.length > 2) return fuseErrno(kErrno.ENOTEMPTY);
        }
      }
      await this.copyUp(ctx, n);
      await this.copyUp(ctx, to);
      // By the name given (a hard link's other names stay where they are).
      const src = this._childPath(from, name);
      const dest = this._childPath(to, newName);
      const destSt = await this.upper.stat(UpperDir.child(this.rel(to), newName));
      if (destSt && upperKind(destSt) === 'whiteout') await unlink(dest);
      const below = (await this._lowerEntry(ctx, from, name)) !== undefined;
      await rename(src, dest);
      if (below) hostMknod(src, S_IFCHR, 0);
      this._opaqueIn(n, to, newName);
      this._table.unbind(to, newName);
      this._table.move(n, from, name, to, newName);
      return undefined;
    });
  }

  /** A directory that cannot move without redirect_dir: it has a lower part. */
  private async _pinned(ctx: FuseRequestContext, n: WNode, dir: WNode, name: Buffer): Promise<boolean> {
    return n.dir && (n.lower !== undefined || !n.upper || (await this._lowerEntry(ctx, dir, name)) !== undefined);
  }

  /** As overlayfs: an upper directory moved into a merged one turns opaque (no lower shows). */
  private _opaqueIn(n: WNode, to: WNode, name: Buffer): void {
    if (!n.dir || to.lower === undefined) return;
    const rel = UpperDir.child(this.rel(to), name);
    if (!this.upper.opaque(rel)) hostSetXattr(this.upper.path(rel), kOpaqueXattr, Buffer.from('y'), 0);
  }

  /**
   * RENAME_EXCHANGE, as overlayfs: both names must exist, neither a directory with a lower part
   * (EXDEV); both are copied up and swapped in the upper layer. No whiteout is needed (both names
   * stay taken); a directory landing in a merged parent turns opaque.
   */
  private async _exchange(ctx: FuseRequestContext, a: { dir: WNode; name: Buffer; n: WNode }, b: { dir: WNode; name: Buffer; n: WNode | undefined }): Promise<void | FuseErrno> {
    const bn = b.n;
    if (!bn) return enoent();
    if (bn === a.n) return undefined;
    if (await this._pinned(ctx, bn, b.dir, b.name)) return fuseErrno(kErrno.EXDEV);
    for (const n of [a.n, bn, a.dir, b.dir]) await this.copyUp(ctx, n);
    const pa = this._childPath(a.dir, a.name);
    const pb = this._childPath(b.dir, b.name);
    hostRename2(pa, pb, kRenameExchange);
    this._opaqueIn(a.n, b.dir, b.name);
    this._opaqueIn(bn, a.dir, a.name);
    this._table.move(a.n, a.dir, a.name, b.dir, b.name);
    this._table.move(bn, b.dir, b.name, a.dir, a.name);
    return undefined;
  }

  setattr(ctx: FuseRequestContext, nodeid: number, set: FuseSetattr): Promise<FuseAttrReply | FuseErrno> {
    return this.locked('setattr', async () => {
      const n = this.node(nodeid);
      if (n instanceof FuseErrno) return n;
      if (set.size !== undefined && n.dir) return fuseErrno(kErrno.EISDIR);
      // ftruncate names its handle: the file it has open (copied up at OPEN), even unlinked.
      const f = set.fh === undefined ? undefined : this._io.file(set.fh);
      if (!f) {
        if (n.orphan) return enoent();
        await this.copyUp(ctx, n);
      }
      const target = new SetattrTarget(f ?? this.path(n));
      await target.apply(set, await target.stat(), ctx);
      if (set.mode !== undefined) this._io.modesChanged();
      return { attr: this.upperAttrOf(n, await target.stat()), attrTimeout: this._t.attr };
    });
  }

  /** An xattr change of `nodeid` (copied up first); overlayfs' own names are refused. */
  private _xattrChange(what: string, ctx: FuseRequestContext, nodeid: number, name: Buffer, change: (path: Buffer) => void): Promise<void | FuseErrno> {
    return this.locked(what, async () => {
      if (kPrivate.some((p) => name.subarray(0, p.length).equals(p))) return fuseErrno(kErrno.EOPNOTSUPP);
      const n = this.node(nodeid);
      if (n instanceof FuseErrno) return n;
      await this.copyUp(ctx, n);
      change(this.path(n));
      return undefined;
    });
  }

  setxattr(ctx: FuseRequestContext, nodeid: number, name: Buffer, value: Buffer, flags: number): Promise<void | FuseErrno> {
    return this._xattrChange('setxattr', ctx, nodeid, name, (path) => hostSetXattr(path, name, value, flags));
  }

  removexattr(ctx: FuseRequestContext, nodeid: number, name: Buffer): Promise<void | FuseErrno> {
    return this._xattrChange('removexattr', ctx, nodeid, name, (path) => hostRemoveXattr(path, name));
  }

  /** Opens the upper file of `n` for the I/O half (overlay-writable-io.ts). */
  openUpper(n: WNode, flags: number): Promise<FileHandle> {
    return open(this.path(n), (flags & ~(fsc.O_CREAT | fsc.O_EXCL | fsc.O_APPEND | fsc.O_NOCTTY)) | fsc.O_NOFOLLOW);
  }
}

