/**
 * The RAFS reader's public shapes (the contract in rafs-api.md). Both on-disk versions implement
 * `RafsImage`; the fs layer, storage and `nydus-image check/inspect` use only these.
 */
import type { BlobChunkMeta } from '../blob/meta.js';
import type { BlobInfo, ChunkInfo } from '../blob/types.js';
import type { CompressorName, DigesterName } from '../blob/codec.js';

/** v6: nid; v5: inode number = 1-based index in the inode table (root = 1). */
export type InodeRef = number;

export type { CompressorName, DigesterName } from '../blob/codec.js';
export type { BlobInfo, ChunkInfo } from '../blob/types.js';

export interface RafsSuper {
  version: 5 | 6;
  /** RafsSuperFlags (every defined bit is in the low 32). */
  flags: number;
  chunkSize: number;
  compressor: CompressorName;
  digester: DigesterName;
  explicitUidGid: boolean;
  hasXattr: boolean;
  /** s_inos (v6) / s_inodes_count (v5). */
  inodeCount: number;
  rootRef: InodeRef;
  /** v6 block size (4096, 512 for tarfs); v5: 4096. */
  blockSize: number;
  buildTimeSec?: number;
  /** Bootstrap bytes. */
  metaSize: number;
  /** v6 INLINED_CHUNK_DIGEST: chunk info comes from each blob's meta (see `RafsImage.chunks`). */
  inlinedChunkDigest: boolean;
  /** v6 TARFS_MODE: chunks address a raw tar in 512-byte blocks. */
  tarfs: boolean;
}

export interface InodeAttr {
  ref: InodeRef;
  /** st_ino identity: hardlinks share it (v6: nid of the shared record; v5: i_ino). */
  ino: number;
  /** Full st_mode (type and permission bits). */
  mode: number;
  /** 0/0 with `implicitOwner` when EXPLICIT_UID_GID is absent (fs substitutes euid/egid). */
  uid: number;
  gid: number;
  implicitOwner: boolean;
  size: number;
  nlink: number;
  mtimeSec: number;
  mtimeNsec: number;
  rdev: number;
  /** 512-byte blocks. */
  blocks: number;
}

/**
 * A directory entry. `name` is a view into the bootstrap (do not modify it). `type` is a DT_*
 * value. `nextOffset` resumes a `readDir` right after this entry.
 */
export interface DirEntry {
  name: Buffer;
  ref: InodeRef;
  type: number;
  nextOffset: number;
}

export interface RafsImage {
  readonly super: RafsSuper;
  readonly blobs: readonly BlobInfo[];
  /** Throws RafsError ERR_RAFS_BAD_INODE / ERR_RAFS_CORRUPT. */
  getAttr(ref: InodeRef): InodeAttr;
  /** Binary search; undefined when absent; throws ERR_RAFS_NOT_DIR if `parent` is not a dir. */
  lookup(parent: InodeRef, name: Buffer): InodeRef | undefined;
  /**
   * Entries from `offset` (0 = start; includes "." and ".."), in order, stable: calling again
   * with an entry's nextOffset resumes after it. Calls `visit` until it returns false.
   */
  readDir(dir: InodeRef, offset: number, visit: (e: DirEntry) => boolean): void;
  readLink(ref: InodeRef): Buffer;
  /** Full names, e.g. "user.foo". */
  listXattrs(ref: InodeRef): Buffer[];
  getXattr(ref: InodeRef, name: Buffer): Buffer | undefined;
  /**
   * Regular files: ordered by fileOffset; [] for empty files; holes have no chunk. For v6
   * INLINED_CHUNK_DIGEST images this needs the blob meta of each blob the file uses: it is taken
   * from `setBlobMeta`, else asked from the `blobMetaProvider`/`blobDir` given at open, else (when
   * opened with `chunkTableFallback`) read from the bootstrap's chunk info table; without any of
   * them the call throws ERR_RAFS_BLOB_META_REQUIRED.
   */
  chunks(ref: InodeRef): ChunkInfo[];
  isDir(ref: InodeRef): boolean;
  /** v5 only: the inode's stored digest (see rafs-format.md §2.3 "Digests"); undefined for v6. */
  inodeDigest(ref: InodeRef): Buffer | undefined;
  /** Prefetch table (v6 nids / v5 inode numbers), in table order. */
  prefetchRefs(): InodeRef[];
  /** Pre-order walk from the root ("/" first); throws ERR_RAFS_CORRUPT on a directory cycle. */
  walk(visit: (path: string, ref: InodeRef, attr: InodeAttr) => void): void;
  /** Supplies the parsed CI (and optionally digests) of blob `blobIndex` (v6 INLINED_CHUNK_DIGEST). */
  setBlobMeta(blobIndex: number, meta: BlobChunkMeta): void;
  /** Indexes of blobs whose meta `chunks()` needs and that were not loaded yet. */
  blobsNeedingMeta(): number[];
  close(): void;
}
