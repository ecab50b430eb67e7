/**
 * Typed surface of the native addon: what `build/<config>/nydus_native.node` exports. Only
 * `binding.ts` loads the file; this describes it. Keep in sync with native/binding/*.cc; the
 * numbers shared with the core are in abi.ts.
 */
import type { FopArrayName, FopCounterName, RawAbiInfo, StatName } from './abi.js';

/** RAFS on-disk compression enum (blob table `compression_algo`). */
export const enum CompressAlgo {
  None = 0,
  Lz4Block = 1,
  Gzip = 2,
  Zstd = 3,
}

export interface NativeChunkMap {
  readonly chunkCount: number;
  isReady(index: number): boolean;
  rangeReady(first: number, count: number): boolean;
  /** Sets the bit; true when this call flipped it. Throws RangeError out of range. */
  setReady(index: number): boolean;
  readyCount(): number;
  allReady(): boolean;
  close(): void;
  /** No other process had the map open: this one may repair it (then share()). */
  readonly exclusive: boolean;
  /** What was wrong with a damaged map that was rebuilt empty ('' when nothing). */
  readonly repaired: string;
  /** Downgrades the exclusive flock to shared once repairs are done. */
  share(): void;
  /** Clears a bit (exclusive openers only); true when it was set. */
  clearReady(index: number): boolean;
  readyIndexes(): Uint32Array;
  /** fd of the in-memory file for chunks the cache file could not take (created on first call). */
  spillFd(): number;
  spillReady(index: number): boolean;
  setSpillReady(index: number): boolean;
  evictSpill(index: number, offset: number, size: number): void;
}

/** RAFS on-disk digester enum (superblock `digester`). */
export const enum DigestAlgo {
  Blake3 = 0,
  Sha256 = 1,
}

/** An incremental digest; digest() does not end it (more input may follow). */
export interface NativeDigestHasher {
  update(data: Buffer): NativeDigestHasher;
  digest(): Buffer;
}

/** RLIMIT_NOFILE; RLIM_INFINITY is reported as Infinity. */
export interface NofileLimit {
  soft: number;
  hard: number;
}

/** A session's statistics as the addon reports them (names: NYDUS_ABI_* lists, abi.ts). */
export type NativeSessionStats = Readonly<Record<StatName<'session'>, number>> & {
  readonly initialized: boolean;
  /** Requests per opcode name (only opcodes seen). */
  readonly ops: Readonly<Record<string, number>>;
  readonly transport?: NativeTransportStats;
};

export type NativeTransportStats =
  | (Readonly<Record<StatName<'fusedev'>, number>> & { readonly kind: 'fusedev'; readonly closed: boolean })
  | (Readonly<Record<StatName<'virtio'>, number>> & { readonly kind: 'virtio'; readonly connected: boolean });

/** Options of NativeFuseSession.mount (validated by FuseSession.mount first). */
export interface NativeMountOptions {
  mountpoint: string;
  fsname: string;
  subtype: string;
  allowOther: boolean;
  defaultPermissions: boolean;
  readOnly: boolean;
  threads: number;
  allowFusermount: boolean;
  forceFusermount: boolean;
}

/**
 * The native FUSE session handle (native/binding/fuse_session_binding.cc). Used only by
 * src/fuse/session.ts. Reply methods return 0 (answered), -ESTALE (token not live, ignored) or
 * -EINVAL (invalid answer, the request got EIO and the problem was logged).
 */
export interface NativeFuseSession {
  replyError(token: number, errno: number): number;
  replyOk(token: number): number;
  replyEntry(token: number): number;
  replyAttr(token: number): number;
  replyOpen(token: number, fh: number, openFlags: number, extents: Float64Array | null, fileSize: number, count: number): number;
  replyStatfs(token: number): number;
  replyData(token: number, data: Uint8Array): number;
  replyXattr(token: number, data: Uint8Array): number;
  replyReaddir(token: number, count: number, namesLength: number): number;
  replyLseek(token: number, offset: number): number;
  replyCreate(token: number, fh: number, openFlags: number): number;
  replyWrite(token: number, size: number): number;
  setWritable(lo: number, hi: number, on: boolean): void;
  resolveMiss(token: number, errno: number): number;
  setExtents(fh: number, extents: Float64Array, fileSize: number, count: number): void;
  removeExtents(fh: number): boolean;
  registerBlob(slot: number, dataPath: string, chunkMap: NativeChunkMap | null): void;
  unregisterBlob(slot: number): void;
  chunksReady(slot: number, indices: Uint32Array): number;
  invalidateNodes(lo: number, hi: number, blobSlots: Uint32Array): number;
  failParked(lo: number, hi: number, errno: number): number;
  notifyInvalEntry(parent: number, name: Uint8Array): boolean;
  notifyInvalInode(ino: number, offset: number, length: number): boolean;
  setFopSlots(shift: number, rootSlot: number): void;
  fopStats(slot: number): FuseFopStats;
  attachPassthrough(source: string, lo: number, hi: number, countSlot: number, wholeConnection: boolean): void;
  detachPassthrough(lo: number): boolean;
  passthroughRoot(lo: number): NativePassthroughRoot;
  mount(options: NativeMountOptions): { viaFusermount: boolean; threads: number };
  attachVirtio(options: { socketPath?: string; listenFd?: number; numRequestQueues: number; maxQueueSize: number }): { socketPath: string };
  attachLoopback(): void;
  inject(id: number, request: Uint8Array, outCapacity: number): void;
  stats(): NativeSessionStats;
  stop(): void;
}

/** passthroughRoot(): the root's attributes (FuseAttr fields) and their timeout in seconds. */
export interface NativePassthroughRoot {
  ino: number;
  mode: number;
  nlink: number;
  uid: number;
  gid: number;
  size: number;
  blocks: number;
  blksize: number;
  rdev: number;
  atime: number;
  atimeNsec: number;
  mtime: number;
  mtimeNsec: number;
  ctime: number;
  ctimeNsec: number;
  attrTimeout: number;
}

export type NativeFuseDispatch = (kind: number, a: number, b?: Buffer) => void;

export interface NativeAddon {
  initialize(classes: { NativeError: new (message: string, code: string) => Error }): void;
  abiInfo(): RawAbiInfo;

  setLogHandler(handler: ((level: number, module: string, message: string) => void) | null): void;
  setLogLevel(level: number): void;
  nativeLog(level: number, module: string, message: string): void;
  /** Tests only: `threads` native threads each log `count` info records "<thread> <seq>" (joined before it returns). */
  nativeLogBurst(threads: number, count: number, module: string): void;

  compress(algo: number, src: Buffer, level?: number): Buffer;
  decompress(algo: number, src: Buffer, uncompressedSize: number): Buffer;
  decompressInto(algo: number, src: Buffer, dst: Buffer): void;
  fill(
    algo: number,
    digester: DigestAlgo,
    validate: boolean,
    src: Buffer | null,
    plan: Float64Array,
    digests: Buffer,
    fd: number,
    map: NativeChunkMap,
    allowSpill: boolean,
    srcFd?: number,
    srcPos?: number,
    srcLen?: number,
    speculative?: boolean,
  ): Promise<Int32Array>;
  /**
   * Tests only: a native thread hands 0..count-1 to `onItem` on this thread through the path fill
   * results take (native/binding/loop_wake.h); the loop stays alive until the last one.
   */
  loopWakeProbe(count: number, onItem: (seq: number) => void): void;
  /** BLAKE3 (reference C implementation, SIMD) or SHA-256 (OpenSSL) of `data`: 32 bytes. */
  digest(digester: DigestAlgo, data: Buffer): Buffer;
  DigestHasher: new (digester: DigestAlgo) => NativeDigestHasher;

  ChunkMap: new (path: string, chunkCount: number, repair?: boolean) => NativeChunkMap;
  dataExtents(fd: number): Float64Array;
  /** Compressed and encrypted cache files (native/binding/layout_binding.cc). */
  attachCacheLayout(map: NativeChunkMap, kind: number, algo: number, digester: number, verify: boolean, convergent: boolean, key: Buffer | null, dataSize: number): void;
  learnChunks(map: NativeChunkMap, records: Float64Array, digests: Buffer): void;
  layoutRead(map: NativeChunkMap, fd: number, index: number, out: Buffer): number;

  FuseSession: new (
    dispatch: NativeFuseDispatch,
    handlerOps: Uint8Array,
    upcallRecords: Float64Array,
    upcallBytes: Uint8Array,
    replyNumbers: Float64Array,
    replyBytes: Uint8Array,
    /** Session flags (codes.sessionImmutable: the handler is immutable). */
    flags?: number,
  ) => NativeFuseSession;

  /** All extended attributes of a path, without following symlinks (names and values as bytes). */
  readXattrs(path: Buffer): [Buffer, Buffer][];
  /** Sets one extended attribute on the path itself (symlinks are not followed). */
  setXattr(path: Buffer, name: Buffer, value: Buffer): void;
  hostSetXattr(path: Buffer, name: Buffer, value: Buffer, flags: number): void;
  hostRemoveXattr(path: Buffer, name: Buffer): void;
  hostMknod(path: Buffer, mode: number, rdev: number): void;
  hostFallocate(fd: number, mode: number, offset: number, length: number): void;
  hostRename2(from: Buffer, to: Buffer, flags: number): void;
  getRlimitNofile(): NofileLimit;
  /** Throws a NativeError (code ERR_RLIMIT, errno EPERM/EINVAL) when the kernel refuses. */
  setRlimitNofile(soft: number, hard: number): void;
  /**
   * A listening AF_UNIX socket at `path` (a stale socket file there is replaced), its fd owned by
   * the caller; NativeError ERR_VIRTIO with the errno when it cannot be made.
   */
  listenUnixSocket(path: string): number;
}

/**
 * Operation counters of one node-id slot (a mount; names: NYDUS_ABI_FOP_* lists, abi.ts),
 * summed over every thread that completed requests. Arrays over operations are indexed in
 * kFopKindNames order (upstream FsIoStats); `latencyUs` is cumulative microseconds;
 * `blockCountRead` buckets READs by size (<1K 4K 16K 64K 128K 512K 1M, >=1M) and
 * `readLatencyDist` by latency (<=200us 1ms 20ms 50ms 500ms 1s 2s, >2s).
 */
export type FuseFopStats = { [K in FopCounterName]: number } & { [K in FopArrayName]: number[] };
