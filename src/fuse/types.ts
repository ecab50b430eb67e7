/**
 * The FUSE filesystem handler interface: what the daemon's fs layer implements so a
 * `FuseSession` (session.ts) can serve it over /dev/fuse or virtio-fs.
 *
 * The native session decodes every FUSE request, answers what needs no filesystem knowledge
 * itself (INIT, DESTROY, FORGET bookkeeping, INTERRUPT, every mutating op with EROFS, locks and
 * DAX with ENOSYS, and READ on handles with an extent table: the cache-hit fast path), and hands
 * the rest to these methods in batches. Each method receives a small request context plus
 * positional arguments and returns its result, a `FuseErrno`, or a Promise of either. Throwing
 * (or rejecting) works too: a `FuseErrno` or an Error with an `errno`/`code` maps to that errno;
 * anything else becomes EIO and is logged as an internal error.
 *
 * A method that is not implemented gets the native default: ENOSYS (which the kernel remembers:
 * missing FLUSH/FSYNC/ACCESS then succeed locally, missing xattr ops become EOPNOTSUPP), success
 * for RELEASE/RELEASEDIR, and no forget notifications. Readdirplus is negotiated only when
 * `readdirplus` exists.
 *
 * Numbers: every id, size and offset is a JS number and must stay below 2^53 (node ids,
 * handles and directory cookies are chosen by the handler; the kernel echoes them back).
 * Names and xattr values are raw bytes (`Buffer`); replies accept `string` too (encoded UTF-8).
 *
 * Neighbours: session.ts (the session class), extents.ts (READ fast path tables), errno.ts
 * (errno mapping). The daemon's src/fs implements this interface.
 */
import { NydusError } from '../util/errors.js';
import type { FuseExtentTable } from './extents.js';

/** Who asked. `nodeid` is the inode the request is about (the parent directory for lookup). */
export interface FuseRequestContext {
  readonly nodeid: number;
  readonly uid: number;
  readonly gid: number;
  readonly pid: number;
}

/**
 * A positive errno to answer with (ENOENT = 2, ...), returned or thrown by a handler. Prefer the
 * shared instances from `fuseErrno()`: they are created (and their stack captured) once.
 */
export class FuseErrno extends NydusError {
  declare readonly errno: number;
  constructor(errno: number) {
    super('ERR_FUSE_ERRNO', `FUSE handler answered errno ${String(errno)}`, { errno });
    this.name = 'FuseErrno';
  }
}

/** Inode attributes (struct fuse_attr). Times are seconds since the epoch plus nanoseconds. */
export interface FuseAttr {
  ino: number;
  /** Type and permission bits (S_IFREG | 0o644 ...). The type must be a real file type. */
  mode: number;
  nlink: number;
  uid: number;
  gid: number;
  size: number;
  /** 512-byte blocks; default ceil(size / 512). */
  blocks?: number;
  /** Preferred I/O size; default 4096. */
  blksize?: number;
  /** Device number for character/block devices; default 0. */
  rdev?: number;
  atime: number;
  atimeNsec?: number;
  mtime: number;
  mtimeNsec?: number;
  ctime: number;
  ctimeNsec?: number;
  /** FUSE_ATTR_* flags (SUBMOUNT = 1); default 0. */
  flags?: number;
}

/**
 * A directory entry for LOOKUP (and each READDIRPLUS record). Returning `nodeid` != 0 adds one
 * to that node's lookup count (the kernel later sends `forget` with the sum). `nodeid: 0` with
 * `entryTimeout > 0` is a negative entry: the kernel caches "does not exist" for that long.
 */
export interface FuseEntry {
  nodeid: number;
  /** nodeid:generation must be unique for the filesystem's lifetime; root (1) uses 0. */
  generation?: number;
  /** Not needed for negative entries. */
  attr?: FuseAttr;
  /** Seconds the name may be cached; default: the session's `entryTimeout`. */
  entryTimeout?: number;
  /** Seconds the attributes may be cached; default: the session's `attrTimeout`. */
  attrTimeout?: number;
}

export interface FuseAttrReply {
  attr: FuseAttr;
  attrTimeout?: number;
}

/** FOPEN_* flags of an OPEN/OPENDIR reply (linux/fuse.h; the ABI test checks them). */
export const kFopen = {
  DIRECT_IO: 1,
  KEEP_CACHE: 2,
  NONSEEKABLE: 4,
  CACHE_DIR: 8,
  STREAM: 16,
  NOFLUSH: 32,
} as const;

export interface FuseOpenReply {
  /** The file handle the kernel passes back on READ/RELEASE; < 2^53. */
  fh: number;
  /** Keep the page cache across opens (immutable data: yes). */
  keepCache?: boolean;
  /** Cache directory contents (OPENDIR). */
  cacheDir?: boolean;
  directIo?: boolean;
  nonSeekable?: boolean;
  /** Skip FLUSH on close. */
  noFlush?: boolean;
  /** Raw FOPEN_* bits, ORed with the booleans above. */
  openFlags?: number;
  /**
   * OPEN only: serve READs of this handle natively from these extents (extents.ts). The
   * table is installed before the reply reaches the kernel and dropped at RELEASE.
   */
  extents?: FuseExtentTable;
}

export interface FuseStatfs {
  blocks: number;
  bfree: number;
  bavail: number;
  files: number;
  ffree: number;
  bsize: number;
  namelen: number;
  frsize: number;
}

/** A READDIR record. `offset` is the cookie of the position after this entry (>= 1). */
export interface FuseDirEntry {
  name: Buffer | string;
  ino: number;
  /** The file's mode (only the type bits matter), or give `type` (DT_*) directly. */
  mode?: number;
  type?: number;
  offset: number;
}

/** A READDIRPLUS record: the dirent plus a full entry (counted as a lookup unless nodeid 0). */
export interface FuseDirEntryPlus {
  name: Buffer | string;
  offset: number;
  entry: FuseEntry;
}

/** A READ on a handle with an extent table found chunks missing from the cache. */
export interface FuseReadMiss {
  fh: number;
  offset: number;
  size: number;
  /** Each missing chunk once, in file order. */
  chunks: ReadonlyArray<{ readonly blobSlot: number; readonly chunkIndex: number }>;
}

export interface FuseForget {
  readonly nodeid: number;
  readonly nlookup: number;
}

export interface FuseInitInfo {
  /** Negotiated protocol minor (7.x). */
  minor: number;
  kernelMinor: number;
  /** INIT arrived on a live session (guest reboot): forget every node and handle first. */
  reinit: boolean;
  transport: 'virtio' | 'fusedev';
}

export type FuseResult<T> = T | FuseErrno | Promise<T | FuseErrno>;

/**
 * The filesystem. Every method is optional (see the file comment for the defaults). Methods
 * may be called concurrently for different requests (several can be in flight); the session
 * never calls one twice for the same request, and answers each request exactly once with what
 * the method returned.
 */
export interface FuseFilesystem {
  /** The kernel connected (INIT). Notification; the reply was sent natively. */
  init?(info: FuseInitInfo): void;
  /**
   * The connection ended: `destroy` = the kernel unmounted (DESTROY), `reset` = the transport
   * went away (vhost-user disconnect). Forget every node and handle.
   */
  destroy?(info: { reason: 'destroy' | 'reset' }): void;
  /**
   * LOOKUP `name` in directory `parent`.
   * Replies: FuseEntry (nodeid != 0 counts one lookup; nodeid 0 + entryTimeout = negative
   * entry). Errors: ENOENT (not cached), ENOTDIR, EACCES, ENAMETOOLONG.
   */
  lookup?(ctx: FuseRequestContext, parent: number, name: Buffer): FuseResult<FuseEntry>;
  /**
   * Lookup counts dropped (FORGET and BATCH_FORGET, batched). Notification: no reply. May name
   * unknown nodes or overtake a LOOKUP that re-references the node; never drop root (1).
   */
  forget?(items: readonly FuseForget[]): void;
  /**
   * GETATTR. `fh` is set when the kernel asks about an open handle.
   * Replies: FuseAttrReply. Errors: ENOENT/ESTALE for unknown nodes.
   */
  getattr?(ctx: FuseRequestContext, nodeid: number, fh: number | undefined): FuseResult<FuseAttrReply>;
  /**
   * READLINK. Replies: the target (no NUL; at most 4095 bytes on virtio, else ENAMETOOLONG is
   * sent). Errors: EINVAL (not a symlink), ENOENT.
   */
  readlink?(ctx: FuseRequestContext, nodeid: number): FuseResult<Buffer | string>;
  /**
   * OPEN (on read-only nodes write intents never arrive: they are answered EROFS natively).
   * Replies: FuseOpenReply (KEEP_CACHE recommended; `extents` enables the native READ path).
   * Errors: ENOENT, EISDIR, EACCES, EMFILE.
   */
  open?(ctx: FuseRequestContext, nodeid: number, flags: number): FuseResult<FuseOpenReply>;
  /**
   * READ on a handle without an extent table. Replies: at most `size` bytes; fewer means EOF.
   * Errors: EBADF, EIO.
   */
  read?(ctx: FuseRequestContext, nodeid: number, fh: number, offset: number, size: number): FuseResult<Buffer | Uint8Array>;
  /**
   * A native READ found chunks missing. Fetch them into the cache, set their chunk-map bits,
   * then resolve (the READ is retried natively and completes; still-missing chunks fail it with
   * EIO). `FuseErrno` (or a throw) fails the READ with that errno. Call
   * `session.chunksReady()` after a fill to complete every other READ waiting on the same
   * chunks at once. Without this method every miss fails with EIO.
   */
  readMiss?(ctx: FuseRequestContext, miss: FuseReadMiss): void | FuseErrno | Promise<void | FuseErrno>;
  /** RELEASE (the extent table, if any, is already dropped). Replies: nothing. */
  release?(ctx: FuseRequestContext, nodeid: number, fh: number, flags: number): FuseResult<void>;
  /** OPENDIR. Replies: FuseOpenReply (CACHE_DIR + KEEP_CACHE for immutable trees). Errors: ENOTDIR. */
  opendir?(ctx: FuseRequestContext, nodeid: number, flags: number): FuseResult<FuseOpenReply>;
  /**
   * READDIR from cookie `offset` (0 = start), `size` bytes of reply space (use
   * `fuseDirentSize` to fill it). Replies: entries; an empty array = end of directory. Entries
   * that do not fit are not sent.
   */
  readdir?(ctx: FuseRequestContext, nodeid: number, fh: number, offset: number, size: number): FuseResult<FuseDirEntry[]>;
  /**
   * READDIRPLUS: as readdir, but each record carries an entry that counts as a lookup (except
   * nodeid 0 and the names "." and ".."). Records that do not fit are not sent and do not
   * count: they are reported to `readdirplusUnsent`.
   */
  readdirplus?(ctx: FuseRequestContext, nodeid: number, fh: number, offset: number, size: number): FuseResult<FuseDirEntryPlus[]>;
  /** The tail of a readdirplus reply that did not fit (so lookup counts can be undone). */
  readdirplusUnsent?(ctx: FuseRequestContext, nodeid: number, unsent: readonly FuseDirEntryPlus[]): void;
  /** RELEASEDIR. Replies: nothing. */
  releasedir?(ctx: FuseRequestContext, nodeid: number, fh: number, flags: number): FuseResult<void>;
  /** STATFS. Replies: FuseStatfs. */
  statfs?(ctx: FuseRequestContext, nodeid: number): FuseResult<FuseStatfs>;
  /**
   * GETXATTR. Replies: the whole value; the session answers size probes and ERANGE itself.
   * Errors: ENODATA (no such attribute), ENOTSUP/ENOSYS (xattrs off).
   */
  getxattr?(ctx: FuseRequestContext, nodeid: number, name: Buffer): FuseResult<Buffer | string>;
  /** LISTXATTR. Replies: the names (the session NUL-joins them and handles size probing). */
  listxattr?(ctx: FuseRequestContext, nodeid: number): FuseResult<ReadonlyArray<Buffer | string>>;
  /** ACCESS (only without default_permissions). Replies: nothing. Errors: EACCES. */
  access?(ctx: FuseRequestContext, nodeid: number, mask: number): FuseResult<void>;
  /** FLUSH (every close of a file). Replies: nothing. Leave it out to let the kernel skip it. */
  flush?(ctx: FuseRequestContext, nodeid: number, fh: number): FuseResult<void>;
  fsync?(ctx: FuseRequestContext, nodeid: number, fh: number, datasync: boolean): FuseResult<void>;
  fsyncdir?(ctx: FuseRequestContext, nodeid: number, fh: number, datasync: boolean): FuseResult<void>;
  /**
   * LSEEK with SEEK_DATA (3) or SEEK_HOLE (4). Replies: the resulting offset.
   * Errors: ENXIO (offset at or past EOF / no more data).
   */
  lseek?(ctx: FuseRequestContext, nodeid: number, fh: number, offset: number, whence: number): FuseResult<number>;

  // --- Mutating requests. They reach the handler only for nodes the session was told are
  // writable (FuseSession.setWritable); everywhere else the session answers EROFS natively.
  // Names are raw bytes, checked by the session: NUL-free, non-empty, at most 1024 bytes (the
  // filesystem answers ENAMETOOLONG past its own limit).

  /** SETATTR: change what `set` names. Replies: the new attributes. */
  setattr?(ctx: FuseRequestContext, nodeid: number, set: FuseSetattr): FuseResult<FuseAttrReply>;
  /** MKNOD (regular files, devices, FIFOs, sockets). `mode` has the type bits; apply `umask`. */
  mknod?(ctx: FuseRequestContext, parent: number, name: Buffer, mode: number, rdev: number, umask: number): FuseResult<FuseEntry>;
  mkdir?(ctx: FuseRequestContext, parent: number, name: Buffer, mode: number, umask: number): FuseResult<FuseEntry>;
  symlink?(ctx: FuseRequestContext, parent: number, name: Buffer, target: Buffer): FuseResult<FuseEntry>;
  unlink?(ctx: FuseRequestContext, parent: number, name: Buffer): FuseResult<void>;
  rmdir?(ctx: FuseRequestContext, parent: number, name: Buffer): FuseResult<void>;
  /** RENAME (flags 0) and RENAME2 (RENAME_NOREPLACE 1, RENAME_EXCHANGE 2, RENAME_WHITEOUT 4). */
  rename?(ctx: FuseRequestContext, parent: number, name: Buffer, newParent: number, newName: Buffer, flags: number): FuseResult<void>;
  /** LINK: a new name for `nodeid`. Replies: its entry (one more lookup). */
  link?(ctx: FuseRequestContext, nodeid: number, newParent: number, newName: Buffer): FuseResult<FuseEntry>;
  /** CREATE (open with O_CREAT). Replies: the entry and the open handle. */
  create?(ctx: FuseRequestContext, parent: number, name: Buffer, flags: number, mode: number, umask: number): FuseResult<FuseCreateReply>;
  /** WRITE on a handle from open/create. Replies: the bytes written. */
  write?(ctx: FuseRequestContext, nodeid: number, fh: number, offset: number, data: Buffer, flags: number): FuseResult<number>;
  /** SETXATTR (flags: XATTR_CREATE 1, XATTR_REPLACE 2). */
  setxattr?(ctx: FuseRequestContext, nodeid: number, name: Buffer, value: Buffer, flags: number): FuseResult<void>;
  removexattr?(ctx: FuseRequestContext, nodeid: number, name: Buffer): FuseResult<void>;
  fallocate?(ctx: FuseRequestContext, nodeid: number, fh: number, offset: number, length: number, mode: number): FuseResult<void>;
}

/** What a SETATTR changes: only the fields present. Times are seconds + nanoseconds, or 'now'. */
export interface FuseSetattr {
  mode?: number;
  uid?: number;
  gid?: number;
  size?: number;
  /** The handle the change was made through (ftruncate, fchmod), when the kernel said. */
  fh?: number;
  atime?: FuseTime | 'now';
  mtime?: FuseTime | 'now';
}

export interface FuseTime {
  sec: number;
  nsec: number;
}

export interface FuseCreateReply {
  entry: FuseEntry;
  open: FuseOpenReply;
}

/** FUSE opcodes the handler sees (linux/fuse.h; the ABI test checks them). */
export const kFuseOp = {
  LOOKUP: 1,
  FORGET: 2,
  GETATTR: 3,
  SETATTR: 4,
  READLINK: 5,
  SYMLINK: 6,
  MKNOD: 8,
  MKDIR: 9,
  UNLINK: 10,
  RMDIR: 11,
  RENAME: 12,
  LINK: 13,
  OPEN: 14,
  READ: 15,
  WRITE: 16,
  STATFS: 17,
  RELEASE: 18,
  FSYNC: 20,
  SETXATTR: 21,
  GETXATTR: 22,
  LISTXATTR: 23,
  REMOVEXATTR: 24,
  FLUSH: 25,
  INIT: 26,
  OPENDIR: 27,
  READDIR: 28,
  RELEASEDIR: 29,
  FSYNCDIR: 30,
  ACCESS: 34,
  CREATE: 35,
  DESTROY: 38,
  FALLOCATE: 43,
  READDIRPLUS: 44,
  RENAME2: 45,
  LSEEK: 46,
} as const;
