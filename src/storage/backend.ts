/**
 * The backend contract (STYLE.md "Backend contract") and the shared wrapper around it.
 *
 * A backend implements `RawBackend`: `size()` and `tryRead()`, one attempt each, throwing a
 * StorageError marked `retryable` for transient failures. `BlobBackend` adds what every backend
 * shares: argument checks, blob id checks, per-attempt timeouts, bounded retries with
 * exponential backoff and jitter (fewer for prefetch), abort via AbortSignal, and counters
 * (exposed later by the metrics API).
 */
import { setTimeout as sleep } from 'node:timers/promises';

import type { Logger } from '../util/logger.js';
import { nullLogger } from '../util/logger.js';
import { checkBlobId } from './blob-id.js';
import { StorageError } from './contract/errors.js';
import type { FileRange, RawBackend, ReadOptions } from './contract/raw-backend.js';

export type { FileRange, RawBackend, ReadOptions, ReadPriority } from './contract/raw-backend.js';

export interface BackendPolicy {
  /** Extra attempts after a retryable failure (config `retry_limit`). */
  retryLimit: number;
  /** Per-attempt timeout in ms; 0 = none (local backends). */
  timeoutMs: number;
  /** First backoff delay; doubles per retry, each delay drawn from [d/2, d] (jitter). */
  retryDelayMs: number;
  /** Retries of a prefetch read (upstream: 1; on-demand reads get retryLimit). */
  prefetchRetryLimit?: number;
}

export const kLocalPolicy: BackendPolicy = { retryLimit: 0, timeoutMs: 0, retryDelayMs: 0 };

/** Network backends: upstream's budget (3 on-demand retries, 1 for prefetch), more if configured. */
export function remotePolicy(retryLimit: number): BackendPolicy {
  return { retryLimit: Math.max(3, retryLimit), timeoutMs: 0, retryDelayMs: 100, prefetchRetryLimit: 1 };
}

/** Largest single read we issue or accept (a merged range of chunks). */
export const kMaxBackendRead = 256 * 1024 * 1024;

export interface BackendStats {
  readCount: number;
  readErrors: number;
  readBytes: number;
  retries: number;
  cumulativeLatencyMs: number;
  /** Connections the backend opened (network backends; 0 otherwise). */
  connections: number;
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
  private readonly _stats: Omit<BackendStats, 'connections'> = { readCount: 0, readErrors: 0, readBytes: 0, retries: 0, cumulativeLatencyMs: 0 };
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

  /** The backend itself (tests; hot reload of registry credentials). */
  get raw(): RawBackend {
    return this._raw;
  }

  async size(blobId: string, signal?: AbortSignal): Promise<number> {
    checkBlobId(blobId);
    return this._attempt(blobId, signal, this._policy.retryLimit, (s) => this._raw.size(blobId, s));
  }

  /** Reads `[offset, offset+length)` of a blob: exactly `length` bytes or a StorageError. */
  async read(blobId: string, offset: number, length: number, signal?: AbortSignal, opts: ReadOptions = {}): Promise<Buffer> {
    checkRange(blobId, offset, length);
    this._log.trace(() => `read ${blobId} offset ${offset} length ${length}`);
    const t0 = performance.now();
    const prefetch = opts.priority === 'prefetch';
    const retries = prefetch ? Math.min(this._policy.retryLimit, this._policy.prefetchRetryLimit ?? this._policy.retryLimit) : this._policy.retryLimit;
    let failed = true;
    // Reading into caller memory needs every attempt to end before the next starts or the read
    // returns: a timed-out attempt would still be writing what the caller already reused.
    const { into: _into, ...rest } = opts;
    const o = _into && (this._policy.timeoutMs > 0 || _into.length !== length) ? rest : opts;
    try {
      const buf = await this._attempt(blobId, signal, retries, (s) => this._raw.tryRead(blobId, offset, length, s, o));
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

  /** The backend keeps blobs in files a reader can read itself (RawBackend.fileRange). */
  get hasFiles(): boolean {
    return this._raw.fileRange !== undefined;
  }

  /**
   * Where `[offset, offset+length)` of a blob is (RawBackend.fileRange; one attempt: local files
   * have nothing transient to retry). The caller reads it and books the read with `booked`.
   */
  async fileRange(blobId: string, offset: number, length: number): Promise<FileRange> {
    checkRange(blobId, offset, length);
    if (!this._raw.fileRange) throw new StorageError('ERR_BACKEND', `blob ${blobId}: the ${this._raw.type} backend keeps no files`);
    return this._raw.fileRange(blobId, offset, length);
  }

  /** Books a read someone made from a fileRange, as `read` books its own. */
  booked(length: number, latencyMs: number, failed: boolean): void {
    if (failed) {
      this._stats.readErrors++;
    } else {
      this._stats.readCount++;
      this._stats.readBytes += length;
    }
    this._stats.cumulativeLatencyMs += latencyMs;
    this.onRead?.(failed ? 0 : length, latencyMs, failed);
  }

  stats(): BackendStats {
    return { ...this._stats, connections: this._raw.connectionsOpened ?? 0 };
  }

  close(): Promise<void> {
    return this._raw.close();
  }

  private async _attempt<T>(blobId: string, signal: AbortSignal | undefined, retryLimit: number, op: (s: AbortSignal | undefined) => Promise<T>): Promise<T> {
    const { timeoutMs, retryDelayMs } = this._policy;
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
        // The final failure is logged once by whoever gave up (the cache, with blob and range).
        this._log.debug(() => `blob ${blobId}: ${(e as Error).message}; retry ${attempt + 1} of ${retryLimit}`);
        if (retryDelayMs > 0) {
          const d = retryDelayMs * 2 ** attempt;
          try {
            await sleep(d / 2 + Math.random() * (d / 2), undefined, signal ? { signal } : {});
          } catch {
            if (signal?.aborted) throw abortError(blobId, signal);
          }
        }
      }
    }
  }
}
