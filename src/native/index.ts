/**
 * The native layer as the rest of the TypeScript code sees it: codecs, BLAKE3, the persistent
 * chunk map, the log bridge, and FUSE sessions (fuse-session.ts: a filesystem handler served over
 * /dev/fuse or vhost-user virtio-fs, with the native READ fast path).
 * Neighbours: `binding.ts` (the loader) below; storage/, rafs/, daemon/ above.
 */
import { loadAddon } from './binding.js';
import type { NativeBlake3Hasher, NativeChunkMap, NofileLimit } from './types.js';

export { CompressAlgo } from './types.js';
export type { NativeChunkMap, NativeBlake3Hasher, AbiInfo, FuseAbiInfo, FuseFopStats, NofileLimit } from './types.js';
export { FuseSession } from './fuse-session.js';
export type {
  FuseBlob,
  FuseCloseInfo,
  FuseLogger,
  FuseMountOptions,
  FuseSessionOptions,
  FuseSessionStats,
  FuseVirtioOptions,
} from './fuse-session.js';
export { FuseErrno, kFopen, kFuseOp } from './fuse-types.js';
export type {
  FuseAttr,
  FuseAttrReply,
  FuseDirEntry,
  FuseDirEntryPlus,
  FuseEntry,
  FuseFilesystem,
  FuseForget,
  FuseInitInfo,
  FuseOpenReply,
  FuseReadMiss,
  FuseRequestContext,
  FuseResult,
  FuseStatfs,
} from './fuse-types.js';
export { Errno, errnoOf, fuseErrno, FuseSessionError } from './fuse-errors.js';
export { FuseExtentTable, kExtentCompressed, kExtentHole, kExtentStride } from './fuse-extents.js';
export type { FuseExtent } from './fuse-extents.js';
export { fuseDirentSize } from './fuse-reply.js';

export function native(): ReturnType<typeof loadAddon> {
  return loadAddon();
}

export function compress(algo: number, src: Buffer, level?: number): Buffer {
  return loadAddon().compress(algo, src, level);
}

export function decompress(algo: number, src: Buffer, uncompressedSize: number): Buffer {
  return loadAddon().decompress(algo, src, uncompressedSize);
}

/**
 * Decodes the chunks of one fetched range and writes them to the cache file `fd`, on a worker
 * thread. `plan`: 5 numbers per chunk (src offset, stored size, file offset, uncompressed size,
 * compressed 0/1). Resolves with a status per chunk: 0 written, -EIO did not decode, -errno.
 */
export function decodeWrite(algo: number, src: Buffer, plan: Float64Array, fd: number): Promise<Int32Array> {
  return loadAddon().decodeWrite(algo, src, plan, fd);
}

export function blake3(data: Buffer): Buffer {
  return loadAddon().blake3(data);
}

export function createBlake3Hasher(): NativeBlake3Hasher {
  return new (loadAddon().Blake3Hasher)();
}

export function openChunkMap(path: string, chunkCount: number): NativeChunkMap {
  return new (loadAddon().ChunkMap)(path, chunkCount);
}

/** Extended attributes of `path` (a symlink's own), as raw [name, value] pairs in kernel order. */
export function readXattrs(path: Buffer): [Buffer, Buffer][] {
  return loadAddon().readXattrs(path);
}

/** Sets one extended attribute on `path` itself (tests build source trees with it). */
export function setXattr(path: Buffer, name: Buffer, value: Buffer): void {
  loadAddon().setXattr(path, name, value);
}

export function getRlimitNofile(): NofileLimit {
  return loadAddon().getRlimitNofile();
}

export function setRlimitNofile(soft: number, hard: number): void {
  loadAddon().setRlimitNofile(soft, hard);
}
