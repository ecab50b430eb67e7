/**
 * The filesystem a daemon serves: a pseudo root (pseudo-tree.ts) with filesystems mounted at
 * its directories, routed by node id (node-space.ts). It is the one `FuseFilesystem` the FUSE
 * session sees; each request goes to the pseudo tree or to the mount owning the node, with ids
 * and file handles translated between the mount's own ("inner") numbers and the session's.
 *
 * Semantics follow upstream fuse-backend-rs Vfs/PseudoFs:
 * - looking up a mountpoint crosses into the mount: the entry is the mount's root;
 * - a mount at "/" serves the FUSE root itself (node 1) and hides the pseudo tree;
 * - pseudo directories (mode 0777, owner 0) list their children only (no "." and "..");
 * - after a mount goes away, requests naming its nodes fail with ENOENT.
 * Unlike upstream, names in pseudo directories are given with entry timeout 0: a guest cannot
 * be told (virtio-fs has no notifications) that a name now leads into a mount, or out of one,
 * so it asks again on every path walk, and the native reply cache answers those repeats. Misses
 * are answered ENOENT (not negative entries), so a mount made later is seen at once.
 *
 * Requests a mount answers asynchronously are tracked per mount (the API's in-flight metrics,
 * and an umount that lets them finish before the mount's storage closes).
 */
import type {
  FuseAttr,
  FuseAttrReply,
  FuseCreateReply,
  FuseDirEntry,
  FuseDirEntryPlus,
  FuseEntry,
  FuseFilesystem,
  FuseInitInfo,
  FuseOpenReply,
  FuseReadMiss,
  FuseRequestContext,
  FuseResult,
  FuseSetattr,
  FuseStatfs,
} from '../fuse/index.js';
import { FuseErrno, fuseDirentSize, fuseErrno, kErrno, kFuseOp } from '../fuse/index.js';
import type { Logger } from '../util/logger.js';
import { globalId, innerOf, kRootId, kSlotSpan, slotOf } from './node-space.js';
import type { PseudoDir } from './pseudo-tree.js';
import { PseudoTree } from './pseudo-tree.js';

/** A filesystem attached at a pseudo directory. */
export interface VfsMount {
  /** 1..255: the node-id slot the mount's ids live in. */
  readonly slot: number;
  readonly fs: FuseFilesystem;
}

/** A request a mount is still working on (the API's /metrics/inflight). */
export interface InflightRequest {
  readonly id: number;
  /** The request's node, as the kernel named it. */
  readonly inode: number;
  readonly opcode: number;
  readonly startMs: number;
}

interface MountState {
  readonly mount: VfsMount;
  readonly dir: PseudoDir;
  readonly inflight: Map<number, InflightRequest>;
  /** Resolvers waiting for `inflight` to empty. */
  idle: (() => void)[];
}

const kS_IFDIR = 0o040000;
const kDT_DIR = 4;
const kEOPNOTSUPP = 95;
/** Upstream pseudo directories: attributes never change under the kernel. */
const kPseudoAttrTimeout = 2 ** 32;
const kNativeFhBase = 2 ** 53;

const kEnoent = (): FuseErrno => fuseErrno(kErrno.ENOENT);

function isThenable<T>(v: unknown): v is PromiseLike<T> {
  return typeof v === 'object' && v !== null && typeof (v as { then?: unknown }).then === 'function';
}

/** Applies `f` to a sync or async result, passing FuseErrno answers through. */
function mapResult<T, U>(r: FuseResult<T>, f: (v: T) => U | FuseErrno): U | FuseErrno | Promise<U | FuseErrno> {
  if (isThenable<T | FuseErrno>(r)) return Promise.resolve(r).then((v) => (v instanceof FuseErrno ? v : f(v)));
  return r instanceof FuseErrno ? r : f(r);
}

type Route = { dir: PseudoDir; st?: undefined; inner?: undefined } | { st: MountState; inner: number; dir?: undefined };

export class Vfs implements FuseFilesystem {
  readonly tree = new PseudoTree();
  private readonly _slots: (MountState | undefined)[] = [];
  /** pseudo directory id -> mount slot */
  private readonly _byDir = new Map<number, number>();
  /** Mounts detached while requests were in flight, by slot (until those settle). */
  private readonly _detached = new Map<number, MountState>();
  private _nextInflight = 1;

  constructor(private readonly _log: Logger) {}

  // --- mount table ------------------------------------------------------------------------

  /** The mount at `dir`, if any. */
  mountAt(dir: PseudoDir): VfsMount | undefined {
    const s = this._byDir.get(dir.id);
    return s === undefined ? undefined : this._slots[s]?.mount;
  }

  mount(slot: number): VfsMount | undefined {
    return this._slots[slot]?.mount;
  }

  /** Slot of the mount serving the FUSE root ("/"), or 0 (the pseudo root). */
  get rootSlot(): number {
    return this._byDir.get(kRootId) ?? 0;
  }

  /** Attaches `mount` at `dir` (which must be free); takes effect for the next request. */
  attach(dir: PseudoDir, mount: VfsMount): void {
    if (this._byDir.has(dir.id)) throw new Error(`${this.tree.pathOf(dir)} already has a mount`);
    if (this._slots[mount.slot]) throw new Error(`slot ${mount.slot} is taken`);
    this._slots[mount.slot] = { mount, dir, inflight: new Map(), idle: [] };
    this._byDir.set(dir.id, mount.slot);
  }

  /** Detaches the mount in `slot`: its nodes answer ENOENT from now on. */
  detach(slot: number): void {
    const st = this._slots[slot];
    if (!st) return;
    this._slots[slot] = undefined;
    this._byDir.delete(st.dir.id);
    // Whoever waits for the mount's requests is told by the requests themselves (_settle).
    if (st.inflight.size > 0) this._detached.set(slot, st);
  }

  /** Resolves when the (possibly detached) mount in `slot` has no request in flight. */
  whenIdle(slot: number): Promise<void> {
    const st = this._slots[slot] ?? this._detached.get(slot);
    if (!st || st.inflight.size === 0) {
      this._detached.delete(slot);
      return Promise.resolve();
    }
    return new Promise((resolve) => st.idle.push(resolve));
  }

  /** Requests of `slot` still being worked on (oldest first). */
  inflight(slot?: number): InflightRequest[] {
    const states = slot === undefined ? [...this._slots, ...this._detached.values()] : [this._slots[slot] ?? this._detached.get(slot)];
    const out: InflightRequest[] = [];
    for (const st of states) if (st) out.push(...st.inflight.values());
    return out.sort((a, b) => a.id - b.id);
  }

  // --- routing ------------------------------------------------------------------------------

  private _route(nodeid: number): Route | FuseErrno {
    if (nodeid === kRootId) {
      const rs = this._byDir.get(kRootId);
      const st = rs === undefined ? undefined : this._slots[rs];
      return st ? { st, inner: kRootId } : { dir: this.tree.root };
    }
    const slot = slotOf(nodeid);
    if (slot === 0) {
      const dir = this.tree.get(nodeid);
      return dir ? { dir } : kEnoent();
    }
    const st = this._slots[slot];
    return st ? { st, inner: innerOf(nodeid) } : kEnoent();
  }

  private _ctx(ctx: FuseRequestContext, inner: number): FuseRequestContext {
    return { nodeid: inner, uid: ctx.uid, gid: ctx.gid, pid: ctx.pid };
  }

  /** Runs `call` against a mount, tracking it while it is asynchronous. */
  private _call<T>(st: MountState, op: number, nodeid: number, call: () => FuseResult<T>): FuseResult<T> {
    const r = call();
    if (!isThenable(r)) return r;
    const id = this._nextInflight++;
    st.inflight.set(id, { id, inode: nodeid, opcode: op, startMs: Date.now() });
    const done = (): void => this._settle(st, id);
    return Promise.resolve(r).finally(done);
  }

  private _settle(st: MountState, id: number): void {
    st.inflight.delete(id);
    if (st.inflight.size > 0) return;
    const waiters = st.idle;
    st.idle = [];
    for (const w of waiters) w();
    if (this._slots[st.mount.slot] !== st) this._detached.delete(st.mount.slot);
  }

  /**
   * The common shape of a request on one node: ENOENT for nodes nobody owns, `pseudo` for pseudo
   * directories, otherwise `call` on the owning mount (ENOSYS when the mount lacks the method,
   * as the session would answer for a missing handler).
   */
  private _forward<T>(
    ctx: FuseRequestContext,
    nodeid: number,
    op: number,
    pseudo: (d: PseudoDir) => FuseResult<T>,
    call: (fs: FuseFilesystem, c: FuseRequestContext, inner: number) => FuseResult<T> | undefined,
    has: (fs: FuseFilesystem) => boolean,
  ): FuseResult<T> {
    const r = this._route(nodeid);
    if (r instanceof FuseErrno) return r;
    if (r.dir) return pseudo(r.dir);
    const { st, inner } = r;
    const fs = st.mount.fs;
    if (!has(fs)) return fuseErrno(kErrno.ENOSYS);
    const c = this._ctx(ctx, inner);
    return this._call(st, op, nodeid, () => call(fs, c, inner) as FuseResult<T>);
  }

  private _gid(st: MountState, inner: number): number {
    const g = globalId(st.mount.slot, inner);
    if (g === undefined) {
      this._log.error(`mount in slot ${st.mount.slot} answered node/handle ${inner}, beyond the ${kSlotSpan} ids of a slot`);
      throw fuseErrno(kErrno.EOVERFLOW);
    }
    return g;
  }

  /** A handle the kernel sent back: the mount's own number (or a session-made one, as is). */
  private _innerFh(fh: number): number {
    return fh >= kNativeFhBase ? fh : innerOf(fh);
  }

  private _attr(st: MountState, a: FuseAttr, nodeid: number): FuseAttr {
    return { ...a, ino: nodeid === kRootId ? kRootId : this._gid(st, a.ino) };
  }

  private _entry(st: MountState, e: FuseEntry): FuseEntry {
    if (e.nodeid === 0) return e;
    const nodeid = this._gid(st, e.nodeid);
    return { ...e, nodeid, ...(e.attr ? { attr: { ...e.attr, ino: nodeid } } : {}) };
  }

  // --- pseudo directories ---------------------------------------------------------------------

  private _pseudoAttr(d: PseudoDir): FuseAttr {
    return {
      ino: d.id,
      mode: kS_IFDIR | 0o777,
      nlink: 2 + d.children.size,
      uid: 0,
      gid: 0,
      size: 4096,
      blocks: 8,
      blksize: 4096,
      atime: d.createdSec,
      mtime: d.createdSec,
      ctime: d.createdSec,
    };
  }

  private _pseudoEntry(d: PseudoDir): FuseEntry {
    return { nodeid: d.id, generation: 0, attr: this._pseudoAttr(d), entryTimeout: 0, attrTimeout: kPseudoAttrTimeout };
  }

  /** The entry of `child`: itself, or the root of the mount attached there. */
  private _childEntry(ctx: FuseRequestContext, child: PseudoDir): FuseResult<FuseEntry> {
    const slot = this._byDir.get(child.id);
    const st = slot === undefined ? undefined : this._slots[slot];
    if (!st?.mount.fs.getattr) return this._pseudoEntry(child);
    const root = this._gid(st, kRootId);
    const fs = st.mount.fs;
    return mapResult(
      this._call(st, kFuseOp.LOOKUP, root, () => fs.getattr?.(this._ctx(ctx, kRootId), kRootId, undefined) as FuseResult<FuseAttrReply>),
      (r): FuseEntry => ({
        nodeid: root,
        generation: 0,
        attr: { ...r.attr, ino: root },
        // Asked again on every walk: the name may lead elsewhere after an umount or remount.
        entryTimeout: 0,
        ...(r.attrTimeout === undefined ? {} : { attrTimeout: r.attrTimeout }),
      }),
    );
  }

  private _pseudoLookup(ctx: FuseRequestContext, d: PseudoDir, name: Buffer): FuseResult<FuseEntry> {
    const n = name.toString('latin1');
    if (n === '.') return this._pseudoEntry(d);
    if (n === '..') return this._pseudoEntry(d.parent ?? d);
    // Names are stored as UTF-8 strings; a byte sequence that is not valid UTF-8 cannot match.
    const child = d.children.get(name.toString('utf8'));
    return child ? this._childEntry(ctx, child) : kEnoent();
  }

  // --- FuseFilesystem -----------------------------------------------------------------------

  init(info: FuseInitInfo): void {
    for (const st of this._slots) st?.mount.fs.init?.(info);
  }

  destroy(info: { reason: 'destroy' | 'reset' }): void {
    for (const st of this._slots) st?.mount.fs.destroy?.(info);
  }

  lookup(ctx: FuseRequestContext, parent: number, name: Buffer): FuseResult<FuseEntry> {
    const r = this._route(parent);
    if (r instanceof FuseErrno) return r;
    if (r.dir) return this._pseudoLookup(ctx, r.dir, name);
    const { st, inner } = r;
    const fs = st.mount.fs;
    if (!fs.lookup) return fuseErrno(kErrno.ENOSYS);
    return mapResult(
      this._call(st, kFuseOp.LOOKUP, parent, () => fs.lookup?.(this._ctx(ctx, inner), inner, name) as FuseResult<FuseEntry>),
      (e) => this._entry(st, e),
    );
  }

  getattr(ctx: FuseRequestContext, nodeid: number, fh: number | undefined): FuseResult<FuseAttrReply> {
    const r = this._route(nodeid);
    if (r instanceof FuseErrno) return r;
    if (r.dir) return { attr: this._pseudoAttr(r.dir), attrTimeout: kPseudoAttrTimeout };
    const { st, inner } = r;
    const fs = st.mount.fs;
    if (!fs.getattr) return fuseErrno(kErrno.ENOSYS);
    const ifh = fh === undefined ? undefined : this._innerFh(fh);
    return mapResult(
      this._call(st, kFuseOp.GETATTR, nodeid, () => fs.getattr?.(this._ctx(ctx, inner), inner, ifh) as FuseResult<FuseAttrReply>),
      (a) => ({ ...a, attr: this._attr(st, a.attr, nodeid) }),
    );
  }

  readlink(ctx: FuseRequestContext, nodeid: number): FuseResult<Buffer | string> {
    return this._forward(ctx, nodeid, kFuseOp.READLINK, () => fuseErrno(kErrno.EINVAL), (fs, c, i) => fs.readlink?.(c, i), (fs) => !!fs.readlink);
  }

  private _open(op: 'open' | 'opendir', ctx: FuseRequestContext, nodeid: number, flags: number): FuseResult<FuseOpenReply> {
    const r = this._route(nodeid);
    if (r instanceof FuseErrno) return r;
    if (r.dir) return op === 'open' ? fuseErrno(kErrno.EISDIR) : { fh: 0 };
    const { st, inner } = r;
    const fs = st.mount.fs;
    if (!fs[op]) return fuseErrno(kErrno.ENOSYS);
    const c = this._ctx(ctx, inner);
    const call = (): FuseResult<FuseOpenReply> | undefined => (op === 'open' ? fs.open?.(c, inner, flags) : fs.opendir?.(c, inner, flags));
    return mapResult(
      this._call(st, op === 'open' ? kFuseOp.OPEN : kFuseOp.OPENDIR, nodeid, call as () => FuseResult<FuseOpenReply>),
      (o) => ({ ...o, fh: this._gid(st, o.fh) }),
    );
  }

  open(ctx: FuseRequestContext, nodeid: number, flags: number): FuseResult<FuseOpenReply> {
    return this._open('open', ctx, nodeid, flags);
  }

  opendir(ctx: FuseRequestContext, nodeid: number, flags: number): FuseResult<FuseOpenReply> {
    return this._open('opendir', ctx, nodeid, flags);
  }

  read(ctx: FuseRequestContext, nodeid: number, fh: number, offset: number, size: number): FuseResult<Buffer | Uint8Array> {
    const r = this._route(nodeid);
    if (r instanceof FuseErrno) return r.errno === kErrno.ENOENT ? fuseErrno(kErrno.EBADF) : r;
    if (r.dir) return fuseErrno(kErrno.EISDIR);
    const { st, inner } = r;
    const fs = st.mount.fs;
    if (!fs.read) return fuseErrno(kErrno.ENOSYS);
    const ifh = this._innerFh(fh);
    return this._call(st, kFuseOp.READ, nodeid, () => fs.read?.(this._ctx(ctx, inner), inner, ifh, offset, size) as FuseResult<Buffer>);
  }

  readMiss(ctx: FuseRequestContext, miss: FuseReadMiss): void | FuseErrno | Promise<void | FuseErrno> {
    const r = this._route(ctx.nodeid);
    if (r instanceof FuseErrno) return fuseErrno(kErrno.EIO);
    if (r.dir) return fuseErrno(kErrno.EIO);
    const { st, inner } = r;
    const fs = st.mount.fs;
    if (!fs.readMiss) return fuseErrno(kErrno.EIO);
    const m: FuseReadMiss = { ...miss, fh: this._innerFh(miss.fh) };
    return this._call(st, kFuseOp.READ, ctx.nodeid, () => fs.readMiss?.(this._ctx(ctx, inner), m) as FuseResult<void>);
  }

  private _release(op: 'release' | 'releasedir', ctx: FuseRequestContext, nodeid: number, fh: number, flags: number): FuseResult<void> {
    const r = this._route(nodeid);
    // Releasing a handle of a mount that is gone (or of a pseudo directory) needs no work.
    if (r instanceof FuseErrno || r.dir) return undefined;
    const { st, inner } = r;
    const fs = st.mount.fs;
    if (!fs[op]) return undefined;
    const c = this._ctx(ctx, inner);
    const ifh = this._innerFh(fh);
    const call = (): FuseResult<void> | undefined => (op === 'release' ? fs.release?.(c, inner, ifh, flags) : fs.releasedir?.(c, inner, ifh, flags));
    return this._call(st, op === 'release' ? kFuseOp.RELEASE : kFuseOp.RELEASEDIR, nodeid, call);
  }

  release(ctx: FuseRequestContext, nodeid: number, fh: number, flags: number): FuseResult<void> {
    return this._release('release', ctx, nodeid, fh, flags);
  }

  releasedir(ctx: FuseRequestContext, nodeid: number, fh: number, flags: number): FuseResult<void> {
    return this._release('releasedir', ctx, nodeid, fh, flags);
  }

  private _pseudoReaddir<T>(d: PseudoDir, offset: number, size: number, plus: boolean, make: (name: string, child: PseudoDir, next: number) => T): T[] {
    const out: T[] = [];
    let room = size;
    let i = 0;
    for (const [name, child] of d.children) {
      i++;
      if (i <= offset) continue;
      const need = fuseDirentSize(Buffer.byteLength(name), plus);
      if (need > room) break;
      room -= need;
      out.push(make(name, child, i));
    }
    return out;
  }

  readdir(ctx: FuseRequestContext, nodeid: number, fh: number, offset: number, size: number): FuseResult<FuseDirEntry[]> {
    const r = this._route(nodeid);
    if (r instanceof FuseErrno) return r;
    if (r.dir) {
      return this._pseudoReaddir(r.dir, offset, size, false, (name, child, next): FuseDirEntry => {
        const slot = this._byDir.get(child.id);
        const st = slot === undefined ? undefined : this._slots[slot];
        return { name, ino: st ? this._gid(st, kRootId) : child.id, type: kDT_DIR, offset: next };
      });
    }
    const { st, inner } = r;
    const fs = st.mount.fs;
    if (!fs.readdir) return fuseErrno(kErrno.ENOSYS);
    return mapResult(
      this._call(st, kFuseOp.READDIR, nodeid, () => fs.readdir?.(this._ctx(ctx, inner), inner, this._innerFh(fh), offset, size) as FuseResult<FuseDirEntry[]>),
      (list) => list.map((e) => ({ ...e, ino: e.ino === 0 ? 0 : this._gid(st, e.ino) })),
    );
  }

  readdirplus(ctx: FuseRequestContext, nodeid: number, fh: number, offset: number, size: number): FuseResult<FuseDirEntryPlus[]> {
    const r = this._route(nodeid);
    if (r instanceof FuseErrno) return r;
    if (r.dir) {
      const items = this._pseudoReaddir(r.dir, offset, size, true, (name, child, next) => ({ name, next, entry: this._childEntry(ctx, child) }));
      if (!items.some((i) => isThenable(i.entry))) {
        return items.map((i) => ({ name: i.name, offset: i.next, entry: i.entry as FuseEntry }));
      }
      return Promise.all(items.map(async (i) => ({ name: i.name, offset: i.next, entry: await i.entry }))).then((list) => {
        // A mount root that failed to answer ends the listing before it (the kernel asks again).
        const k = list.findIndex((i) => i.entry instanceof FuseErrno);
        return (k < 0 ? list : list.slice(0, k)) as FuseDirEntryPlus[];
      });
    }
    const { st, inner } = r;
    const fs = st.mount.fs;
    if (!fs.readdirplus) return fuseErrno(kErrno.ENOSYS);
    return mapResult(
      this._call(st, kFuseOp.READDIRPLUS, nodeid, () => fs.readdirplus?.(this._ctx(ctx, inner), inner, this._innerFh(fh), offset, size) as FuseResult<FuseDirEntryPlus[]>),
      (list) => list.map((e) => ({ ...e, entry: this._entry(st, e.entry) })),
    );
  }

  statfs(ctx: FuseRequestContext, nodeid: number): FuseResult<FuseStatfs> {
    const r = this._route(nodeid);
    if (r instanceof FuseErrno) return r;
    if (r.dir || !r.st.mount.fs.statfs) {
      return { blocks: 0, bfree: 0, bavail: 0, files: this.tree.size, ffree: 0, bsize: 512, namelen: 255, frsize: 512 };
    }
    const { st, inner } = r;
    const fs = st.mount.fs;
    return this._call(st, kFuseOp.STATFS, nodeid, () => fs.statfs?.(this._ctx(ctx, inner), inner) as FuseResult<FuseStatfs>);
  }

  /**
   * ENOSYS from one mount's xattr handlers would make the kernel stop asking for xattrs on the
   * whole connection (every mount): it is answered as "not supported here" instead.
   */
  private static _noSys<T>(res: FuseResult<T>): FuseResult<T> {
    const map = (v: T | FuseErrno): T | FuseErrno => (v instanceof FuseErrno && v.errno === kErrno.ENOSYS ? fuseErrno(kEOPNOTSUPP) : v);
    return isThenable<T | FuseErrno>(res) ? Promise.resolve(res).then(map) : map(res);
  }

  getxattr(ctx: FuseRequestContext, nodeid: number, name: Buffer): FuseResult<Buffer | string> {
    return Vfs._noSys(this._forward(ctx, nodeid, kFuseOp.GETXATTR, () => fuseErrno(kErrno.ENODATA), (fs, c, i) => fs.getxattr?.(c, i, name), (fs) => !!fs.getxattr));
  }

  listxattr(ctx: FuseRequestContext, nodeid: number): FuseResult<ReadonlyArray<Buffer | string>> {
    return Vfs._noSys(this._forward(ctx, nodeid, kFuseOp.LISTXATTR, () => [], (fs, c, i) => fs.listxattr?.(c, i), (fs) => !!fs.listxattr));
  }

  access(ctx: FuseRequestContext, nodeid: number, mask: number): FuseResult<void> {
    // Pseudo directories and mounts without an access check allow everything (upstream).
    return this._forward(ctx, nodeid, kFuseOp.ACCESS, () => undefined, (fs, c, i) => fs.access?.(c, i, mask), () => true);
  }

  lseek(ctx: FuseRequestContext, nodeid: number, fh: number, offset: number, whence: number): FuseResult<number> {
    const ifh = this._innerFh(fh);
    return this._forward(ctx, nodeid, kFuseOp.LSEEK, () => fuseErrno(kErrno.EINVAL), (fs, c, i) => fs.lseek?.(c, i, ifh, offset, whence), (fs) => !!fs.lseek);
  }

  // --- mutating requests (only for nodes of writable mounts: the session answers EROFS for the
  // rest). Pseudo directories are never writable. Renames and links across mounts are EXDEV.

  private _mutate<T>(ctx: FuseRequestContext, nodeid: number, op: number, call: (fs: FuseFilesystem, c: FuseRequestContext, inner: number) => FuseResult<T> | undefined, has: (fs: FuseFilesystem) => boolean): FuseResult<T> {
    return this._forward(ctx, nodeid, op, () => fuseErrno(kErrno.EROFS), call, has);
  }

  private _mutateEntry(ctx: FuseRequestContext, nodeid: number, op: number, call: (fs: FuseFilesystem, c: FuseRequestContext, inner: number) => FuseResult<FuseEntry> | undefined, has: (fs: FuseFilesystem) => boolean): FuseResult<FuseEntry> {
    const r = this._route(nodeid);
    const res = this._mutate(ctx, nodeid, op, call, has);
    return r instanceof FuseErrno || r.dir ? res : mapResult(res, (e) => this._entry(r.st, e));
  }

  /** The inner id of `other` when it belongs to the same mount as `nodeid`, else EXDEV. */
  private _sameMount(nodeid: number, other: number): number | FuseErrno {
    const a = this._route(nodeid);
    const b = this._route(other);
    if (a instanceof FuseErrno) return a;
    if (b instanceof FuseErrno) return b;
    if (a.dir || b.dir) return a.dir && b.dir ? fuseErrno(kErrno.EROFS) : fuseErrno(kErrno.EXDEV);
    return a.st === b.st ? b.inner : fuseErrno(kErrno.EXDEV);
  }

  setattr(ctx: FuseRequestContext, nodeid: number, set: FuseSetattr): FuseResult<FuseAttrReply> {
    const r = this._route(nodeid);
    const s2 = set.fh === undefined ? set : { ...set, fh: this._innerFh(set.fh) };
    const res = this._mutate(ctx, nodeid, kFuseOp.SETATTR, (fs, c, i) => fs.setattr?.(c, i, s2), (fs) => !!fs.setattr);
    return r instanceof FuseErrno || r.dir ? res : mapResult(res, (a) => ({ ...a, attr: this._attr(r.st, a.attr, nodeid) }));
  }

  mknod(ctx: FuseRequestContext, parent: number, name: Buffer, mode: number, rdev: number, umask: number): FuseResult<FuseEntry> {
    return this._mutateEntry(ctx, parent, kFuseOp.MKNOD, (fs, c, i) => fs.mknod?.(c, i, name, mode, rdev, umask), (fs) => !!fs.mknod);
  }

  mkdir(ctx: FuseRequestContext, parent: number, name: Buffer, mode: number, umask: number): FuseResult<FuseEntry> {
    return this._mutateEntry(ctx, parent, kFuseOp.MKDIR, (fs, c, i) => fs.mkdir?.(c, i, name, mode, umask), (fs) => !!fs.mkdir);
  }

  symlink(ctx: FuseRequestContext, parent: number, name: Buffer, target: Buffer): FuseResult<FuseEntry> {
    return this._mutateEntry(ctx, parent, kFuseOp.SYMLINK, (fs, c, i) => fs.symlink?.(c, i, name, target), (fs) => !!fs.symlink);
  }

  unlink(ctx: FuseRequestContext, parent: number, name: Buffer): FuseResult<void> {
    return this._mutate(ctx, parent, kFuseOp.UNLINK, (fs, c, i) => fs.unlink?.(c, i, name), (fs) => !!fs.unlink);
  }

  rmdir(ctx: FuseRequestContext, parent: number, name: Buffer): FuseResult<void> {
    return this._mutate(ctx, parent, kFuseOp.RMDIR, (fs, c, i) => fs.rmdir?.(c, i, name), (fs) => !!fs.rmdir);
  }

  rename(ctx: FuseRequestContext, parent: number, name: Buffer, newParent: number, newName: Buffer, flags: number): FuseResult<void> {
    const np = this._sameMount(parent, newParent);
    if (np instanceof FuseErrno) return np;
    return this._mutate(ctx, parent, kFuseOp.RENAME, (fs, c, i) => fs.rename?.(c, i, name, np, newName, flags), (fs) => !!fs.rename);
  }

  link(ctx: FuseRequestContext, nodeid: number, newParent: number, newName: Buffer): FuseResult<FuseEntry> {
    const old = this._sameMount(newParent, nodeid);
    if (old instanceof FuseErrno) return old;
    return this._mutateEntry(ctx, newParent, kFuseOp.LINK, (fs, c, i) => fs.link?.(c, old, i, newName), (fs) => !!fs.link);
  }

  create(ctx: FuseRequestContext, parent: number, name: Buffer, flags: number, mode: number, umask: number): FuseResult<FuseCreateReply> {
    const r = this._route(parent);
    const res = this._mutate(ctx, parent, kFuseOp.CREATE, (fs, c, i) => fs.create?.(c, i, name, flags, mode, umask), (fs) => !!fs.create);
    if (r instanceof FuseErrno || r.dir) return res;
    const st = r.st;
    return mapResult(res, (v) => ({ entry: this._entry(st, v.entry), open: { ...v.open, fh: this._gid(st, v.open.fh) } }));
  }

  write(ctx: FuseRequestContext, nodeid: number, fh: number, offset: number, data: Buffer, flags: number): FuseResult<number> {
    const ifh = this._innerFh(fh);
    return this._mutate(ctx, nodeid, kFuseOp.WRITE, (fs, c, i) => fs.write?.(c, i, ifh, offset, data, flags), (fs) => !!fs.write);
  }

  setxattr(ctx: FuseRequestContext, nodeid: number, name: Buffer, value: Buffer, flags: number): FuseResult<void> {
    return this._mutate(ctx, nodeid, kFuseOp.SETXATTR, (fs, c, i) => fs.setxattr?.(c, i, name, value, flags), (fs) => !!fs.setxattr);
  }

  removexattr(ctx: FuseRequestContext, nodeid: number, name: Buffer): FuseResult<void> {
    return this._mutate(ctx, nodeid, kFuseOp.REMOVEXATTR, (fs, c, i) => fs.removexattr?.(c, i, name), (fs) => !!fs.removexattr);
  }

  fallocate(ctx: FuseRequestContext, nodeid: number, fh: number, offset: number, length: number, mode: number): FuseResult<void> {
    const ifh = this._innerFh(fh);
    return this._mutate(ctx, nodeid, kFuseOp.FALLOCATE, (fs, c, i) => fs.fallocate?.(c, i, ifh, offset, length, mode), (fs) => !!fs.fallocate);
  }
}
