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
 * both are functions of the two layers, so the ids are the same after a restart. Upper files
 * with several names (hard links) are one node. Nothing here counts lookups: nodes stay known
 * for the daemon's life, and the session never remembers answers for a writable range.
 *
 * Every change of the tree runs under one lock (a promise chain): copy-ups, whiteouts and
 * renames of one request can never interleave with another's. Reads and writes of open files
 * do not take it.
 */
import type { BigIntStats } from 'node:fs';
import { constants as fsc } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { chmod, lchown, link, lutimes, mkdir, open, rename, rm, symlink, truncate, unlink } from 'node:fs/promises';

import type { FuseAttr, FuseAttrReply, FuseCreateReply, FuseDirEntry, FuseDirEntryPlus, FuseEntry, FuseFilesystem, FuseInitInfo, FuseOpenReply, FuseReadMiss, FuseRequestContext, FuseResult, FuseSetattr, FuseStatfs } from '../fuse/index.js';
import { errnoOf, FuseErrno, fuseErrno, kErrno } from '../fuse/index.js';
import { hostMknod, hostRemoveXattr, hostSetXattr, readXattrs } from '../native/index.js';
import type { Logger } from '../util/logger.js';
import { isDirMode, isLnkMode, S_IFCHR } from '../util/mode-bits.js';
import { CopyUp, kOriginXattr } from './overlay-copyup.js';
import { kRootId } from './node-space.js';
import type { OverlayLower } from './overlay-fs.js';
import { kUpperBase } from './overlay-fs.js';
import { inodeKey, upperAttr, upperKind, UpperDir } from './overlay-upper.js';
import { OverlayWritableIo } from './overlay-writable-io.js';

export interface WritableOverlayOptions {
  entryTimeout: number;
  attrTimeout: number;
  log: Logger;
}

export interface WNode {
  readonly id: number;
  parent: number;
  name: Buffer;
  readonly dir: boolean;
  /** Directories: the lower directory merged below (undefined when opaque or upper-only).
   * Other nodes: the lower object, used until the node is copied up. */
  lower: number | undefined;
  /** Present in the upper layer. */
  upper: boolean;
  /** Upper non-directories: the host inode (dev:ino). */
  key?: string | undefined;
  /** Upper files with several names: the other (parent, name) pairs known. */
  alt?: [number, Buffer][] | undefined;
}

const kDot = Buffer.from('.');
const kDotDot = Buffer.from('..');
const kOpaqueXattr = Buffer.from('trusted.overlay.opaque');
const kPrivate = [Buffer.from('trusted.overlay.'), Buffer.from('user.overlay.')];
const kMaxTimeout = 1;
const kRenameNoreplace = 1;
/** Fresh ids (a collision of the rule above) count from here. */
const kFreshBase = kUpperBase + 2 ** 42;

const nameKey = (parent: number, name: Buffer): string => `${parent}/${name.toString('latin1')}`;
const enoent = (): FuseErrno => fuseErrno(kErrno.ENOENT);

export class WritableOverlay implements FuseFilesystem {
  readonly upper: UpperDir;
  private readonly _nodes = new Map<number, WNode>();
  private readonly _byName = new Map<string, number>();
  private readonly _byKey = new Map<string, number>();
  private readonly _copy: CopyUp;
  private readonly _io: OverlayWritableIo;
  private _nextId = kFreshBase;
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
    this._nodes.set(kRootId, { id: kRootId, parent: kRootId, name: Buffer.alloc(0), dir: true, lower: lowerRoot, upper: true });
  }

  /** Clears what an interrupted copy-up left behind (call before serving). */
  prepare(): Promise<void> {
    return this._copy.sweep();
  }

  // --- nodes ----------------------------------------------------------------------------------

  node(id: number): WNode | FuseErrno {
    return this._nodes.get(id) ?? fuseErrno(kErrno.ENOENT);
  }

  rel(n: WNode): Buffer {
    const parts: Buffer[] = [];
    for (let cur = n; cur.id !== kRootId; ) {
      parts.push(cur.name);
      const p = this._nodes.get(cur.parent);
      if (!p) break;
      cur = p;
    }
    let rel: Buffer = Buffer.alloc(0);
    for (let i = parts.length - 1; i >= 0; i--) rel = UpperDir.child(rel, parts[i] as Buffer);
    return rel;
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

  private _freshId(preferred: number): number {
    return this._nodes.has(preferred) ? this._nextId++ : preferred;
  }

  private _bind(n: WNode): WNode {
    this._nodes.set(n.id, n);
    this._byName.set(nameKey(n.parent, n.name), n.id);
    if (n.key !== undefined) this._byKey.set(n.key, n.id);
    return n;
  }

  /**
   * Forgets the name `name` in `dir` (the node stays known by id: open files keep working). A
   * file with another known name (a hard link) is addressed by that one from now on.
   */
  private _unbind(dir: WNode, name: Buffer): void {
    const key = nameKey(dir.id, name);
    const n = this._nodes.get(this._byName.get(key) ?? -1);
    this._byName.delete(key);
    if (!n) return;
    n.alt = n.alt?.filter(([p, nm]) => p !== dir.id || !nm.equals(name));
    if (n.parent === dir.id && n.name.equals(name)) {
      const next = n.alt?.shift();
      if (next) {
        [n.parent, n.name] = next;
      } else {
        // Its last name: the host may give its inode (number) to a new object, which must be
        // able to take the id. Lower ids stay: open lower files are still read through them.
        if (n.key !== undefined && this._byKey.get(n.key) === n.id) this._byKey.delete(n.key);
        if (n.id >= kUpperBase && n.id !== kRootId) this._nodes.delete(n.id);
      }
    }
  }

  /** `name` in directory `dir` of the merged tree: its node, or undefined when there is none. */
  async child(ctx: FuseRequestContext, dir: WNode, name: Buffer): Promise<WNode | undefined> {
    const rel = UpperDir.child(this.rel(dir), name);
    const st = dir.upper ? await this.upper.stat(rel) : undefined;
    const known = this._nodes.get(this._byName.get(nameKey(dir.id, name)) ?? -1);
    if (st && upperKind(st) === 'whiteout') return undefined;
    const le = await this._lowerEntry(ctx, dir, name);
    if (st) return this._upperChild(dir, name, rel, st, le, known);
    if (!le?.attr) return undefined;
    if (known && !known.upper && known.lower === le.nodeid) return known;
    const isDir = isDirMode(le.attr.mode);
    return this._bind({ id: this._freshId(le.nodeid), parent: dir.id, name, dir: isDir, lower: le.nodeid, upper: false });
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
      const id = this._freshId(merged ?? kUpperBase + Number(st.ino));
      return this._bind({ id, parent: dir.id, name, dir: true, lower: merged, upper: true });
    }
    const key = inodeKey(st);
    if (known && !known.dir && known.key === key) return known;
    const linked = this._nodes.get(this._byKey.get(key) ?? -1);
    if (linked) {
      this._byName.set(nameKey(dir.id, name), linked.id);
      const alt = (linked.alt ??= []);
      if (!(linked.parent === dir.id && linked.name.equals(name)) && !alt.some(([p, nm]) => p === dir.id && nm.equals(name))) alt.push([dir.id, name]);
      return linked;
    }
    // A copied-up file keeps its lower node id (all its names: hard links made after the copy-up
    // share the xattr); a file made in the upper layer has its host inode's.
    const id = this._freshId(this._origin(rel) ?? kUpperBase + Number(st.ino));
    return this._bind({ id, parent: dir.id, name, dir: false, lower: lowerSame, upper: true, key });
  }

  // --- attributes -----------------------------------------------------------------------------

  async attrOf(ctx: FuseRequestContext, n: WNode): Promise<FuseAttr | FuseErrno> {
    if (!n.upper) {
      if (n.lower === undefined) return enoent();
      const a = await this.lower.getattr(ctx, n.lower, undefined);
      return a instanceof FuseErrno ? a : { ...a.attr, ino: n.id };
    }
    const st = await this.upper.stat(this.rel(n));
    if (!st || (n.key !== undefined && inodeKey(st) !== n.key)) return fuseErrno(kErrno.ESTALE);
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
    const parent = this._nodes.get(n.parent);
    if (!parent || n.lower === undefined) throw enoent();
    await this.copyUp(ctx, parent);
    const a = await this.lower.getattr(ctx, n.lower, undefined);
    if (a instanceof FuseErrno) throw a;
    const dest = this.path(n);
    await this._copy.copy(ctx, n.lower, a.attr, dest);
    n.upper = true;
    if (!n.dir) {
      const st = await this.upper.stat(this.rel(n));
      if (st) {
        n.key = inodeKey(st);
        this._byKey.set(n.key, n.id);
      }
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
    this._unbind(dir, name);
    return { dir, path, wasWhiteout };
  }

  /** Owner of what the caller makes: the caller's, as overlayfs creates with the caller's creds. */
  private async _own(ctx: FuseRequestContext, path: Buffer): Promise<void> {
    if (process.geteuid?.() === 0) await lchown(path, ctx.uid, ctx.gid);
  }

  private async _made(ctx: FuseRequestContext, dir: WNode, name: Buffer): Promise<FuseEntry | FuseErrno> {
    const n = await this.child(ctx, dir, name);
    return n ? this.entryOf(ctx, n) : fuseErrno(kErrno.EIO);
  }

  // --- FuseFilesystem: reading ------------------------------------------------------------------

  init(info: FuseInitInfo): void {
    this.lower.init?.(info);
  }

  destroy(info: { reason: 'destroy' | 'reset' }): void {
    this._io.closeAll();
    this.lower.destroy?.(info);
  }

  async lookup(ctx: FuseRequestContext, parent: number, name: Buffer): Promise<FuseEntry | FuseErrno> {
    const dir = this.node(parent);
    if (dir instanceof FuseErrno) return dir;
    if (!dir.dir) return fuseErrno(kErrno.ENOTDIR);
    if (name.length > 255) return fuseErrno(kErrno.ENAMETOOLONG);
    try {
      if (name.equals(kDot)) return await this.entryOf(ctx, dir);
      if (name.equals(kDotDot)) return await this.entryOf(ctx, this._nodes.get(dir.parent) ?? dir);
      const n = await this.child(ctx, dir, name);
      return n ? await this.entryOf(ctx, n) : { nodeid: 0, entryTimeout: this._t.entry };
    } catch (err) {
      return this.fail('lookup', err);
    }
  }

  async getattr(ctx: FuseRequestContext, nodeid: number): Promise<FuseAttrReply | FuseErrno> {
    const n = this.node(nodeid);
    if (n instanceof FuseErrno) return n;
    try {
      const attr = await this.attrOf(ctx, n);
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
  async list(ctx: FuseRequestContext, dir: WNode): Promise<{ name: Buffer; entry: FuseEntry }[] | FuseErrno> {
    const self = await this.entryOf(ctx, dir);
    if (self instanceof FuseErrno) return self;
    const up = await this.entryOf(ctx, this._nodes.get(dir.parent) ?? dir);
    if (up instanceof FuseErrno) return up;
    const out: { name: Buffer; entry: FuseEntry }[] = [{ name: kDot, entry: self }, { name: kDotDot, entry: up }];
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
      out.push({ name, entry: e });
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
    return this._io.page(ctx, nodeid, fh, offset, size, true, (i, next): FuseDirEntryPlus => ({ name: i.name, offset: next, entry: i.entry }));
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

  write(_ctx: FuseRequestContext, _nodeid: number, fh: number, offset: number, data: Buffer): FuseResult<number> {
    return this._io.write(fh, offset, data);
  }

  flush(): void {}

  fsync(_ctx: FuseRequestContext, _nodeid: number, fh: number, datasync: boolean): FuseResult<void> {
    return this._io.fsync(fh, datasync);
  }

  lseek(ctx: FuseRequestContext, nodeid: number, fh: number, offset: number, whence: number): FuseResult<number> {
    return this._io.lseek(ctx, nodeid, fh, offset, whence);
  }

  fallocate(): FuseErrno {
    return fuseErrno(kErrno.EOPNOTSUPP);
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
      // As overlayfs: a directory made where a whiteout was, or in a merged directory, is
      // opaque, so no lower directory of that name (now or added to the layer later) shows.
      if (p.wasWhiteout || p.dir.lower !== undefined) hostSetXattr(path, kOpaqueXattr, Buffer.from('y'), 0);
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
    this._unbind(dir, name);
  }

  unlink(ctx: FuseRequestContext, parent: number, name: Buffer): Promise<void | FuseErrno> {
    return this.locked('unlink', () => this._remove(ctx, parent, name, false));
  }

  rmdir(ctx: FuseRequestContext, parent: number, name: Buffer): Promise<void | FuseErrno> {
    return this.locked('rmdir', () => this._remove(ctx, parent, name, true));
  }

  rename(ctx: FuseRequestContext, parent: number, name: Buffer, newParent: number, newName: Buffer, flags: number): Promise<void | FuseErrno> {
    return this.locked('rename', async () => {
      if ((flags & ~kRenameNoreplace) !== 0) return fuseErrno(kErrno.EINVAL);
      const bad = this._checkName(newName);
      if (bad) return bad;
      const from = this.node(parent);
      const to = this.node(newParent);
      if (from instanceof FuseErrno) return from;
      if (to instanceof FuseErrno) return to;
      const n = await this.child(ctx, from, name);
      if (!n) return enoent();
      // A directory with a lower part cannot move without redirect_dir: EXDEV (mv copies).
      if (n.dir && (n.lower !== undefined || !n.upper || (await this._lowerEntry(ctx, from, name)))) return fuseErrno(kErrno.EXDEV);
      const target = await this.child(ctx, to, newName);
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
      const src = this.path(n);
      const dest = this._childPath(to, newName);
      const destSt = await this.upper.stat(UpperDir.child(this.rel(to), newName));
      if (destSt && upperKind(destSt) === 'whiteout') await unlink(dest);
      const below = (await this._lowerEntry(ctx, from, name)) !== undefined;
      await rename(src, dest);
      if (below) hostMknod(src, S_IFCHR, 0);
      this._unbind(from, name);
      this._unbind(to, newName);
      // A hard link renamed: its other name stays known.
      if (!n.dir && !(n.parent === from.id && n.name.equals(name))) (n.alt ??= []).push([n.parent, n.name]);
      n.parent = to.id;
      n.name = newName;
      this._bind(n);
      return undefined;
    });
  }

  setattr(ctx: FuseRequestContext, nodeid: number, set: FuseSetattr): Promise<FuseAttrReply | FuseErrno> {
    return this.locked('setattr', async () => {
      const n = this.node(nodeid);
      if (n instanceof FuseErrno) return n;
      await this.copyUp(ctx, n);
      const path = this.path(n);
      const attr = await this.attrOf(ctx, n);
      if (attr instanceof FuseErrno) return attr;
      if (set.size !== undefined) {
        if (n.dir) return fuseErrno(kErrno.EISDIR);
        await (set.fh !== undefined ? this._io.truncate(set.fh, set.size, path) : truncate(path, set.size));
      }
      if (set.mode !== undefined && !isLnkMode(attr.mode)) await chmod(path, set.mode & 0o7777);
      if (set.uid !== undefined || set.gid !== undefined) await lchown(path, set.uid ?? -1, set.gid ?? -1);
      if (set.atime !== undefined || set.mtime !== undefined) {
        const now = Date.now() / 1000;
        const t = (v: FuseSetattr['atime'], sec: number, nsec: number | undefined): number => (v === undefined ? sec + (nsec ?? 0) / 1e9 : v === 'now' ? now : v.sec + v.nsec / 1e9);
        await lutimes(path, t(set.atime, attr.atime, attr.atimeNsec), t(set.mtime, attr.mtime, attr.mtimeNsec));
      }
      const after = await this.attrOf(ctx, n);
      return after instanceof FuseErrno ? after : { attr: after, attrTimeout: this._t.attr };
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

