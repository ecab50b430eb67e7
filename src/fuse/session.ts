/**
 * FuseSession: serves a `FuseFilesystem` (fuse-types.ts) over one FUSE connection — a /dev/fuse
 * mount on this host, a vhost-user virtio-fs socket for a VM, or an in-memory loopback (tests).
 *
 * The native session (native/core/fuse) decodes requests and answers most of the protocol
 * itself; requests for the handler arrive here in batches through one thread-safe function,
 * are dispatched to the handler, and each result is written into a reusable reply scratch and
 * sent with one native call. Every request is answered exactly once: with the handler's result,
 * with its errno, with EIO when it throws something that is not an errno or returns garbage
 * (logged), or with EIO when the session stops first. Answers that arrive after that are
 * dropped.
 *
 * Lifecycle: `new FuseSession(handler)`, one `mount()` / `attachVirtio()` / `attachLoopback()`,
 * then `stop()`. `closed` resolves when the transport ends (stop, or an external unmount).
 * Process-wide policy (unmounting on signals or at exit) is the embedder's: the daemon stops its
 * session in its own shutdown; src/daemon/stop-on-signal.ts does it for simple embedders.
 */
import { native, nativeAbi } from '../native/index.js';
import type { FuseFopStats, NativeAbi, NativeFuseSession, NativePassthroughRoot, RecordLayout } from '../native/index.js';
import { errnoOf, FuseSessionError, isReplyErrno, kErrno } from './errno.js';
import type { FuseBlob, FuseCloseInfo, FuseLogger, FuseMountOptions, FuseSessionOptions, FuseSessionStats, FuseVirtioOptions } from './session-options.js';
import type { FuseExtentTable } from './extents.js';
import { joinXattrNames, kMaxDirents, ReplyEncoder } from './reply.js';
import { callWritable, isEntryOp, isWritableOp, kWritableMethods, readWritableArgs } from './session-writable.js';
import type { FuseCreateReply, FuseDirEntry, FuseDirEntryPlus, FuseFilesystem, FuseForget, FuseOpenReply, FuseRequestContext } from './types.js';
import { FuseErrno, kFuseOp } from './types.js';

export type { FuseBlob, FuseCloseInfo, FuseLogger, FuseMountOptions, FuseSessionOptions, FuseSessionStats, FuseVirtioOptions } from './session-options.js';

const kEIO = kErrno.EIO;
const kENODEV = kErrno.ENODEV;
const kESTALE = -kErrno.ESTALE;
const kEINVAL = -kErrno.EINVAL;
const kOpNames: Record<number, string> = Object.fromEntries(Object.entries(kFuseOp).map(([k, v]) => [v, k]));

function isThenable(v: unknown): v is PromiseLike<unknown> {
  return typeof v === 'object' && v !== null && typeof (v as { then?: unknown }).then === 'function';
}

function toBytes(v: unknown, what: string): Uint8Array {
  if (typeof v === 'string') return Buffer.from(v);
  if (v instanceof Uint8Array) return v;
  throw new TypeError(`${what} must be a Buffer, Uint8Array or string`);
}

function checkCount(n: unknown, what: string, max: number): number {
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 0 || n > max) {
    throw new FuseSessionError('ERR_INVALID_ARG', `${what} must be an integer in [0, ${String(max)}]`);
  }
  return n;
}

/** Per-request facts a result needs besides the token. */
interface Req {
  token: number;
  op: number;
  ctx: FuseRequestContext;
  size: number;
}

export class FuseSession {
  private readonly _handler: FuseFilesystem;
  private readonly _native: NativeFuseSession;
  private readonly _abi: NativeAbi;
  /** Slots of an upcall record. */
  private readonly _u: RecordLayout<'upcall'>;
  private readonly _records: Float64Array;
  private readonly _upBytes: Buffer;
  private readonly _reply: ReplyEncoder;
  private readonly _defaults: { entryTimeout: number; attrTimeout: number };
  private readonly _log: FuseLogger;
  private readonly _loopback = new Map<number, (reply: Buffer) => void>();
  private _nextId = 1;
  private _batches = 0;
  private _batchRecords = 0;
  private _attached = false;
  private _stopped = false;
  private _closeInfo: FuseCloseInfo | undefined;
  private _resolveClosed!: (info: FuseCloseInfo) => void;
  /** Resolves once when the transport ended: stop(), an external unmount, or a fatal error. */
  readonly closed: Promise<FuseCloseInfo>;

  constructor(handler: FuseFilesystem, options: FuseSessionOptions = {}) {
    if (typeof handler !== 'object' || handler === null) {
      throw new FuseSessionError('ERR_INVALID_ARG', 'the FUSE handler must be an object');
    }
    const timeout = (v: number | undefined, what: string): number => {
      if (v === undefined) return 1;
      if (typeof v !== 'number' || !(v >= 0)) throw new FuseSessionError('ERR_INVALID_ARG', `${what} must be >= 0 seconds`);
      return v;
    };
    this._defaults = { entryTimeout: timeout(options.entryTimeout, 'entryTimeout'), attrTimeout: timeout(options.attrTimeout, 'attrTimeout') };
    this._log = options.logger ?? { error: (m) => console.error(`nydusd fuse: ${m}`), warn: (m) => console.error(`nydusd fuse: ${m}`) };
    this._handler = handler;
    this.closed = new Promise((resolve) => (this._resolveClosed = resolve));
    const abi = nativeAbi();
    this._abi = abi;
    this._u = abi.records.upcall;
    const ops = new Uint8Array(abi.limits.opcodeTableSize);
    const has = (m: keyof FuseFilesystem): boolean => typeof handler[m] === 'function';
    const map: (readonly [keyof FuseFilesystem, number])[] = [
      ['lookup', kFuseOp.LOOKUP], ['forget', kFuseOp.FORGET], ['getattr', kFuseOp.GETATTR],
      ['readlink', kFuseOp.READLINK], ['open', kFuseOp.OPEN], ['read', kFuseOp.READ],
      ['statfs', kFuseOp.STATFS], ['release', kFuseOp.RELEASE], ['fsync', kFuseOp.FSYNC],
      ['getxattr', kFuseOp.GETXATTR], ['listxattr', kFuseOp.LISTXATTR], ['flush', kFuseOp.FLUSH],
      ['opendir', kFuseOp.OPENDIR], ['readdir', kFuseOp.READDIR], ['releasedir', kFuseOp.RELEASEDIR],
      ['fsyncdir', kFuseOp.FSYNCDIR], ['access', kFuseOp.ACCESS], ['readdirplus', kFuseOp.READDIRPLUS],
      ['lseek', kFuseOp.LSEEK], ...kWritableMethods,
    ];
    for (const [m, op] of map) if (has(m)) ops[op] = 1;
    // Upcall arena: 256 records and 2 MiB of names and payloads per batch (the addon's minimum
    // is limits.minUpcallRecords / minUpcallBytes; a WRITE carries up to 1 MiB); reply scratch:
    // a full READDIR(PLUS) reply.
    const upBuf = new ArrayBuffer(2 << 20);
    this._records = new Float64Array(256 * this._u.stride);
    this._upBytes = Buffer.from(upBuf);
    const nums = new Float64Array(kMaxDirents * abi.records.dirent.stride);
    const replyBytes = Buffer.from(new ArrayBuffer(256 * 1024));
    this._reply = new ReplyEncoder(nums, replyBytes, this._defaults, abi);
    this._native = new (native().FuseSession)(
      (kind, a, b) => this._dispatch(kind, a, b),
      ops,
      this._records,
      new Uint8Array(upBuf),
      nums,
      new Uint8Array(replyBytes.buffer, replyBytes.byteOffset, replyBytes.length),
      options.immutable === true ? abi.codes.sessionImmutable : 0,
    );
  }

  get stopped(): boolean {
    return this._stopped;
  }

  /** Mounts on `mountpoint` through /dev/fuse (read-only) and starts serving it. */
  mount(mountpoint: string, options: FuseMountOptions = {}): { viaFusermount: boolean; threads: number } {
    this._beforeAttach();
    if (typeof mountpoint !== 'string' || mountpoint === '') {
      throw new FuseSessionError('ERR_INVALID_ARG', 'mountpoint must be a non-empty path');
    }
    const threads = options.threads ?? 4;
    const method = options.method ?? 'auto';
    if (method !== 'auto' && method !== 'mount' && method !== 'fusermount') {
      throw new FuseSessionError('ERR_INVALID_ARG', `mount method must be auto, mount or fusermount, got ${String(method)}`);
    }
    const maxThreads = this._abi.limits.maxFuseThreads;
    if (!Number.isInteger(threads) || threads < 1 || threads > maxThreads) {
      throw new FuseSessionError('ERR_INVALID_ARG', `threads must be an integer in [1, ${String(maxThreads)}], got ${String(threads)}`);
    }
    const info = this._native.mount({
      mountpoint,
      fsname: options.fsname ?? 'nydus',
      subtype: options.subtype ?? 'nydus',
      allowOther: options.allowOther ?? process.getuid?.() === 0,
      defaultPermissions: options.defaultPermissions ?? true,
      readOnly: options.readOnly ?? true,
      threads,
      allowFusermount: method !== 'mount',
      forceFusermount: method === 'fusermount',
    });
    this._attached = true;
    return info;
  }

  /**
   * Serves a vhost-user virtio-fs device on a Unix socket (QEMU vhost-user-fs-pci,
   * cloud-hypervisor --fs): listens at `socketPath` (a stale socket file is replaced) or on an
   * inherited listening `listenFd`. One frontend at a time; after a disconnect the handler gets
   * `destroy({ reason: 'reset' })` and the socket accepts the next frontend.
   */
  attachVirtio(options: FuseVirtioOptions): { socketPath: string } {
    this._beforeAttach();
    if (options.socketPath === undefined && options.listenFd === undefined) {
      throw new FuseSessionError('ERR_INVALID_ARG', 'attachVirtio needs socketPath or listenFd');
    }
    const queues = options.numRequestQueues ?? 1;
    const qsize = options.maxQueueSize ?? 1024;
    const { maxRequestQueues, maxQueueSize } = this._abi.limits;
    if (!Number.isInteger(queues) || queues < 1 || queues > maxRequestQueues) {
      throw new FuseSessionError('ERR_INVALID_ARG', `numRequestQueues must be 1..${String(maxRequestQueues)}, got ${String(queues)}`);
    }
    if (!Number.isInteger(qsize) || qsize < 1 || qsize > maxQueueSize || (qsize & (qsize - 1)) !== 0) {
      throw new FuseSessionError('ERR_INVALID_ARG', `maxQueueSize must be a power of two up to ${String(maxQueueSize)}, got ${String(qsize)}`);
    }
    const info = this._native.attachVirtio({
      ...(options.socketPath === undefined ? {} : { socketPath: options.socketPath }),
      ...(options.listenFd === undefined ? {} : { listenFd: options.listenFd }),
      numRequestQueues: queues,
      maxQueueSize: qsize,
    });
    this._attached = true;
    return info;
  }

  /** Attaches the in-memory transport: requests come only from `inject()`. */
  attachLoopback(): void {
    this._beforeAttach();
    this._native.attachLoopback();
    this._attached = true;
  }

  /**
   * Sends one raw FUSE request (fuse_in_header + args) through the session, as a transport
   * would, and resolves with the raw reply (empty for requests that get none).
   */
  inject(request: Uint8Array, outCapacity: number): Promise<Buffer> {
    this._requireOpen();
    checkCount(outCapacity, 'outCapacity', this._abi.limits.maxInjectReply);
    const id = this._nextId++;
    return new Promise((resolve) => {
      this._loopback.set(id, resolve);
      this._native.inject(id, request, outCapacity);
    });
  }

  /** Installs (or replaces) the extent table of an open file handle. */
  setExtents(fh: number, table: FuseExtentTable): void {
    this._requireOpen();
    checkCount(fh, 'fh', Number.MAX_SAFE_INTEGER);
    this._native.setExtents(fh, table.values, table.fileSize, table.count);
  }

  removeExtents(fh: number): boolean {
    checkCount(fh, 'fh', Number.MAX_SAFE_INTEGER);
    return this._native.removeExtents(fh);
  }

  /** Makes blob `slot` (0 .. limits.maxBlobSlots - 1) available to extent tables. */
  registerBlob(slot: number, blob: FuseBlob): void {
    this._requireOpen();
    this._checkSlot(slot);
    if (typeof blob.dataPath !== 'string' || blob.dataPath === '') {
      throw new FuseSessionError('ERR_INVALID_ARG', 'blob dataPath must be a path');
    }
    this._native.registerBlob(slot, blob.dataPath, blob.chunkMap);
  }

  unregisterBlob(slot: number): void {
    this._checkSlot(slot);
    this._native.unregisterBlob(slot);
  }

  /**
   * Chunks of blob `slot` are now in the cache (their chunk-map bits set): completes every READ
   * parked on them whose chunks are all present. Returns how many READs were woken.
   */
  chunksReady(slot: number, indices: readonly number[] | Uint32Array): number {
    this._checkSlot(slot);
    const arr = indices instanceof Uint32Array ? indices : Uint32Array.from(indices);
    return this._native.chunksReady(slot, arr);
  }

  /**
   * For a handler that serves several filesystems, each owning a range of node ids: forgets the
   * natively remembered LOOKUP/GETATTR/OPEN answers naming a node in [lo, hi), and drops the
   * extent table of every open handle reading from one of `blobSlots` (its READs then come to
   * the handler). Call when the answers for those nodes change (a mount appeared or went away).
   * Returns how many extent tables were dropped.
   */
  invalidateNodes(lo: number, hi: number, blobSlots: readonly number[] = []): number {
    checkCount(lo, 'lo', Number.MAX_SAFE_INTEGER);
    checkCount(hi, 'hi', Number.MAX_SAFE_INTEGER);
    for (const s of blobSlots) this._checkSlot(s);
    return this._native.invalidateNodes(lo, hi, Uint32Array.from(blobSlots));
  }

  /**
   * Fails with `errno` (0: EIO) every READ still parked on a node in [lo, hi) (after that
   * filesystem's own requests settled, before its blob slots are unregistered). Returns how many.
   */
  failParked(lo: number, hi: number, errno: number): number {
    checkCount(lo, 'lo', Number.MAX_SAFE_INTEGER);
    checkCount(hi, 'hi', Number.MAX_SAFE_INTEGER);
    checkCount(errno, 'errno', this._abi.limits.maxErrno);
    return this._native.failParked(lo, hi, errno);
  }

  /**
   * /dev/fuse mounts: tells the kernel to forget the dentry `name` in directory `parent` (and all
   * below it), so a mount or unmount under a long-cached directory shows at once. Written on a
   * native thread of its own (the kernel may block it behind a LOOKUP that waits for us).
   * Returns false when there is nothing to notify (virtio-fs, loopback, stopped).
   */
  notifyInvalEntry(parent: number, name: Buffer | string): boolean {
    checkCount(parent, 'parent', Number.MAX_SAFE_INTEGER);
    const bytes = toBytes(name, 'name');
    if (bytes.length === 0 || bytes.length > 255) throw new FuseSessionError('ERR_INVALID_ARG', 'name must be 1..255 bytes');
    return this._native.notifyInvalEntry(parent, bytes);
  }

  /** /dev/fuse mounts: tells the kernel to drop the cached attributes and pages of `ino`. */
  notifyInvalInode(ino: number): boolean {
    checkCount(ino, 'ino', Number.MAX_SAFE_INTEGER);
    return this._native.notifyInvalInode(ino, 0, 0);
  }

  /**
   * Metrics slots (several filesystems in one session): a node id counts in slot
   * `nodeid / 2^shift` (shift 0: everything in slot 0), node 1 (the root) in `rootSlot`.
   */
  setFopSlots(shift: number, rootSlot: number): void {
    checkCount(shift, 'shift', 63);
    checkCount(rootSlot, 'rootSlot', this._abi.limits.maxFopSlots - 1);
    this._native.setFopSlots(shift, rootSlot);
  }

  /**
   * Serves the host directory `source` read-write in C++ as node ids [lo, hi) (its root is `lo`),
   * with upstream's fixed passthrough_fs options (writeback, no_open, xattr): every request on
   * those nodes is answered on the transport thread, never here. Its operations count in
   * metrics slot `countSlot`. `wholeConnection`: it is the only filesystem of the connection
   * (mounted at the root), so it may also use zero-message OPEN. Throws a NativeError with the
   * errno when the directory cannot be served or the range is already served natively.
   */
  attachPassthrough(source: string, lo: number, hi: number, countSlot: number, wholeConnection: boolean): void {
    if (this._stopped) throw new FuseSessionError('ERR_FUSE_STOPPED', 'the FUSE session is stopped');
    checkCount(lo, 'lo', Number.MAX_SAFE_INTEGER);
    checkCount(hi, 'hi', Number.MAX_SAFE_INTEGER);
    checkCount(countSlot, 'countSlot', this._abi.limits.maxFopSlots - 1);
    this._native.attachPassthrough(source, lo, hi, countSlot, wholeConnection);
  }

  /**
   * Node ids [lo, hi) are writable and served by the handler (a writable overlay): their
   * mutating requests come here decoded instead of being answered EROFS, and their LOOKUP,
   * GETATTR and OPEN answers are never remembered natively. `on` false ends it (unmount).
   */
  setWritable(lo: number, hi: number, on: boolean): void {
    checkCount(lo, 'lo', Number.MAX_SAFE_INTEGER);
    checkCount(hi, 'hi', Number.MAX_SAFE_INTEGER);
    this._native.setWritable(lo, hi, on);
  }

  /** Stops routing [lo, ...) to its passthrough; requests already inside finish. */
  detachPassthrough(lo: number): boolean {
    checkCount(lo, 'lo', Number.MAX_SAFE_INTEGER);
    return this._native.detachPassthrough(lo);
  }

  /** The attributes of the root of the passthrough attached at `lo` (throws with its errno). */
  passthroughRoot(lo: number): NativePassthroughRoot {
    checkCount(lo, 'lo', Number.MAX_SAFE_INTEGER);
    return this._native.passthroughRoot(lo);
  }

  /**
   * Operation counters of one slot (every request counted where it completed; arrays over
   * operations in kFopKindNames order, src/native/abi.ts).
   */
  fopStats(slot: number): FuseFopStats {
    checkCount(slot, 'slot', this._abi.limits.maxFopSlots - 1);
    return this._native.fopStats(slot);
  }

  /** Native counters (requests, per-op counts, fast-path bytes, misses, ...) plus `jsBatches`
   * and `jsRecords`: how many upcall batches crossed into JavaScript and what they carried. */
  stats(): FuseSessionStats {
    return { ...this._native.stats(), jsBatches: this._batches, jsRecords: this._batchRecords };
  }

  private _checkSlot(slot: number): void {
    checkCount(slot, 'slot', this._abi.limits.maxBlobSlots - 1);
  }

  /**
   * Stops serving: joins the transport's threads, closes /dev/fuse and unmounts (lazily), and
   * fails every request still waiting for the handler with EIO. Idempotent.
   */
  stop(): void {
    if (this._stopped) return;
    this._stopped = true;
    try {
      this._native.stop();
    } finally {
      this._close({ reason: 'stopped', errno: 0 });
    }
  }

  private _beforeAttach(): void {
    this._requireOpen();
    if (this._attached) {
      throw new FuseSessionError('ERR_FUSE_TRANSPORT', 'this FUSE session already has a transport');
    }
  }

  private _requireOpen(): void {
    if (this._stopped) throw new FuseSessionError('ERR_FUSE_STOPPED', 'the FUSE session is stopped');
  }

  private _close(info: FuseCloseInfo): void {
    if (this._closeInfo !== undefined) return;
    this._closeInfo = info;
    this._resolveClosed(info);
  }

  // --- Upcalls ------------------------------------------------------------------------------

  private _dispatch(kind: number, a: number, b?: Buffer): void {
    if (kind === this._abi.codes.dispatchLoopback) {
      const done = this._loopback.get(a);
      this._loopback.delete(a);
      done?.(b ?? Buffer.alloc(0));
      return;
    }
    const r = this._records;
    const u = this._u;
    const firstKind = this._abi.codes.upcallReadMiss;
    this._batches++;
    this._batchRecords += a;
    for (let i = 0; i < a; i++) {
      const o = i * u.stride;
      const op = r[o + u.opcode] as number;
      if (op >= firstKind) {
        this._notification(op, o);
        continue;
      }
      const req: Req = {
        token: r[o + u.token] as number,
        op,
        ctx: this._context(o),
        size: op === kFuseOp.READ || op === kFuseOp.READDIR || op === kFuseOp.READDIRPLUS ? (r[o + u.a2] as number) : 0,
      };
      this._answer(req, () => this._call(req, o));
    }
  }

  /** Who sent the upcall at record offset `o`. */
  private _context(o: number): FuseRequestContext {
    const r = this._records;
    const u = this._u;
    return { nodeid: r[o + u.nodeid] as number, uid: r[o + u.uid] as number, gid: r[o + u.gid] as number, pid: r[o + u.pid] as number };
  }

  /** Runs a handler call and answers `req` with its result, sync or async, or its failure. */
  private _answer(req: Req, call: () => unknown): void {
    let result: unknown;
    try {
      result = call();
    } catch (err) {
      this._fail(req, err);
      return;
    }
    if (isThenable(result)) {
      result.then(
        (v) => this._finish(req, v),
        (err: unknown) => this._fail(req, err),
      );
    } else {
      this._finish(req, result);
    }
  }

  private _name(o: number): Buffer {
    const off = this._records[o + this._u.byteOffset] as number;
    const len = this._records[o + this._u.byteLength] as number;
    return Buffer.from(this._upBytes.subarray(off, off + len));
  }

  /** Calls the handler method for one request; returns its (possibly async) result. */
  private _call(req: Req, o: number): unknown {
    const h = this._handler;
    const r = this._records;
    const u = this._u;
    const { ctx } = req;
    const a0 = r[o + u.a0] as number;
    const a1 = r[o + u.a1] as number;
    const a2 = r[o + u.a2] as number;
    const datasync = (a1 & this._abi.codes.fsyncFdatasync) !== 0;
    switch (req.op) {
      case kFuseOp.LOOKUP: return h.lookup?.(ctx, ctx.nodeid, this._name(o));
      case kFuseOp.GETATTR: return h.getattr?.(ctx, ctx.nodeid, a0 === this._abi.codes.noFh ? undefined : a0);
      case kFuseOp.READLINK: return h.readlink?.(ctx, ctx.nodeid);
      case kFuseOp.OPEN: return h.open?.(ctx, ctx.nodeid, a0);
      case kFuseOp.READ: return h.read?.(ctx, ctx.nodeid, a0, a1, a2);
      case kFuseOp.RELEASE: return h.release?.(ctx, ctx.nodeid, a0, a1);
      case kFuseOp.OPENDIR: return h.opendir?.(ctx, ctx.nodeid, a0);
      case kFuseOp.READDIR: return h.readdir?.(ctx, ctx.nodeid, a0, a1, a2);
      case kFuseOp.READDIRPLUS: return h.readdirplus?.(ctx, ctx.nodeid, a0, a1, a2);
      case kFuseOp.RELEASEDIR: return h.releasedir?.(ctx, ctx.nodeid, a0, a1);
      case kFuseOp.STATFS: return h.statfs?.(ctx, ctx.nodeid);
      case kFuseOp.GETXATTR: return h.getxattr?.(ctx, ctx.nodeid, this._name(o));
      case kFuseOp.LISTXATTR: return h.listxattr?.(ctx, ctx.nodeid);
      case kFuseOp.ACCESS: return h.access?.(ctx, ctx.nodeid, a0);
      case kFuseOp.FLUSH: return h.flush?.(ctx, ctx.nodeid, a0);
      case kFuseOp.FSYNC: return h.fsync?.(ctx, ctx.nodeid, a0, datasync);
      case kFuseOp.FSYNCDIR: return h.fsyncdir?.(ctx, ctx.nodeid, a0, datasync);
      case kFuseOp.LSEEK: return h.lseek?.(ctx, ctx.nodeid, a0, a1, a2);
      default:
        if (isWritableOp(req.op)) {
          const args = readWritableArgs(this._upBytes, r[o + u.byteOffset] as number, [a0, a1, a2, r[o + u.a3] as number]);
          return callWritable(h, ctx, req.op, args);
        }
        throw new FuseSessionError('ERR_FUSE_INTERNAL', `no dispatch for opcode ${String(req.op)}`);
    }
  }

  /** Sends the handler's result for one request. */
  private _finish(req: Req, v: unknown): void {
    const { token, op } = req;
    if (v instanceof FuseErrno) {
      this._answerErrno(req, v.errno, true, v);
      return;
    }
    let rc: number;
    try {
      rc = this._encode(req, v);
    } catch (err) {
      this._log.error(`invalid ${this._opName(op)} reply from the filesystem handler: ${(err as Error).message}`);
      if (op === this._abi.codes.upcallReadMiss) this._native.resolveMiss(token, kEIO);
      else this._native.replyError(token, kEIO);
      return;
    }
    if (rc === kEINVAL) this._log.error(`invalid ${this._opName(op)} reply from the filesystem handler (answered EIO)`);
  }

  private _encode(req: Req, v: unknown): number {
    const n = this._native;
    const { token } = req;
    if (isEntryOp(req.op)) {
      this._reply.entry(0, v as Parameters<ReplyEncoder['entry']>[1]);
      return n.replyEntry(token);
    }
    switch (req.op) {
      case kFuseOp.CREATE: {
        const c = v as FuseCreateReply;
        this._reply.entry(0, c.entry);
        return n.replyCreate(token, c.open.fh, this._reply.openFlags(c.open));
      }
      case kFuseOp.WRITE:
        return n.replyWrite(token, v as number);
      case kFuseOp.SETATTR:
      case kFuseOp.GETATTR: {
        const a = v as { attr: Parameters<ReplyEncoder['attr']>[1]; attrTimeout?: number };
        this._reply.attrReply(a.attr, a.attrTimeout ?? this._defaults.attrTimeout);
        return n.replyAttr(token);
      }
      case kFuseOp.READLINK:
        return n.replyData(token, toBytes(v, 'readlink result'));
      case kFuseOp.READ:
        return n.replyData(token, toBytes(v, 'read result'));
      case kFuseOp.OPEN:
      case kFuseOp.OPENDIR: {
        const o = v as FuseOpenReply;
        const ext = o.extents;
        return n.replyOpen(token, o.fh, this._reply.openFlags(o), ext?.values ?? null, ext?.fileSize ?? 0, ext?.count ?? 0);
      }
      case kFuseOp.READDIR:
      case kFuseOp.READDIRPLUS: {
        const entries = v as (FuseDirEntry | FuseDirEntryPlus)[];
        if (!Array.isArray(entries)) throw new TypeError('readdir result must be an array');
        const plus = req.op === kFuseOp.READDIRPLUS;
        const enc = this._reply.dirents(entries, plus, req.size);
        const sent = n.replyReaddir(token, enc.count, enc.namesLength);
        if (plus && sent >= 0 && sent < entries.length && this._handler.readdirplusUnsent !== undefined) {
          this._notify('readdirplusUnsent', () =>
            this._handler.readdirplusUnsent?.(req.ctx, req.ctx.nodeid, (entries as FuseDirEntryPlus[]).slice(sent)),
          );
        }
        return sent < 0 ? sent : 0;
      }
      case kFuseOp.STATFS:
        this._reply.statfs(v as Parameters<ReplyEncoder['statfs']>[0]);
        return n.replyStatfs(token);
      case kFuseOp.GETXATTR:
        return n.replyXattr(token, toBytes(v, 'getxattr result'));
      case kFuseOp.LISTXATTR:
        if (!Array.isArray(v)) throw new TypeError('listxattr result must be an array of names');
        return n.replyXattr(token, joinXattrNames(v as (Buffer | string)[]));
      case kFuseOp.LSEEK:
        return n.replyLseek(token, v as number);
      default:
        if (req.op === this._abi.codes.upcallReadMiss) return n.resolveMiss(token, 0);
        // RELEASE, RELEASEDIR, FLUSH, FSYNC, FSYNCDIR, ACCESS: success carries no payload.
        if (v !== undefined && v !== null) throw new TypeError('this operation returns nothing');
        return n.replyOk(token);
    }
  }

  private _fail(req: Req, err: unknown): void {
    const { errno, expected } = errnoOf(err);
    if (!expected) {
      this._log.error(`${this._opName(req.op)} handler failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    }
    this._answerErrno(req, errno, expected, err);
  }

  private _answerErrno(req: Req, errno: number, expected: boolean, _err: unknown): void {
    const valid = isReplyErrno(errno);
    if (!valid && expected) this._log.error(`${this._opName(req.op)} handler answered an invalid errno ${String(errno)}`);
    const e = valid ? errno : kEIO;
    const rc = req.op === this._abi.codes.upcallReadMiss ? this._native.resolveMiss(req.token, e) : this._native.replyError(req.token, e);
    if (rc !== 0 && rc !== kESTALE) this._log.error(`answering ${this._opName(req.op)} failed (${String(rc)})`);
  }

  private _opName(op: number): string {
    return op === this._abi.codes.upcallReadMiss ? 'read miss' : (kOpNames[op] ?? `opcode ${String(op)}`);
  }

  private _notify(what: string, fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this._log.error(`${what} handler threw: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    }
  }

  private _notification(op: number, o: number): void {
    const r = this._records;
    const u = this._u;
    const c = this._abi.codes;
    const h = this._handler;
    const a0 = r[o + u.a0] as number;
    switch (op) {
      case c.upcallReadMiss: {
        const req: Req = { token: r[o + u.token] as number, op, ctx: this._context(o), size: r[o + u.a2] as number };
        const off = r[o + u.byteOffset] as number;
        const chunks: { blobSlot: number; chunkIndex: number }[] = [];
        for (let k = 0; k < (r[o + u.a3] as number); k++) {
          chunks.push({ blobSlot: this._upBytes.readUInt32LE(off + k * 8), chunkIndex: this._upBytes.readUInt32LE(off + k * 8 + 4) });
        }
        if (h.readMiss === undefined) {
          this._log.error('a READ missed the cache but the filesystem handler has no readMiss(); answering EIO');
          this._native.resolveMiss(req.token, kEIO);
          return;
        }
        const miss = { fh: a0, offset: r[o + u.a1] as number, size: r[o + u.a2] as number, chunks };
        this._answer(req, () => h.readMiss?.(req.ctx, miss));
        return;
      }
      case c.upcallForget: {
        const pairs = new Float64Array(this._upBytes.buffer, this._upBytes.byteOffset + (r[o + u.byteOffset] as number), a0 * 2);
        const items: FuseForget[] = new Array<FuseForget>(a0);
        for (let k = 0; k < a0; k++) items[k] = { nodeid: pairs[2 * k] as number, nlookup: pairs[2 * k + 1] as number };
        this._notify('forget', () => h.forget?.(items));
        return;
      }
      case c.upcallInit:
        this._notify('init', () =>
          h.init?.({
            minor: a0,
            kernelMinor: r[o + u.a1] as number,
            reinit: r[o + u.a2] === 1,
            transport: r[o + u.a3] === c.transportFuseDev ? 'fusedev' : 'virtio',
          }),
        );
        return;
      case c.upcallDestroy:
        this._notify('destroy', () => h.destroy?.({ reason: a0 === c.destroyRequest ? 'destroy' : 'reset' }));
        return;
      case c.upcallClosed: {
        // The kernel ended the connection (external unmount, abort): clean up our side too.
        this._close({ reason: a0 === kENODEV ? 'unmounted' : 'error', errno: a0 });
        this.stop();
        return;
      }
      default:
        this._log.warn(`unknown FUSE notification ${String(op)}`);
    }
  }
}
