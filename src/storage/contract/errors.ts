/** Storage errors: stable codes, the errno a FUSE reply should carry, and whether a retry may help. */
import { NydusError } from '../../util/errors.js';

export const kEIO = 5;

export type StorageErrorCode =
  | 'ERR_BACKEND' // a backend read or stat failed
  | 'ERR_BACKEND_TIMEOUT'
  | 'ERR_BLOB_NOT_FOUND'
  | 'ERR_BLOB_SHORT' // the blob is shorter than the range asked for
  | 'ERR_BAD_BLOB_ID' // not a plain file name
  | 'ERR_BAD_CHUNK' // chunk info inconsistent with its blob
  | 'ERR_CHUNK_DECODE'
  | 'ERR_CHUNK_DIGEST'
  | 'ERR_BLOB_META'
  | 'ERR_CACHE_DIR'
  | 'ERR_CACHE_FILE'
  | 'ERR_ABORTED'
  | 'ERR_STORAGE_CLOSED'
  | 'ERR_PREFETCH_LIST' // a prefetch file list entry that is not an absolute path
  | 'ERR_READAHEAD_LOG'; // a readahead log file that is not one

export class StorageError extends NydusError {
  readonly retryable: boolean;
  /**
   * Already logged (at error level, with blob and range) where it happened: layers above answer
   * EIO without logging it again, so one failure is one log line however many reads wait on it.
   */
  reported: boolean;

  constructor(code: StorageErrorCode, message: string, options: { cause?: unknown; errno?: number; retryable?: boolean; reported?: boolean } = {}) {
    super(code, message, { cause: options.cause, errno: options.errno ?? kEIO });
    this.name = 'StorageError';
    this.retryable = options.retryable ?? false;
    this.reported = options.reported ?? false;
  }
}

/** Logs a storage failure once; later layers see `reported` and stay quiet. */
export function reportOnce(err: unknown, log: (msg: string) => void, msg: string): void {
  if (err instanceof StorageError) {
    if (err.reported) return;
    err.reported = true;
  }
  log(msg);
}

export function errnoCode(err: unknown): string {
  return (err as NodeJS.ErrnoException | undefined)?.code ?? (err instanceof Error ? err.message : String(err));
}
