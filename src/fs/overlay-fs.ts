/**
 * The read-only merged view of an overlay (config `overlay.upper_dir` without `--writable`): a
 * RAFS image as the lower layer, a host directory as the upper, with kernel overlayfs(5)
 * semantics (overlay-upper.ts has the on-disk rules: whiteouts, opaque directories, private
 * xattrs).
 *
 * Nodes come in two kinds, split by node id:
 * - lower nodes (ids below kUpperBase): whatever the lower filesystem answered, passed through
 *   untouched — a name the upper does not have, in a merged directory, leads to the lower node,
 *   and a lower directory reached that way has nothing above it, so its whole subtree is the
 *   lower filesystem's (node ids, handles, the native READ fast path, read misses);
 * - upper nodes (root 1, and ids from kUpperBase): directories present in the upper (merged
 *   with the lower directory of the same path unless opaque or not a directory below) and every
 *   upper non-directory, served from the host. Directory nodes are per path, file nodes per host
 *   inode (upper hardlinks share one node, as in the kernel's view); the id is kUpperBase + the
 *   host inode number where that fits (so it is the same after a restart, as overlayfs' are),
 *   else one counted from kUpperBase + kInoSpan.
 * Ids are handed out once and never reused, and every answer is a function of the two layers,
 * which do not change while mounted (as overlayfs(5) requires of its layers): the view is
 * immutable, so the native reply cache may keep LOOKUP/GETATTR answers and nothing counts
 * lookups. Merged directories show nlink 1, as the kernel's overlayfs does.
 *
 * A merged listing is built at OPENDIR (upper names first in host order, then the lower names
 * the upper neither has nor whites out, "." and ".." ahead), so offsets are stable per handle.
 */
import type { BigIntStats } from 'node:fs';
import { lstatSync } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';

import type {
  FuseAttr,
  FuseAttrReply,
  FuseDirEntry,
  FuseDirEntryPlus,
  FuseEntry,
  FuseFilesystem,
  FuseInitInfo,
  FuseOpenReply,
  FuseReadMiss,
  FuseRequestContext,
  FuseResult,
  FuseStatfs,
} from '../fuse/index.js';
import { errnoOf, FuseErrno, fuseDirentSize, fuseErrno, kErrno } from '../fuse/index.js';
import type { Logger } from '../util/logger.js';
import { isDirMode } from '../util/mode-bits.js';
import { readOnlyAccess } from './access.js';
import { kRootId } from './node-space.js';
import { inodeKey, upperAttr, upperKind, UpperDir } from './overlay-upper.js';

/** Upper node ids and handles start here; the lower filesystem's stay below. */
export const kUpperBase = 2 ** 43;
/** Upper ids kUpperBase + host ino for inodes of the upper root's filesystem below this ino. */
const kInoSpan = 2 ** 42;
const kMaxRead = 64 * 1024 * 1024;
const kLowerListChunk = 1 << 20;
const kDot = Buffer.from('.');
const kDotDot = Buffer.from('..');

export interface OverlayFsOptions {
  /** Seconds the kernel may cache names (and missing names). */
  entryTimeout: number;
  attrTimeout: number;
  log: Logger;
}

/** The lower filesystem's methods the overlay uses (a RafsFilesystem). */
export type OverlayLower = Required<
  Pick<FuseFilesystem, 'lookup' | 'getattr' | 'readlink' | 'open' | 'read' | 'release' | 'opendir' | 'readdirplus' | 'releasedir' | 'getxattr' | 'listxattr' | 'lseek'>
> &
  Pick<FuseFilesystem, 'readMiss' | 'readdir' | 'destroy' | 'init'>;

interface UpperNode {
  readonly id: number;
  /** Path below the upper root ("" for the root), the first name the node was found by. */
  readonly rel: Buffer;
  readonly dir: boolean;
  /** Directories: the parent's id (the root is its own parent). */
  readonly parent: number;
  /** Merged directories: the lower directory's node id. */
  readonly lower?: number;
  /** Files: the host inode (dev:ino) the node stands for. */
  readonly key?: string;
}

export interface ListItem {
  name: Buffer;
  entry: FuseEntry;
}

/** Every entry of lower directory `dir` but "." and "..". */
export async function listLower(lower: OverlayLower, ctx: FuseRequestContext, dir: number): Promise<ListItem[] | FuseErrno> {
  const fh = await lower.opendir(ctx, dir, 0);
  if (fh instanceof FuseErrno) return fh;
  const out: ListItem[] = [];
  try {
    for (let offset = 0; ; ) {
      const batch = await lower.readdirplus(ctx, dir, fh.fh, offset, kLowerListChunk);
      if (batch instanceof FuseErrno) return batch;
      if (batch.length === 0) return out;
      for (const r of batch) {
        const name = typeof r.name === 'string' ? Buffer.from(r.name) : r.name;
        offset = r.offset;
        if (name.equals(kDot) || name.equals(kDotDot)) continue;
        out.push({ name, entry: r.entry });
      }
    }
  } finally {
    await lower.releasedir(ctx, dir, fh.fh, 0);
  }
}

/** The records of a listing from cookie `offset` that fit `size` bytes of READDIR(PLUS) reply. */
export function pageOf<T>(items: readonly ListItem[], offset: number, size: number, plus: boolean, make: (i: ListItem, next: number) => T): T[] {
  const out: T[] = [];
  let room = size;
  for (let i = offset; i < items.length; i++) {
    const item = items[i] as ListItem;
    const need = fuseDirentSize(item.name.length, plus);
    if (need > room) break;
    room -= need;
    out.push(make(item, i + 1));
  }
  return out;
}

/** A READ is answered short only at EOF: loops over short host reads. */
export async function readFull(f: FileHandle, offset: number, size: number): Promise<Buffer> {
  const buf = Buffer.allocUnsafe(size);
  let got = 0;
  while (got < size) {
    const { bytesRead } = await f.read(buf, got, size - got, offset + got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  return buf.subarray(0, got);
}

const isUpperId = (id: number): boolean => id === kRootId || id >= kUpperBase;

function isThenable<T>(v: unknown): v is PromiseLike<T> {
  return typeof v === 'object' && v !== null && typeof (v as { then?: unknown }).then === 'function';
}

export class OverlayFilesystem implements FuseFilesystem {
  private readonly _upper: UpperDir;
  private readonly _nodes = new Map<number, UpperNode>();
  /** Directory path (latin1 of the bytes) -> node id. */
  private readonly _dirIds = new Map<string, number>();
  /** Host inode of an upper file -> node id. */
  private readonly _fileIds = new Map<string, number>();
  private readonly _files = new Map<number, FileHandle>();
  private readonly _lists = new Map<number, Promise<ListItem[] | FuseErrno>>();
  private _nextId = kUpperBase + kInoSpan;
  private readonly _rootDev: bigint;
  private _nextFh = kUpperBase;

  /**
   * `lowerRoot` is the lower filesystem's root node id (1 for a RafsFilesystem); the upper
   * directory must exist (the caller checked it).
   */
  constructor(
    private readonly _lower: OverlayLower,
    upperDir: string,
    private readonly _opts: OverlayFsOptions,
    lowerRoot = kRootId,
  ) {
    this._upper = new UpperDir(upperDir);
    this._rootDev = lstatSync(upperDir, { bigint: true }).dev;
    this._nodes.set(kRootId, { id: kRootId, rel: Buffer.alloc(0), dir: true, parent: kRootId, lower: lowerRoot });
    this._dirIds.set('', kRootId);
  }

  /** Files of the upper layer open right now. */
  get openFiles(): number {
    return this._files.size;
  }

  /** Errors the host gives are answered as they are; anything else is logged and becomes EIO. */
  private _fail(what: string, err: unknown): FuseErrno {
    if (err instanceof FuseErrno) return err;
    const { errno, expected } = errnoOf(err);
    if (!expected) this._opts.log.error(`${what}: ${(err as Error).message}`);
    return fuseErrno(errno);
  }

  private _node(id: number): UpperNode | FuseErrno {
    return this._nodes.get(id) ?? fuseErrno(kErrno.ENOENT);
  }

  /** A lower answer's node id must stay below the upper ids. */
  private _lowerEntry(e: FuseEntry | FuseErrno): FuseEntry | FuseErrno {
    if (e instanceof FuseErrno || e.nodeid < kUpperBase) return e;
    this._opts.log.error(`the lower filesystem answered node ${e.nodeid}, beyond the overlay's ${kUpperBase} lower ids`);
    return fuseErrno(kErrno.EOVERFLOW);
  }

  private async _lowerLookup(ctx: FuseRequestContext, dir: number, name: Buffer): Promise<FuseEntry | FuseErrno> {
    return this._lowerEntry(await this._lower.lookup(ctx, dir, name));
  }

  private _negative(): FuseEntry {
    return { nodeid: 0, entryTimeout: this._opts.entryTimeout };
  }

  private _entryOf(node: UpperNode, attr: FuseAttr): FuseEntry {
    return { nodeid: node.id, generation: 0, attr, entryTimeout: this._opts.entryTimeout, attrTimeout: this._opts.attrTimeout };
  }

  private _attrOf(node: UpperNode, st: BigIntStats): FuseAttr {
    return upperAttr(st, node.id, node.lower !== undefined ? 1 : Number(st.nlink));
  }

  private _newNode(st: BigIntStats, fields: Omit<UpperNode, 'id'>): UpperNode {
    let id = st.dev === this._rootDev && st.ino < kInoSpan ? kUpperBase + Number(st.ino) : undefined;
    if (id === undefined || this._nodes.has(id)) id = this._nextId++;
    const node: UpperNode = { id, ...fields };
    this._nodes.set(node.id, node);
    return node;
  }

  /** `name` in upper directory `dir`: the upper entry, else the lower one, else missing. */
  private async _resolve(ctx: FuseRequestContext, dir: UpperNode, name: Buffer): Promise<FuseEntry | FuseErrno> {
    const rel = UpperDir.child(dir.rel, name);
    const st = await this._upper.stat(rel);
    if (!st) return dir.lower === undefined ? this._negative() : this._lowerLookup(ctx, dir.lower, name);
    const kind = upperKind(st);
    if (kind === 'whiteout') return this._negative();
    if (kind === 'file') {
      const key = inodeKey(st);
      let id = this._fileIds.get(key);
      if (id === undefined) {
        id = this._newNode(st, { rel, dir: false, parent: dir.id, key }).id;
        this._fileIds.set(key, id);
      }
      return this._entryOf(this._nodes.get(id) as UpperNode, upperAttr(st, id));
    }
    const path = rel.toString('latin1');
    const known = this._dirIds.get(path);
    let node = known === undefined ? undefined : this._nodes.get(known);
    if (!node) {
      let lower: number | undefined;
      if (dir.lower !== undefined && !this._upper.opaque(rel)) {
        const le = await this._lowerLookup(ctx, dir.lower, name);
        if (le instanceof FuseErrno && le.errno !== kErrno.ENOENT) return le;
        if (!(le instanceof FuseErrno) && le.nodeid !== 0 && le.attr && isDirMode(le.attr.mode)) lower = le.nodeid;
      }
      node = this._newNode(st, { rel, dir: true, parent: dir.id, ...(lower === undefined ? {} : { lower }) });
      this._dirIds.set(path, node.id);
    }
    return this._entryOf(node, this._attrOf(node, st));
  }

  init(info: FuseInitInfo): void {
    this._lower.init?.(info);
  }

  destroy(info: { reason: 'destroy' | 'reset' }): void {
    // The kernel forgot every handle; node ids stay valid (they are per path and never reused).
    for (const f of this._files.values()) void f.close().catch(() => undefined);
    this._files.clear();
    this._lists.clear();
    this._lower.destroy?.(info);
  }

  lookup(ctx: FuseRequestContext, parent: number, name: Buffer): FuseResult<FuseEntry> {
    if (!isUpperId(parent)) return this._lowerLookup(ctx, parent, name);
    const dir = this._node(parent);
    if (dir instanceof FuseErrno) return dir;
    if (!dir.dir) return fuseErrno(kErrno.ENOTDIR);
    if (name.length > 255) return fuseErrno(kErrno.ENAMETOOLONG);
    if (name.length === 0 || name.includes(0x2f) || name.includes(0)) return fuseErrno(kErrno.EINVAL);
    if (name.equals(kDot) || name.equals(kDotDot)) {
      const target = this._nodes.get(name.equals(kDot) ? dir.id : dir.parent) as UpperNode;
      return this._getattr(target).then((a) => (a instanceof FuseErrno ? a : this._entryOf(target, a.attr)));
    }
    return this._resolve(ctx, dir, name).catch((err: unknown) => this._fail(`lookup in ${this._show(dir.rel)}`, err));
  }

  private _show(rel: Buffer): string {
    return JSON.stringify(rel.length === 0 ? '/' : rel.toString('utf8'));
  }

  private async _getattr(node: UpperNode): Promise<FuseAttrReply | FuseErrno> {
    try {
      const st = await this._upper.stat(node.rel);
      // Gone from the host (the layers changed under the mount): stale, as overlayfs would say.
      if (!st || (node.key !== undefined && inodeKey(st) !== node.key)) return fuseErrno(kErrno.ESTALE);
      return { attr: this._attrOf(node, st), attrTimeout: this._opts.attrTimeout };
    } catch (err) {
      return this._fail(`getattr of ${this._show(node.rel)}`, err);
    }
  }

  getattr(ctx: FuseRequestContext, nodeid: number, fh: number | undefined): FuseResult<FuseAttrReply> {
    if (!isUpperId(nodeid)) return this._lower.getattr(ctx, nodeid, fh);
    const node = this._node(nodeid);
    return node instanceof FuseErrno ? node : this._getattr(node);
  }

  readlink(ctx: FuseRequestContext, nodeid: number): FuseResult<Buffer | string> {
    if (!isUpperId(nodeid)) return this._lower.readlink(ctx, nodeid);
    const node = this._node(nodeid);
    if (node instanceof FuseErrno) return node;
    if (node.dir) return fuseErrno(kErrno.EINVAL);
    return this._upper.readlink(node.rel).catch((err: unknown) => this._fail(`readlink of ${this._show(node.rel)}`, err));
  }

  open(ctx: FuseRequestContext, nodeid: number, flags: number): FuseResult<FuseOpenReply> {
    if (!isUpperId(nodeid)) return this._lower.open(ctx, nodeid, flags);
    const node = this._node(nodeid);
    if (node instanceof FuseErrno) return node;
    if (node.dir) return fuseErrno(kErrno.EISDIR);
    return this._upper.openFile(node.rel, node.key as string).then(
      (f): FuseOpenReply | FuseErrno => {
        if (f instanceof FuseErrno) return f;
        const fh = this._nextFh++;
        this._files.set(fh, f);
        return { fh, keepCache: true };
      },
      (err: unknown) => this._fail(`open of ${this._show(node.rel)}`, err),
    );
  }

  read(ctx: FuseRequestContext, nodeid: number, fh: number, offset: number, size: number): FuseResult<Buffer | Uint8Array> {
    if (!isUpperId(nodeid)) return this._lower.read(ctx, nodeid, fh, offset, size);
    const f = this._files.get(fh);
    if (!f) return fuseErrno(kErrno.EBADF);
    return readFull(f, offset, Math.min(size, kMaxRead)).catch((err: unknown) => this._fail(`read of node ${nodeid} at ${offset}+${size}`, err));
  }

  readMiss(ctx: FuseRequestContext, miss: FuseReadMiss): void | FuseErrno | Promise<void | FuseErrno> {
    // Only lower handles have extent tables.
    return this._lower.readMiss ? this._lower.readMiss(ctx, miss) : fuseErrno(kErrno.EIO);
  }

  release(ctx: FuseRequestContext, nodeid: number, fh: number, flags: number): FuseResult<void> {
    if (!isUpperId(nodeid)) return this._lower.release(ctx, nodeid, fh, flags);
    const f = this._files.get(fh);
    this._files.delete(fh);
    return f?.close().catch((err: unknown) => {
      this._fail(`closing node ${nodeid}`, err);
    });
  }

  opendir(ctx: FuseRequestContext, nodeid: number, flags: number): FuseResult<FuseOpenReply> {
    if (!isUpperId(nodeid)) return this._lower.opendir(ctx, nodeid, flags);
    const node = this._node(nodeid);
    if (node instanceof FuseErrno) return node;
    if (!node.dir) return fuseErrno(kErrno.ENOTDIR);
    const list = this._list(ctx, node);
    return list.then((l) => {
      if (l instanceof FuseErrno) return l;
      const fh = this._nextFh++;
      this._lists.set(fh, list);
      return { fh, keepCache: true, cacheDir: true };
    });
  }

  /** The merged listing of upper directory `dir`. */
  private async _list(ctx: FuseRequestContext, dir: UpperNode): Promise<ListItem[] | FuseErrno> {
    try {
      const self = await this._getattr(dir);
      if (self instanceof FuseErrno) return self;
      const parentNode = this._nodes.get(dir.parent) as UpperNode;
      const parent = parentNode === dir ? self : await this._getattr(parentNode);
      if (parent instanceof FuseErrno) return parent;
      const items: ListItem[] = [
        { name: kDot, entry: this._entryOf(dir, self.attr) },
        { name: kDotDot, entry: this._entryOf(parentNode, parent.attr) },
      ];
      // Every upper name, shown or not, hides the lower name (a whiteout by hiding itself too).
      const taken = new Set<string>();
      for (const name of await this._upper.list(dir.rel)) {
        taken.add(name.toString('latin1'));
        const e = await this._resolve(ctx, dir, name);
        if (e instanceof FuseErrno) {
          // Vanished between listing and lookup: as if it had not been listed.
          if (e.errno === kErrno.ENOENT || e.errno === kErrno.ESTALE) continue;
          return e;
        }
        if (e.nodeid !== 0) items.push({ name, entry: e });
      }
      if (dir.lower !== undefined) {
        const lower = await this._lowerList(ctx, dir.lower);
        if (lower instanceof FuseErrno) return lower;
        for (const item of lower) if (!taken.has(item.name.toString('latin1'))) items.push(item);
      }
      return items;
    } catch (err) {
      return this._fail(`listing ${this._show(dir.rel)}`, err);
    }
  }

  /** Every entry of lower directory `dir` but "." and "..". */
  private async _lowerList(ctx: FuseRequestContext, dir: number): Promise<ListItem[] | FuseErrno> {
    const items = await listLower(this._lower, ctx, dir);
    if (items instanceof FuseErrno) return items;
    for (const item of items) {
      const entry = this._lowerEntry(item.entry);
      if (entry instanceof FuseErrno) return entry;
    }
    return items;
  }

  private _listing(ctx: FuseRequestContext, nodeid: number, fh: number): Promise<ListItem[] | FuseErrno> | FuseErrno {
    const known = this._lists.get(fh);
    if (known) return known;
    // A handle this filesystem did not make (none so far): list afresh.
    const node = this._node(nodeid);
    if (node instanceof FuseErrno) return node;
    return node.dir ? this._list(ctx, node) : fuseErrno(kErrno.ENOTDIR);
  }

  private _page<T>(ctx: FuseRequestContext, nodeid: number, fh: number, offset: number, size: number, plus: boolean, make: (i: ListItem, next: number) => T): FuseResult<T[]> {
    const listing = this._listing(ctx, nodeid, fh);
    if (listing instanceof FuseErrno) return listing;
    return listing.then((items) => (items instanceof FuseErrno ? items : pageOf(items, offset, size, plus, make)));
  }

  readdir(ctx: FuseRequestContext, nodeid: number, fh: number, offset: number, size: number): FuseResult<FuseDirEntry[]> {
    if (!isUpperId(nodeid)) {
      if (this._lower.readdir) return this._lower.readdir(ctx, nodeid, fh, offset, size);
      return fuseErrno(kErrno.ENOSYS);
    }
    return this._page(ctx, nodeid, fh, offset, size, false, (i, next): FuseDirEntry => ({ name: i.name, ino: i.entry.nodeid, mode: i.entry.attr?.mode ?? 0, offset: next }));
  }

  readdirplus(ctx: FuseRequestContext, nodeid: number, fh: number, offset: number, size: number): FuseResult<FuseDirEntryPlus[]> {
    if (!isUpperId(nodeid)) return this._lower.readdirplus(ctx, nodeid, fh, offset, size);
    return this._page(ctx, nodeid, fh, offset, size, true, (i, next): FuseDirEntryPlus => ({ name: i.name, offset: next, entry: i.entry }));
  }

  releasedir(ctx: FuseRequestContext, nodeid: number, fh: number, flags: number): FuseResult<void> {
    if (!isUpperId(nodeid)) return this._lower.releasedir(ctx, nodeid, fh, flags);
    this._lists.delete(fh);
  }

  /** As overlayfs: the upper filesystem's numbers, for every node. */
  statfs(): FuseResult<FuseStatfs> {
    return this._upper.statfs().catch((err: unknown) => this._fail('statfs of the upper directory', err));
  }

  getxattr(ctx: FuseRequestContext, nodeid: number, name: Buffer): FuseResult<Buffer | string> {
    if (!isUpperId(nodeid)) return this._lower.getxattr(ctx, nodeid, name);
    const node = this._node(nodeid);
    if (node instanceof FuseErrno) return node;
    try {
      return this._upper.xattrs(node.rel).find(([n]) => n.equals(name))?.[1] ?? fuseErrno(kErrno.ENODATA);
    } catch (err) {
      return this._fail(`getxattr of ${this._show(node.rel)}`, err);
    }
  }

  listxattr(ctx: FuseRequestContext, nodeid: number): FuseResult<ReadonlyArray<Buffer | string>> {
    if (!isUpperId(nodeid)) return this._lower.listxattr(ctx, nodeid);
    const node = this._node(nodeid);
    if (node instanceof FuseErrno) return node;
    try {
      return this._upper.xattrs(node.rel).map(([n]) => n);
    } catch (err) {
      return this._fail(`listxattr of ${this._show(node.rel)}`, err);
    }
  }

  access(ctx: FuseRequestContext, nodeid: number, mask: number): FuseResult<void> {
    const r = this.getattr(ctx, nodeid, undefined);
    const check = (a: FuseAttrReply | FuseErrno): void | FuseErrno => (a instanceof FuseErrno ? a : readOnlyAccess(ctx, a.attr, mask));
    return isThenable<FuseAttrReply | FuseErrno>(r) ? Promise.resolve(r).then(check) : check(r);
  }

  lseek(ctx: FuseRequestContext, nodeid: number, fh: number, offset: number, whence: number): FuseResult<number> {
    if (!isUpperId(nodeid)) return this._lower.lseek(ctx, nodeid, fh, offset, whence);
    const f = this._files.get(fh);
    if (!f) return fuseErrno(kErrno.EBADF);
    if (whence !== 3 && whence !== 4) return fuseErrno(kErrno.EINVAL);
    // Upper files are reported as all data (Node cannot ask the host for its holes).
    return f.stat().then(
      (st) => (offset < 0 || offset >= st.size ? fuseErrno(kErrno.ENXIO) : whence === 3 ? offset : st.size),
      (err: unknown) => this._fail(`lseek on node ${nodeid}`, err),
    );
  }
}
