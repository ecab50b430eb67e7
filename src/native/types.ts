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

export interface NativeAddon {
  initialize(classes: { NativeError: new (message: string, code: string) => Error }): void;
  abiInfo(): AbiInfo;

  setLogHandler(handler: ((level: number, module: string, message: string) => void) | null): void;
  setLogLevel(level: number): void;
  nativeLog(level: number, module: string, message: string): void;

  compress(algo: number, src: Buffer, level?: number): Buffer;
  decompress(algo: number, src: Buffer, uncompressedSize: number): Buffer;
  decompressInto(algo: number, src: Buffer, dst: Buffer): void;
  blake3(data: Buffer): Buffer;
  Blake3Hasher: new () => NativeBlake3Hasher;

  ChunkMap: new (path: string, chunkCount: number) => NativeChunkMap;

  /** All extended attributes of a path, without following symlinks (names and values as bytes). */
  readXattrs(path: Buffer): [Buffer, Buffer][];
  /** Sets one extended attribute on the path itself (symlinks are not followed). */
  setXattr(path: Buffer, name: Buffer, value: Buffer): void;
  getRlimitNofile(): NofileLimit;
  /** Throws a NativeError (code ERR_RLIMIT, errno EPERM/EINVAL) when the kernel refuses. */
  setRlimitNofile(soft: number, hard: number): void;
}
