/**
 * RafsError: every failure of the RAFS layer (bootstrap, blob meta, TOC, chunk data) is one of
 * these, with a stable `code` and, where a FUSE reply maps to it, an `errno`. Messages name the
 * file, the structure and the byte offset so a corrupt image can be diagnosed from the log line.
 */
import { NydusError } from '../../util/errors.js';

export const kRafsErrorCodes = {
  /** A structure in a bootstrap, blob meta or TOC is inconsistent or out of bounds. */
  CORRUPT: 'ERR_RAFS_CORRUPT',
  /** An inode reference does not name a valid inode (stale or forged nid / inode number). */
  BAD_INODE: 'ERR_RAFS_BAD_INODE',
  /** Recognised but not implemented (ZRan/batch/encrypted chunks, shared xattrs, ...). */
  UNSUPPORTED: 'ERR_RAFS_UNSUPPORTED',
  /** Something looked up by name is absent (TOC entry, blob file). */
  NOT_FOUND: 'ERR_RAFS_NOT_FOUND',
  /** Operation needs a directory / symlink / regular file and got another type. */
  NOT_DIR: 'ERR_RAFS_NOT_DIR',
  WRONG_TYPE: 'ERR_RAFS_WRONG_TYPE',
  /** INLINED_CHUNK_DIGEST image: chunk info lives in the blob meta, which was not supplied. */
  BLOB_META_REQUIRED: 'ERR_RAFS_BLOB_META_REQUIRED',
  /** Chunk data does not decode to the size the metadata promises. */
  CORRUPT_CHUNK: 'ERR_RAFS_CORRUPT_CHUNK',
  /** Decoded data does not match its recorded digest. */
  DIGEST_MISMATCH: 'ERR_RAFS_DIGEST_MISMATCH',
  /** Reading a bootstrap or blob file failed (permissions, a directory, an I/O error). */
  IO: 'ERR_RAFS_IO',
} as const;

export type RafsErrorCode = (typeof kRafsErrorCodes)[keyof typeof kRafsErrorCodes];

const kErrno: Record<RafsErrorCode, number> = {
  ERR_RAFS_CORRUPT: 5, // EIO
  ERR_RAFS_BAD_INODE: 5,
  ERR_RAFS_UNSUPPORTED: 95, // EOPNOTSUPP
  ERR_RAFS_NOT_FOUND: 2, // ENOENT
  ERR_RAFS_NOT_DIR: 20, // ENOTDIR
  ERR_RAFS_WRONG_TYPE: 22, // EINVAL
  ERR_RAFS_BLOB_META_REQUIRED: 5,
  ERR_RAFS_CORRUPT_CHUNK: 5,
  ERR_RAFS_DIGEST_MISMATCH: 5,
  ERR_RAFS_IO: 5,
};

export class RafsError extends NydusError {
  constructor(code: RafsErrorCode, message: string, options: { cause?: unknown } = {}) {
    super(code, message, { ...options, errno: kErrno[code] });
    this.name = 'RafsError';
  }
}

/** `<file>: <structure> at offset <n>: <detail>` as a CORRUPT error. */
export function corrupt(file: string, structure: string, offset: number, detail: string): RafsError {
  return new RafsError(kRafsErrorCodes.CORRUPT, `${file}: ${structure} at offset ${offset}: ${detail}`);
}

export function unsupported(file: string, what: string): RafsError {
  return new RafsError(kRafsErrorCodes.UNSUPPORTED, `${file}: ${what} is not supported yet`);
}
