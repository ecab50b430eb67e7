/**
 * The backend contract (STYLE.md "Backend contract") and the shared wrapper around it.
 *
 * A backend implements `RawBackend`: `size()` and `tryRead()`, one attempt each, throwing a
 * StorageError marked `retryable` for transient failures. `BlobBackend` adds what every backend
 * shares: argument checks, blob id checks, per-attempt timeouts, bounded retries with backoff,
 * abort via AbortSignal, and counters (exposed later by the metrics API).
 */
import { setTimeout as sleep } from 'node:timers/promises';

import type { Logger } from '../util/logger.js';
import { nullLogger } from '../util/logger.js';
import { checkBlobId } from './blob-id.js';
import { StorageError } from './errors.js';

export interface RawBackend {
  readonly type: string;
  /** Size of the blob in bytes. */
  size(blobId: string, signal?: AbortSignal): Promise<number>;
  /** Exactly `length` bytes at `offset` (one attempt), or a StorageError. */
  tryRead(blobId: string, offset: number, length: number, signal?: AbortSignal): Promise<Buffer>;
  close(): Promise<void>;
}

export interface BackendPolicy {
  /** Extra attempts after a retryable failure (config `retry_limit`). */
  retryLimit: number;
  /** Per-attempt timeout in ms; 0 = none (local backends). */
  timeoutMs: number;
  /** First backoff delay; doubles per retry. */
  retryDelayMs: number;
}

export const kLocalPolicy: BackendPolicy = { retryLimit: 0, timeoutMs: 0, retryDelayMs: 0 };

/** Largest single read we issue or accept (a merged range of chunks). */
export const kMaxBackendRead = 256 * 1024 * 1024;

export interface BackendStats {
  readCount: number;
  readErrors: number;
  readBytes: number;
  retries: number;
  cumulativeLatencyMs: number;
}

function checkRange(blobId: string, offset: number, length: number): void {
  checkBlobId(blobId);
  if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0 || length > kMaxBackendRead) {
    throw new StorageError('ERR_BACKEND', `blob ${blobId}: invalid read range offset ${offset} length ${length}`);
  }
}

function abortError(blobId: string, signal: AbortSignal): StorageError {
  return new StorageError('ERR_ABORTED', `blob ${blobId}: read aborted`, { cause: signal.reason });
}

/** Told about every finished read (the metrics API keeps size/latency distributions). */
export type BackendReadObserver = (bytes: number, latencyMs: number, error: boolean) => void;

export class BlobBackend {
  private readonly _stats: BackendStats = { readCount: 0, readErrors: 0, readBytes: 0, retries: 0, cumulativeLatencyMs: 0 };
  /** Set by the daemon to record read metrics; called after every read, never throws into it. */
  onRead: BackendReadObserver | undefined;

  constructor(
    private readonly _raw: RawBackend,
    private readonly _policy: BackendPolicy = kLocalPolicy,
    private readonly _log: Logger = nullLogger(),
  ) {}

  get type(): string {
    return this._raw.type;
  }

  async size(blobId: string, signal?: AbortSignal): Promise<number> {
    checkBlobId(blobId);
    return this._attempt(blobId, signal, (s) => this._raw.size(blobId, s));
  }

  /** Reads `[offset, offset+length)` of a blob: exactly `length` bytes or a StorageError. */
  async read(blobId: string, offset: number, length: number, signal?: AbortSignal): Promise<Buffer> {
    checkRange(blobId, offset, length);
    this._log.trace(() => `read ${blobId} offset ${offset} length ${length}`);
    const t0 = performance.now();
    let failed = true;
    try {
      const buf = await this._attempt(blobId, signal, (s) => this._raw.tryRead(blobId, offset, length, s));
      if (buf.length !== length) {
        throw new StorageError('ERR_BLOB_SHORT', `blob ${blobId}: backend returned ${buf.length} bytes at offset ${offset}, wanted ${length}`);
      }
      this._stats.readCount++;
      this._stats.readBytes += length;
      failed = false;
      return buf;
    } catch (err) {
      this._stats.readErrors++;
      throw err;
    } finally {
      const ms = performance.now() - t0;
      this._stats.cumulativeLatencyMs += ms;
      this.onRead?.(failed ? 0 : length, ms, failed);
    }
  }

  stats(): BackendStats {
    return { ...this._stats };
  }

  close(): Promise<void> {
    return this._raw.close();
  }

  private async _attempt<T>(blobId: string, signal: AbortSignal | undefined, op: (s: AbortSignal | undefined) => Promise<T>): Promise<T> {
    const { retryLimit, timeoutMs, retryDelayMs } = this._policy;
    for (let attempt = 0; ; attempt++) {
      if (signal?.aborted) throw abortError(blobId, signal);
      const timeout = timeoutMs > 0 ? AbortSignal.timeout(timeoutMs) : undefined;
      const s = timeout && signal ? AbortSignal.any([signal, timeout]) : (timeout ?? signal);
      try {
        return await op(s);
      } catch (err) {
        if (signal?.aborted) throw abortError(blobId, signal);
        let e = err;
        if (timeout?.aborted) {
          e = new StorageError('ERR_BACKEND_TIMEOUT', `blob ${blobId}: backend request timed out after ${timeoutMs} ms`, {
            cause: err,
            retryable: true,
          });
        }
        const retryable = e instanceof StorageError && e.retryable;
        if (!retryable || attempt >= retryLimit) throw e;
        this._stats.retries++;
        this._log.warn(`blob ${blobId}: ${(e as Error).message}; retry ${attempt + 1} of ${retryLimit}`);
        if (retryDelayMs > 0) {
          try {
            await sleep(retryDelayMs * 2 ** attempt, undefined, signal ? { signal } : {});
          } catch {
            if (signal?.aborted) throw abortError(blobId, signal);
          }
        }
      }
    }
  }
}
