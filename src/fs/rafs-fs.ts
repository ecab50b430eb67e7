/**
 * FUSE semantics over one RAFS image: the `FuseFilesystem` the native session calls for every
 * request it does not answer itself. Read-only and immutable, so:
 * - node ids are a pure function of inode identity (nodes.ts): no lookup-count table, FORGET
 *   needs nothing, hardlinks share a node id, a second INIT finds nothing stale;
 * - names and attributes may be cached by the kernel for as long as the caller configures
 *   (upstream uses 2^32 s), and a missing name is answered with a negative entry so the kernel
 *   caches that too;
 * - OPEN returns KEEP_CACHE and, when every chunk of the file lives in a blob cache, the file's
 *   extent table, so cache-hit READs never reach JavaScript. A miss comes back as `readMiss`:
 *   the chunks are fetched into the cache and the parked READ completes natively.
 *
 * Errors: expected answers (ENOENT, ENODATA, ENOTDIR...) are returned as FuseErrno values;
 * failures of the image or the storage (corrupt metadata, backend errors, digest mismatches) are
 * logged with context and answered EIO for that request only.
 */
import type {
  FuseAttrReply,
  FuseDirEntry,
  FuseDirEntryPlus,
  FuseEntry,
  FuseFilesystem,
  FuseOpenReply,
  FuseReadMiss,
  FuseRequestContext,
  FuseStatfs,
} from '../fuse/index.js';
import { FuseErrno, FuseExtentTable, fuseDirentSize, fuseErrno, kErrno } from '../fuse/index.js';
import type { ChunkInfo, InodeRef, RafsImage } from '../rafs/index.js';
import type { ImageStorage } from '../storage/index.js';
import type { Logger } from '../util/logger.js';
import { isDirMode, isLnkMode, isRegMode } from '../util/mode-bits.js';
import { lowerBoundBy } from '../util/search.js';
import { readOnlyAccess } from './access.js';
import type { AttrPolicy } from './attr.js';
import { toFuseAttr } from './attr.js';
import { kRootNodeId, NodeMap } from './nodes.js';
import { seekDataHole } from './seek.js';

export interface RafsFsOptions {
  /** Seconds the kernel may cache names (and negative lookups). */
  entryTimeout: number;
  /** Seconds the kernel may cache attributes. */
  attrTimeout: number;
  /** Serve xattrs (config `enable_xattr`, or the image says it has some). */
  xattr: boolean;
  policy: AttrPolicy;
  log: Logger;
  /** Blob indexes whose chunks the native READ path can serve from a cache file. */
  nativeBlobs: ReadonlySet<number>;
  /**
   * The native blob slot of each blob index (when several images share one FUSE session, each
   * gets its own slots); default: the blob index itself. Read misses name slots, mapped back here.
   */
  blobSlots?: readonly number[];
  /** Wakes every other parked READ waiting on these chunks (FuseSession.chunksReady, by slot). */
  chunksReady?: (blobSlot: number, chunkIndexes: number[]) => void;
}

interface OpenFile {
  ref: InodeRef;
  size: number;
  chunks: ChunkInfo[];
  /** missKey(blob, chunk) -> chunk, built on the first miss. */
  byKey?: Map<number, ChunkInfo>;
  /** The chunks are in file offset order (binary search finds a miss's range), built with byKey. */
  sorted?: boolean;
  /** blob index -> one past the file's last chunk index there (readahead stops at the file's end). */
  aheadEnd?: Map<number, number>;
}

/**
 * A chunk's key in OpenFile.byKey: blob index and chunk index in one number, no string per
 * lookup (a miss is on the cold-read path). Chunk indexes are u32 and blob indexes are below the
 * blob table's length (checked at load, far below 2^21), so the key stays an exact integer; an
 * unknown slot (-1) gives a negative key that matches nothing.
 */
function missKey(blobIndex: number, chunkIndex: number): number {
  return blobIndex * 0x1_0000_0000 + chunkIndex;
}

/** How many of `f`'s chunks overlap file bytes [start, end): a binary search in file order. */
function coveredChunks(f: OpenFile, start: number, end: number): number {
  const cs = f.chunks;
  if (!f.sorted) {
    let n = 0;
    for (const c of cs) if (c.fileOffset < end && c.fileOffset + c.uncompressedSize > start) n++;
    return n;
  }
  // The first chunk ending after `start` (offsets are integers); chunks in file order do not
  // overlap, so their ends ascend.
  const lo = lowerBoundBy(cs.length, (i) => (cs[i] as ChunkInfo).fileOffset + (cs[i] as ChunkInfo).uncompressedSize, start + 1);
  let n = 0;
  for (let i = lo; i < cs.length && (cs[i] as ChunkInfo).fileOffset < end; i++) n++;
  return n;
}

const kExtentCacheSize = 1024;
const kMissFileCacheSize = 256;
const kMaxRead = 64 * 1024 * 1024;

export class RafsFilesystem implements FuseFilesystem {
  private readonly _nodes: NodeMap;
  private readonly _rootRef: InodeRef;
  private readonly _files = new Map<number, OpenFile>();
  private _nextFh = 1;
  /** Extent tables by inode, reused across opens (insertion order = LRU order). */
  private readonly _extents = new Map<InodeRef, FuseExtentTable | null>();
  /** Files of natively opened handles that missed the cache, by inode (LRU order). */
  private readonly _missFiles = new Map<InodeRef, OpenFile>();

  /** native slot -> blob index */
  private readonly _indexOfSlot = new Map<number, number>();

  constructor(
    private readonly _image: RafsImage,
    private readonly _storage: ImageStorage,
    private readonly _opts: RafsFsOptions,
  ) {
    this._nodes = new NodeMap(_image);
    this._rootRef = _image.super.rootRef;
    _opts.blobSlots?.forEach((slot, index) => this._indexOfSlot.set(slot, index));
  }

  /** The native slot of a blob index (-1: the blob has none). */
  private _slotOf(blobIndex: number): number {
    const slots = this._opts.blobSlots;
    return slots ? (slots[blobIndex] ?? -1) : blobIndex;
  }

  private _indexOf(slot: number): number {
    return this._opts.blobSlots ? (this._indexOfSlot.get(slot) ?? -1) : slot;
  }

  /** READs answered here (no extent table: dummycache, or a blob without a native cache). */
  jsReads = 0;
  /** Native READs that found chunks missing and were filled through storage. */
  readMisses = 0;
  /** Of those, READs that found some of their chunks in the cache (upstream partial_hits). */
  partialMisses = 0;

  get openFiles(): number {
    return this._files.size;
  }

  /** An internal failure: logged with what was being done, answered EIO. */
  private _fail(what: string, err: unknown): FuseErrno {
    const e = err as { errno?: unknown; message?: unknown; reported?: unknown };
    // Storage logs a failed fetch once, with blob and range; every READ waiting on it gets EIO.
    this._opts.log.log(e.reported === true ? 'debug' : 'error', `${what}: ${typeof e.message === 'string' ? e.message : String(err)}`);
    return fuseErrno(kErrno.EIO);
  }

  private _ref(nodeid: number): InodeRef | FuseErrno {
    const ref = this._nodes.refOf(nodeid);
    return ref === undefined ? fuseErrno(kErrno.ENOENT) : ref;
  }

  private _entry(ref: InodeRef): FuseEntry {
    const a = this._image.getAttr(ref);
    const nodeid = this._nodes.nodeIdOf(a.ino, ref);
    return {
      nodeid,
      generation: 0,
      attr: toFuseAttr(a, nodeid, ref === this._rootRef, this._opts.policy),
      entryTimeout: this._opts.entryTimeout,
      attrTimeout: this._opts.attrTimeout,
    };
  }

  destroy(): void {
    // The kernel forgot every handle (unmount, guest reboot, transport reset).
    this._files.clear();
    this._missFiles.clear();
  }

  lookup(_ctx: FuseRequestContext, parent: number, name: Buffer): FuseEntry | FuseErrno {
    const pref = this._ref(parent);
    if (typeof pref !== 'number') return pref;
    try {
      if (!this._image.isDir(pref)) return fuseErrno(kErrno.ENOTDIR);
      if (name.length > 255) return fuseErrno(kErrno.ENAMETOOLONG);
      const child = this._image.lookup(pref, name);
      // An immutable image never grows the name later: let the kernel cache the miss.
      if (child === undefined) return { nodeid: 0, entryTimeout: this._opts.entryTimeout };
      return this._entry(child);
    } catch (err) {
      return this._fail(`lookup in node ${parent}`, err);
    }
  }

  getattr(_ctx: FuseRequestContext, nodeid: number): FuseAttrReply | FuseErrno {
    const ref = this._ref(nodeid);
    if (typeof ref !== 'number') return ref;
    try {
      const a = this._image.getAttr(ref);
      return { attr: toFuseAttr(a, nodeid, ref === this._rootRef, this._opts.policy), attrTimeout: this._opts.attrTimeout };
    } catch (err) {
      return this._fail(`getattr of node ${nodeid}`, err);
    }
  }

  readlink(_ctx: FuseRequestContext, nodeid: number): Buffer | FuseErrno {
    const ref = this._ref(nodeid);
    if (typeof ref !== 'number') return ref;
    try {
      if (!isLnkMode(this._image.getAttr(ref).mode)) return fuseErrno(kErrno.EINVAL);
      return this._image.readLink(ref);
    } catch (err) {
      return this._fail(`readlink of node ${nodeid}`, err);
    }
  }

  open(_ctx: FuseRequestContext, nodeid: number): FuseOpenReply | FuseErrno {
    const ref = this._ref(nodeid);
    if (typeof ref !== 'number') return ref;
    try {
      const a = this._image.getAttr(ref);
      if (isDirMode(a.mode)) return fuseErrno(kErrno.EISDIR);
      if (!isRegMode(a.mode)) return fuseErrno(kErrno.EACCES);
      const chunks = this._image.chunks(ref);
      const fh = this._nextFh++;
      this._files.set(fh, { ref, size: a.size, chunks });
      const extents = this._extentTable(ref, a.size, chunks);
      return extents ? { fh, keepCache: true, extents } : { fh, keepCache: true };
    } catch (err) {
      return this._fail(`open of node ${nodeid}`, err);
    }
  }

  /** The file's extent table, or null when some chunk is not in a native-readable blob cache. */
  private _extentTable(ref: InodeRef, size: number, chunks: readonly ChunkInfo[]): FuseExtentTable | null {
    const cached = this._extents.get(ref);
    if (cached !== undefined) {
      this._extents.delete(ref);
      this._extents.set(ref, cached);
      return cached;
    }
    let table: FuseExtentTable | null = new FuseExtentTable(size, chunks.length);
    for (const c of chunks) {
      if (!this._opts.nativeBlobs.has(c.blobIndex)) {
        table = null;
        break;
      }
      const length = Math.min(c.uncompressedSize, size - c.fileOffset);
      if (length <= 0) continue;
      table.add({
        fileOffset: c.fileOffset,
        length,
        blobSlot: this._slotOf(c.blobIndex),
        chunkIndex: c.chunkIndex,
        sourceOffset: c.uncompressedOffset,
        sourceSize: length,
      });
    }
    // Compressed and encrypted caches must know where the chunks are before READs arrive.
    if (table) this._storage.learnAhead(chunks);
    this._extents.set(ref, table);
    if (this._extents.size > kExtentCacheSize) {
      const oldest = this._extents.keys().next();
      if (oldest.done !== true) this._extents.delete(oldest.value);
    }
    return table;
  }

  async read(_ctx: FuseRequestContext, _nodeid: number, fh: number, offset: number, size: number): Promise<Buffer | FuseErrno> {
    const f = this._files.get(fh);
    if (!f) return fuseErrno(kErrno.EBADF);
    this.jsReads++;
    if (offset >= f.size || size === 0) return Buffer.alloc(0);
    const len = Math.min(size, f.size - offset, kMaxRead);
    try {
      return await this._storage.read(f.chunks, offset, len);
    } catch (err) {
      return this._fail(`read of node ${_nodeid} at ${offset}+${len}`, err);
    }
  }

  /**
   * The open file a read miss belongs to. Handles the native session made itself (it answers
   * repeated OPENs of an immutable image from its reply cache) were never seen here: those are
   * resolved by node, and kept in a small cache so a cold file's misses share one chunk index.
   */
  private _missFile(fh: number, nodeid: number): OpenFile | FuseErrno {
    const f = this._files.get(fh);
    if (f) return f;
    const ref = this._ref(nodeid);
    if (typeof ref !== 'number') return fuseErrno(kErrno.EBADF);
    const known = this._missFiles.get(ref);
    if (known) return known;
    const a = this._image.getAttr(ref);
    if (!isRegMode(a.mode)) return fuseErrno(kErrno.EBADF);
    const file: OpenFile = { ref, size: a.size, chunks: this._image.chunks(ref) };
    this._missFiles.set(ref, file);
    if (this._missFiles.size > kMissFileCacheSize) {
      const oldest = this._missFiles.keys().next();
      if (oldest.done !== true) this._missFiles.delete(oldest.value);
    }
    return file;
  }

  async readMiss(ctx: FuseRequestContext, miss: FuseReadMiss): Promise<void | FuseErrno> {
    let f: OpenFile | FuseErrno;
    try {
      f = this._missFile(miss.fh, ctx.nodeid);
    } catch (err) {
      return this._fail(`read miss on node ${ctx.nodeid}`, err);
    }
    if (f instanceof FuseErrno) return f;
    this.readMisses++;
    if (!f.byKey) {
      f.byKey = new Map();
      f.sorted = true;
      f.aheadEnd = new Map();
      let prev = -1;
      for (const c of f.chunks) {
        f.byKey.set(missKey(c.blobIndex, c.chunkIndex), c);
        if (c.fileOffset < prev) f.sorted = false;
        prev = c.fileOffset;
        f.aheadEnd.set(c.blobIndex, Math.max(f.aheadEnd.get(c.blobIndex) ?? 0, c.chunkIndex + 1));
      }
    }
    if (coveredChunks(f, miss.offset, miss.offset + miss.size) > miss.chunks.length) this.partialMisses++;
    const wanted: ChunkInfo[] = [];
    for (const m of miss.chunks) {
      const c = f.byKey.get(missKey(this._indexOf(m.blobSlot), m.chunkIndex));
      if (!c) return this._fail(`read miss on node ${ctx.nodeid}`, new Error(`chunk ${m.blobSlot}:${m.chunkIndex} is not in the file`));
      wanted.push(c);
    }
    try {
      const ends = f.aheadEnd;
      await this._storage.ensureReady(wanted, undefined, ends ? (b) => ends.get(b) : undefined);
    } catch (err) {
      return this._fail(`fetching ${wanted.length} chunk(s) of node ${ctx.nodeid} at ${miss.offset}+${miss.size}`, err);
    }
    const notify = this._opts.chunksReady;
    if (notify) {
      const byBlob = new Map<number, number[]>();
      for (const c of wanted) {
        const list = byBlob.get(c.blobIndex);
        if (list) list.push(c.chunkIndex);
        else byBlob.set(c.blobIndex, [c.chunkIndex]);
      }
      for (const [blob, idx] of byBlob) {
        const slot = this._slotOf(blob);
        if (slot >= 0) notify(slot, idx);
      }
    }
  }

  release(_ctx: FuseRequestContext, _nodeid: number, fh: number): void {
    this._files.delete(fh);
  }

  opendir(_ctx: FuseRequestContext, nodeid: number): FuseOpenReply | FuseErrno {
    const ref = this._ref(nodeid);
    if (typeof ref !== 'number') return ref;
    try {
      if (!this._image.isDir(ref)) return fuseErrno(kErrno.ENOTDIR);
    } catch (err) {
      return this._fail(`opendir of node ${nodeid}`, err);
    }
    return { fh: 0, keepCache: true, cacheDir: true };
  }

  readdir(_ctx: FuseRequestContext, nodeid: number, _fh: number, offset: number, size: number): FuseDirEntry[] | FuseErrno {
    const ref = this._ref(nodeid);
    if (typeof ref !== 'number') return ref;
    const out: FuseDirEntry[] = [];
    let room = size;
    try {
      if (!this._image.isDir(ref)) return fuseErrno(kErrno.ENOTDIR);
      const v6 = this._image.super.version === 6;
      this._image.readDir(ref, offset, (e) => {
        const need = fuseDirentSize(e.name.length, false);
        if (need > room) return false;
        room -= need;
        // v6 identity is the nid (the ref); v5 hardlinks share i_ino, which needs the inode.
        const identity = v6 ? e.ref : this._image.getAttr(e.ref).ino;
        out.push({ name: e.name, ino: this._nodes.nodeIdOf(identity, e.ref), type: e.type, offset: e.nextOffset });
        return true;
      });
    } catch (err) {
      return this._fail(`readdir of node ${nodeid} at ${offset}`, err);
    }
    return out;
  }

  readdirplus(_ctx: FuseRequestContext, nodeid: number, _fh: number, offset: number, size: number): FuseDirEntryPlus[] | FuseErrno {
    const ref = this._ref(nodeid);
    if (typeof ref !== 'number') return ref;
    const out: FuseDirEntryPlus[] = [];
    let room = size;
    try {
      if (!this._image.isDir(ref)) return fuseErrno(kErrno.ENOTDIR);
      this._image.readDir(ref, offset, (e) => {
        const need = fuseDirentSize(e.name.length, true);
        if (need > room) return false;
        room -= need;
        out.push({ name: e.name, offset: e.nextOffset, entry: this._entry(e.ref) });
        return true;
      });
    } catch (err) {
      return this._fail(`readdirplus of node ${nodeid} at ${offset}`, err);
    }
    return out;
  }

  releasedir(): void {
    // Directory handles carry no state.
  }

  statfs(): FuseStatfs {
    // As upstream: only the inode count and the name limit are meaningful for an image.
    return { blocks: 0, bfree: 0, bavail: 0, files: this._image.super.inodeCount, ffree: 0, bsize: 512, namelen: 255, frsize: 512 };
  }

  getxattr(_ctx: FuseRequestContext, nodeid: number, name: Buffer): Buffer | FuseErrno {
    if (!this._opts.xattr) return fuseErrno(kErrno.ENOSYS);
    const ref = this._ref(nodeid);
    if (typeof ref !== 'number') return ref;
    try {
      return this._image.getXattr(ref, name) ?? fuseErrno(kErrno.ENODATA);
    } catch (err) {
      return this._fail(`getxattr of node ${nodeid}`, err);
    }
  }

  listxattr(_ctx: FuseRequestContext, nodeid: number): Buffer[] | FuseErrno {
    if (!this._opts.xattr) return fuseErrno(kErrno.ENOSYS);
    const ref = this._ref(nodeid);
    if (typeof ref !== 'number') return ref;
    try {
      return this._image.listXattrs(ref);
    } catch (err) {
      return this._fail(`listxattr of node ${nodeid}`, err);
    }
  }

  /** Only reached without default_permissions; mirrors the kernel's generic_permission. */
  access(ctx: FuseRequestContext, nodeid: number, mask: number): void | FuseErrno {
    const r = this.getattr(ctx, nodeid);
    return 'attr' in r ? readOnlyAccess(ctx, r.attr, mask) : r;
  }

  lseek(_ctx: FuseRequestContext, nodeid: number, fh: number, offset: number, whence: number): number | FuseErrno {
    const f = this._files.get(fh);
    let chunks: readonly ChunkInfo[];
    let size: number;
    if (f) {
      chunks = f.chunks;
      size = f.size;
    } else {
      const ref = this._ref(nodeid);
      if (typeof ref !== 'number') return ref;
      try {
        size = this._image.getAttr(ref).size;
        chunks = this._image.chunks(ref);
      } catch (err) {
        return this._fail(`lseek on node ${nodeid}`, err);
      }
    }
    if (whence !== 3 && whence !== 4) return fuseErrno(kErrno.EINVAL);
    const r = seekDataHole(chunks, size, offset, whence);
    return r === undefined ? fuseErrno(kErrno.ENXIO) : r;
  }
}

export { kRootNodeId };
