/**
 * The backend contract (STYLE.md "Backend contract"): what one backend implements, one attempt per
 * call. The shared wrapper with retries and counters is ../backend.ts; this folder sits below every
 * other storage folder (the HTTP layer and the backends import it, it imports none of them).
 */
/** On-demand reads (a guest waits) or prefetch (nobody waits); decides retries and hints. */
export type ReadPriority = 'ondemand' | 'prefetch';

export interface ReadOptions {
  priority?: ReadPriority;
  /**
   * Told while the reply arrives (network backends): `buf[0, bytes)` are the first bytes of the
   * range, from a reply whose status and Content-Range were checked. A retry starts again with
   * another buffer; only what the read finally returns is known to be the whole range.
   */
  onProgress?: (buf: Buffer, bytes: number) => void;
  /**
   * Memory of exactly `length` bytes the backend may read the range into and return (local
   * backends: positional reads; network backends ignore it). A backend that writes it returns
   * it; one that returns another buffer never touched it. The caller reuses it only after a read
   * that succeeded (ReadBufferPool).
   */
  into?: Buffer;
}

/** Where a local backend keeps a range of a blob: an open file and the range's position in it. */
export interface FileRange {
  /** Open until the backend is closed. */
  fd: number;
  position: number;
  /** The file, for error messages. */
  path: string;
}

export interface RawBackend {
  readonly type: string;
  /** Size of the blob in bytes. */
  size(blobId: string, signal?: AbortSignal): Promise<number>;
  /** Exactly `length` bytes at `offset` (one attempt), or a StorageError. */
  tryRead(blobId: string, offset: number, length: number, signal?: AbortSignal, opts?: ReadOptions): Promise<Buffer>;
  /**
   * Local backends: where `[offset, offset+length)` of the blob is, checked like tryRead, for a
   * reader that reads it itself (the native cache fill, on its own thread). Network backends
   * have no such file and leave this out.
   */
  fileRange?(blobId: string, offset: number, length: number): Promise<FileRange>;
  close(): Promise<void>;
  /** Network backends: TCP/Unix connections opened so far. */
  readonly connectionsOpened?: number;
}
