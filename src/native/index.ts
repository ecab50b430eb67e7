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
}

/**
 * Decodes the chunks of one fetched range and writes them to the cache file `fd`, on a worker
 * thread. Resolves with a status per chunk: 0 written, -EBADMSG did not decode, -errno.
 */
export function decodeWrite(algo: number, src: Buffer, chunks: readonly FillChunk[], fd: number): Promise<Int32Array> {
  const f = nativeAbi().records.fill;
  const plan = new Float64Array(chunks.length * f.stride);
  chunks.forEach((c, i) => {
    const o = i * f.stride;
    plan[o + f.srcOffset] = c.srcOffset;
    plan[o + f.storedSize] = c.storedSize;
    plan[o + f.fileOffset] = c.fileOffset;
    plan[o + f.size] = c.size;
    plan[o + f.compressed] = c.compressed ? 1 : 0;
  });
  return loadAddon().decodeWrite(algo, src, plan, fd);
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

export function getRlimitNofile(): NofileLimit {
  return loadAddon().getRlimitNofile();
}

export function setRlimitNofile(soft: number, hard: number): void {
  loadAddon().setRlimitNofile(soft, hard);
}
