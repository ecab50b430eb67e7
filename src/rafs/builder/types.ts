/**
 * The builder's in-memory filesystem model and options. A source (directory or tar) produces a
 * tree of `Entry` (one per name) pointing at `Inode` records (one per file; hardlinks share one);
 * the chunker fills in file data; the v5/v6 writers lay the tree out. Nothing here touches disk.
 */
import { NydusError } from '../../util/errors.js';
import { isDirMode, isLnkMode, isRegMode } from '../../util/mode-bits.js';

import type { DigesterName, WritableCompressor } from '../blob/codec.js';

export type { DigesterName, WritableCompressor };
export type WhiteoutSpec = 'oci' | 'overlayfs' | 'none';
export type PrefetchPolicy = 'none' | 'fs' | 'blob';

export interface Xattr {
  name: Buffer;
  value: Buffer;
}

/** One unique data chunk stored in the blob (deduplicated by digest). */
export interface BlobChunk {
  digest: Buffer;
  /** Per-blob chunk index: CI array position, chunk-map bit, v5 `index`. */
  index: number;
  compressedOffset: number;
  compressedSize: number;
  uncompressedOffset: number;
  uncompressedSize: number;
  compressed: boolean;
  /** File offset of the first use; only informational (v6 chunk table rows carry it). */
  fileOffset: number;
}

export interface Inode {
  /** Full st_mode (type and permission bits). */
  mode: number;
  uid: number;
  gid: number;
  mtimeSec: number;
  mtimeNsec: number;
  /** Device number in the kernel's 32-bit "new" encoding (same as the low 32 bits of st_rdev). */
  rdev: number;
  /** Regular files: content length; symlinks: target length; directories: set by the writer. */
  size: number;
  symlink?: Buffer;
  /** Sorted by name bytes, names already validated for the RAFS namespaces. */
  xattrs: Xattr[];
  /** Directories only: children sorted by name bytes. */
  children?: Entry[];
  /** Regular files: one BlobChunk per `chunkSize` piece of content, in file order. */
  chunks?: BlobChunk[];
  /** Directory sources: host path to read the content from (regular files only). */
  hostPath?: Buffer;
  /** Number of names (entries) referring to this inode in the image. */
  links: number;
  /** Sequential inode number: the index of the first entry naming it (v5 `i_ino`). */
  ino: number;
  /** v6 writer scratch: absolute byte offset of the inode record in the bootstrap. */
  v6Offset?: number;
}

export interface Entry {
  name: Buffer;
  inode: Inode;
  parent: Entry | undefined;
  /** 1-based sequential index in layout order (v5 inode number; root = 1). */
  index: number;
  /** Directories: index the first child got (or would get, when empty): v5 `i_child_index`. */
  childIndex?: number;
}

export const isDir = (inode: Inode): boolean => isDirMode(inode.mode);
export const isReg = (inode: Inode): boolean => isRegMode(inode.mode);
export const isSymlink = (inode: Inode): boolean => isLnkMode(inode.mode);

/** Everything `createImage` needs; the CLI fills it from upstream-compatible flags. */
export interface BuildOptions {
  source: string;
  sourceType: 'dir' | 'tar' | 'targz';
  fsVersion: 5 | 6;
  compressor: WritableCompressor;
  digester: DigesterName;
  chunkSize: number;
  /** Output bootstrap path; undefined with blobDir (named by its sha256) or inline meta. */
  bootstrapPath?: string;
  blobPath?: string;
  blobDir?: string;
  /** User-chosen blob id instead of the sha256 of the blob file. */
  blobId?: string;
  blobInlineMeta: boolean;
  /** `--features blob-toc`: tar headers, chunk digests and a TOC at the end of the blob. */
  blobToc: boolean;
  /** v5 only (v6 is always aligned): uncompressed chunk offsets rounded up to 4 KiB. */
  alignedChunk: boolean;
  /** false with --repeatable: uid/gid are not stored and the image reads as the daemon's user. */
  explicitUidGid: boolean;
  whiteoutSpec: WhiteoutSpec;
  prefetchPolicy: PrefetchPolicy;
  /** Absolute in-image paths (as bytes) for the prefetch policy. */
  prefetchPatterns: Buffer[];
  /** Worker threads digesting/compressing chunks: 0 = none; default one per CPU beyond the first (max 4). */
  threads?: number;
  /** Progress reporting (the CLI passes a TTY progress bar). */
  onProgress?: (p: BuildProgress) => void;
  /** Non-fatal problems (e.g. tar xattrs RAFS cannot store); the CLI prints them to stderr. */
  onWarning?: (message: string) => void;
}

export interface BuildProgress {
  files: number;
  bytes: number;
  done: boolean;
}

export interface BuildResult {
  bootstrapPath: string | undefined;
  blobPath: string | undefined;
  /** Blob ids in blob-table order (empty when the image has no data). */
  blobIds: string[];
  blobSize: number;
  bootstrapSize: number;
  chunkCount: number;
  entries: number;
}

/** A source that cannot be turned into an image (unsupported file, bad name, limits). */
export class BuildError extends NydusError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super('ERR_BUILD', message, options);
    this.name = 'BuildError';
  }
}

/** Printable form of a byte path for error messages (invalid UTF-8 shown as escapes). */
export function showPath(p: Buffer | string): string {
  if (typeof p === 'string') return JSON.stringify(p);
  const s = p.toString('utf8');
  return Buffer.from(s, 'utf8').equals(p) ? JSON.stringify(s) : JSON.stringify(p.toString('latin1'));
}
