/**
 * The native layer as the rest of the TypeScript code sees it: the addon's typed surface.
 * Codecs, digests (BLAKE3, SHA-256), the persistent chunk map, xattrs, RLIMIT_NOFILE, the cache fill, the FUSE
 * session handle (served by src/fuse), and the numbers shared with the core (abi.ts).
 * Neighbours: `binding.ts` (the loader) below; src/fuse, storage/, rafs/, daemon/ above.
 */
import { nativeAbi } from './abi.js';
import { loadAddon } from './binding.js';
import { DigestAlgo } from './types.js';
import type { NativeChunkMap, NativeDigestHasher, NofileLimit } from './types.js';

export { CompressAlgo, DigestAlgo } from './types.js';
export type { FuseFopStats, NativeChunkMap, NativeDigestHasher, NativeFuseSession, NativePassthroughRoot, NativeSessionStats, NativeTransportStats, NofileLimit } from './types.js';
export { kCodeNames, kFopArrayLengths, kFopCounterNames, kFopKindNames, kLimitNames, kRecordFields, kStatNames, nativeAbi } from './abi.js';
export type { FopArrayName, FopCounterName, FopKindName, NativeAbi, RecordLayout } from './abi.js';

/** The loaded addon (for the typed members not wrapped below: FuseSession, log bridge, ...). */
export function native(): ReturnType<typeof loadAddon> {
  return loadAddon();
}

export function compress(algo: number, src: Buffer, level?: number): Buffer {
  return loadAddon().compress(algo, src, level);
}

export function decompress(algo: number, src: Buffer, uncompressedSize: number): Buffer {
  return loadAddon().decompress(algo, src, uncompressedSize);
}

/** One chunk of a cache fill: its stored bytes in the fetched range and its place in the file. */
export interface FillChunk {
  /** Offset of the stored (possibly compressed) bytes in the fetched buffer. */
  srcOffset: number;
  storedSize: number;
  /** Offset of the uncompressed data in the blob, which is its offset in the cache file. */
  fileOffset: number;
  size: number;
  compressed: boolean;
  /** Chunk index in the blob (its ready bit). */
  index: number;
  /** Checked when the fill validates (32 bytes), and the key of a convergently encrypted cache; absent: none. */
  digest?: Buffer | undefined;
  /** Offset of the stored bytes in the blob (where a compressed cache keeps them). */
  compressedOffset: number;
}

/** Where the fill thread reads the fetched bytes itself (a local backend's open blob file). */
export interface FillFileSource {
  fd: number;
  position: number;
  length: number;
}

export interface FillRequest {
  algo: number;
  digester: DigestAlgo;
  validate: boolean;
  /** The fetched bytes, or the file range the fill reads them from. */
  src: Buffer | FillFileSource;
  chunks: readonly FillChunk[];
  /** The cache data file; -1: the cache is not tried now (straight to the spill). */
  fd: number;
  map: NativeChunkMap;
  /** Chunks the cache file does not take go to the map's spill. */
  allowSpill: boolean;
  /**
   * Nobody waits for these chunks yet (readahead, prefetch): the fill threads take on-demand
   * fills first (native/core/cache/fill_pool.h).
   */
  speculative?: boolean;
}

/** Per-chunk outcome codes of a fill (cache/fill.h). */
export const kFillCached = 0;
export const kFillSpilled = 1;
export const kFillDigestMismatch = -1000;
/** The cache file's layout (compressed or encrypted) cannot hold the chunk. */
export const kFillBadPlace = -1001;

export interface FillOutcome {
  /** Per chunk, in request order: kFillCached, kFillSpilled, kFillDigestMismatch, kFillBadPlace, -EBADMSG, -errno. */
  status: Int32Array;
  /** -errno of the first failed cache-file write, 0 when there was none. */
  storeError: number;
  /** Thread id of the fill (never the JavaScript thread's). */
  threadId: number;
  /** -errno of reading a FillFileSource (nothing was filled then), 0 when it was read. */
  sourceError: number;
  /** How long reading the FillFileSource took, in microseconds (0 for a Buffer). */
  sourceMicros: number;
}

/**
 * The cache fill of one fetched range on the native fill threads: decode, digest check, cache
 * write (or spill), ready bits and the wake-up of parked READs. Resolves once all of it is done.
 */
export async function fill(r: FillRequest): Promise<FillOutcome> {
  const f = nativeAbi().records.fill;
  const n = r.chunks.length;
  const plan = new Float64Array(n * f.stride);
  // Digests travel whenever the image has them: a compressed or encrypted cache checks them
  // (and a convergent one keys by them) even when the request does not validate.
  const digests = Buffer.alloc(r.chunks.some((c) => c.digest?.length === 32) ? n * 32 : 0);
  r.chunks.forEach((c, i) => {
    const o = i * f.stride;
    plan[o + f.srcOffset] = c.srcOffset;
    plan[o + f.storedSize] = c.storedSize;
    plan[o + f.fileOffset] = c.fileOffset;
    plan[o + f.size] = c.size;
    plan[o + f.compressed] = c.compressed ? 1 : 0;
    plan[o + f.index] = c.index;
    plan[o + f.compressedOffset] = c.compressedOffset;
    if (c.digest?.length === 32) {
      plan[o + f.hasDigest] = 1;
      c.digest.copy(digests, i * 32);
    }
  });
  const a = loadAddon();
  const s = r.src;
  const out = Buffer.isBuffer(s)
    ? await a.fill(r.algo, r.digester, r.validate, s, plan, digests, r.fd, r.map, r.allowSpill, -1, 0, 0, r.speculative === true)
    : await a.fill(r.algo, r.digester, r.validate, null, plan, digests, r.fd, r.map, r.allowSpill, s.fd, s.position, s.length, r.speculative === true);
  return { status: out.subarray(0, n), storeError: out[n] ?? 0, threadId: out[n + 1] ?? 0, sourceError: out[n + 2] ?? 0, sourceMicros: out[n + 3] ?? 0 };
}

/** BLAKE3 or SHA-256 of `data` (32 bytes), computed natively on the calling thread. */
export function digest(digester: DigestAlgo, data: Buffer): Buffer {
  return loadAddon().digest(digester, data);
}

export function blake3(data: Buffer): Buffer {
  return loadAddon().digest(DigestAlgo.Blake3, data);
}

export function createDigestHasher(digester: DigestAlgo): NativeDigestHasher {
  return new (loadAddon().DigestHasher)(digester);
}

/** `repair`: rebuild a damaged map when no other process has it open (see cache/chunk_map.h). */
export function openChunkMap(path: string, chunkCount: number, repair = false): NativeChunkMap {
  return new (loadAddon().ChunkMap)(path, chunkCount, repair);
}

/** [start, end) pairs (flattened) where the file at `fd` has data (SEEK_DATA/SEEK_HOLE). */
export function dataExtents(fd: number): Float64Array {
  return loadAddon().dataExtents(fd);
}

/** Extended attributes of `path` (a symlink's own), as raw [name, value] pairs in kernel order. */
export function readXattrs(path: Buffer): [Buffer, Buffer][] {
  return loadAddon().readXattrs(path);
}

/** Sets one extended attribute on `path` itself (tests build source trees with it). */
export function setXattr(path: Buffer, name: Buffer, value: Buffer): void {
  loadAddon().setXattr(path, name, value);
}

/** lsetxattr with XATTR_CREATE/XATTR_REPLACE `flags` (throws with the errno). */
export function hostSetXattr(path: Buffer, name: Buffer, value: Buffer, flags: number): void {
  loadAddon().hostSetXattr(path, name, value, flags);
}

/** lremovexattr (throws with the errno). */
export function hostRemoveXattr(path: Buffer, name: Buffer): void {
  loadAddon().hostRemoveXattr(path, name);
}

/** mknod(2) (throws with the errno): whiteouts (S_IFCHR, rdev 0), devices, FIFOs, sockets. */
export function hostMknod(path: Buffer, mode: number, rdev: number): void {
  loadAddon().hostMknod(path, mode, rdev);
}

/** fallocate(2) on open file `fd` (throws with the errno). */
export function hostFallocate(fd: number, mode: number, offset: number, length: number): void {
  loadAddon().hostFallocate(fd, mode, offset, length);
}

/** renameat2(2) with `flags` (RENAME_EXCHANGE: 2; throws with the errno). */
export function hostRename2(from: Buffer, to: Buffer, flags: number): void {
  loadAddon().hostRename2(from, to, flags);
}

export function getRlimitNofile(): NofileLimit {
  return loadAddon().getRlimitNofile();
}

export function setRlimitNofile(soft: number, hard: number): void {
  loadAddon().setRlimitNofile(soft, hard);
}

/** A listening Unix socket for the vhost-user backend to accept on later (FuseSession.attachVirtio's listenFd). */
export function listenUnixSocket(path: string): number {
  return loadAddon().listenUnixSocket(path);
}
