/**
 * Typed surface of the native addon: what `build/<config>/nydus_native.node` exports. Only
 * `binding.ts` loads the file; this describes it. Keep in sync with native/binding/*.cc.
 */

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
}

export interface NativeBlake3Hasher {
  update(data: Buffer): NativeBlake3Hasher;
  digest(): Buffer;
}

/** RLIMIT_NOFILE; RLIM_INFINITY is reported as Infinity. */
export interface NofileLimit {
  soft: number;
  hard: number;
}

export interface AbiInfo {
  napiVersion: number;
  chunkMapHeaderSize: number;
}

/** Layout numbers of the FUSE upcall/reply formats (native/core/fuse/upcall.h). */
export interface FuseAbiInfo {
  upcallStride: number;
  entryStride: number;
  attrBase: number;
  statfsStride: number;
  direntStride: number;
  direntOff: number;
  direntNameOffset: number;
  direntNameLength: number;
  direntType: number;
  extentStride: number;
  extentHole: number;
  extentCompressed: number;
  upcallReadMiss: number;
  upcallForget: number;
  upcallInit: number;
  upcallDestroy: number;
  upcallClosed: number;
  opcodeTableSize: number;
  maxReplyPayload: number;
  maxChunk: number;
  maxBlobSlots: number;
  protocolMinor: number;
}

/** Options of NativeFuseSession.mount (validated by FuseSession.mount first). */
export interface NativeMountOptions {
  mountpoint: string;
  fsname: string;
  subtype: string;
  allowOther: boolean;
  defaultPermissions: boolean;
  threads: number;
  allowFusermount: boolean;
  forceFusermount: boolean;
}

/**
 * The native FUSE session handle (native/binding/fuse_session_binding.cc). Used only by
 * fuse-session.ts. Reply methods return 0 (answered), -116 (ESTALE: token not live, ignored) or
 * -22 (EINVAL: invalid answer, the request got EIO and the problem was logged).
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
  resolveMiss(token: number, errno: number): number;
  setExtents(fh: number, extents: Float64Array, fileSize: number, count: number): void;
  removeExtents(fh: number): boolean;
  registerBlob(slot: number, dataPath: string, chunkMap: NativeChunkMap | null, algo: number): void;
  unregisterBlob(slot: number): void;
  chunksReady(slot: number, indices: Uint32Array): number;
  invalidateNodes(lo: number, hi: number, blobSlots: Uint32Array): number;
  failParked(lo: number, hi: number, errno: number): number;
  notifyInvalEntry(parent: number, name: Uint8Array): boolean;
  setFopSlots(shift: number, rootSlot: number): void;
  fopStats(slot: number): FuseFopStats;
  notifyInvalInode(ino: number, offset: number, length: number): boolean;
  mount(options: NativeMountOptions): { viaFusermount: boolean; threads: number };
  attachVirtio(options: { socketPath?: string; listenFd?: number; numRequestQueues: number; maxQueueSize: number }): { socketPath: string };
  attachLoopback(): void;
  inject(id: number, request: Uint8Array, outCapacity: number): void;
  stats(): Record<string, unknown>;
  stop(): void;
}

export type NativeFuseDispatch = (kind: number, a: number, b?: Buffer) => void;

export interface NativeAddon {
  initialize(classes: { NativeError: new (message: string, code: string) => Error }): void;
  abiInfo(): AbiInfo;

  setLogHandler(handler: ((level: number, module: string, message: string) => void) | null): void;
  setLogLevel(level: number): void;
  nativeLog(level: number, module: string, message: string): void;

  compress(algo: number, src: Buffer, level?: number): Buffer;
  decompress(algo: number, src: Buffer, uncompressedSize: number): Buffer;
  decompressInto(algo: number, src: Buffer, dst: Buffer): void;
  decodeWrite(algo: number, src: Buffer, plan: Float64Array, fd: number): Promise<Int32Array>;
  blake3(data: Buffer): Buffer;
  Blake3Hasher: new () => NativeBlake3Hasher;

  ChunkMap: new (path: string, chunkCount: number) => NativeChunkMap;

  fuseAbiInfo(): FuseAbiInfo;
  FuseSession: new (
    dispatch: NativeFuseDispatch,
    handlerOps: Uint8Array,
    upcallRecords: Float64Array,
    upcallBytes: Uint8Array,
    replyNumbers: Float64Array,
    replyBytes: Uint8Array,
    /** Bit 0: the handler is immutable (FuseSessionOptions.immutable). */
    flags?: number,
  ) => NativeFuseSession;

  /** All extended attributes of a path, without following symlinks (names and values as bytes). */
  readXattrs(path: Buffer): [Buffer, Buffer][];
  /** Sets one extended attribute on the path itself (symlinks are not followed). */
  setXattr(path: Buffer, name: Buffer, value: Buffer): void;
  getRlimitNofile(): NofileLimit;
  /** Throws a NativeError (code ERR_RLIMIT, errno EPERM/EINVAL) when the kernel refuses. */
  setRlimitNofile(soft: number, hard: number): void;
}

/**
 * Operation counters of one filesystem slot (upstream FsIoStats order: Getattr, Readlink, Open,
 * Release, Read, Statfs, Getxattr, Listxattr, Opendir, Lookup, Readdir, Readdirplus, Access,
 * Forget, BatchForget), summed over every thread that completed requests.
 */
export interface FuseFopStats {
  hits: number[];
  errors: number[];
  /** Cumulative latency per operation, microseconds. */
  latencyUs: number[];
  dataRead: number;
  /** READs by size: <1K, <4K, <16K, <64K, <128K, <512K, <1M, >=1M. */
  blockCountRead: number[];
  /** READs by latency: <=200us, 1ms, 20ms, 50ms, 500ms, 1s, 2s, >2s. */
  readLatencyDist: number[];
}
