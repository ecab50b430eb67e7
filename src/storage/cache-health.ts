/**
 * What the blob cache does when its directory stops taking writes (ENOSPC, EDQUOT, EIO, EROFS):
 * reads keep being served from the backend (upstream wedges here, nydus#1958), the failure is
 * logged once per episode (not per chunk), and cache writes are retried after a backoff, so the
 * cache fills again once space is freed.
 *
 * Chunks that could not be written go to the blob's spill (an in-memory file the native READ
 * path also reads, cache/spill.h). The spill is bounded for the whole daemon: the oldest chunks
 * are evicted first; a chunk a JavaScript read is copying is pinned until the copy is done.
 */
import type { NativeChunkMap } from '../native/index.js';
import type { Logger } from '../util/logger.js';

/** Memory the spills of one daemon may hold. */
export const kDefaultSpillLimit = 128 * 1024 * 1024;
const kMinRetryMs = 1000;
const kMaxRetryMs = 30_000;

export interface HealthOptions {
  /** First retry delay after a failure (doubles per failed retry, up to 30 s). */
  retryMs?: number;
  now?: () => number;
}

export class CacheWriteHealth {
  private _failing: string | undefined;
  private _nextTry = 0;
  private _probing = false;
  private _backoff: number;
  private readonly _minRetry: number;
  private readonly _now: () => number;

  constructor(
    private readonly _dir: string,
    private readonly _log: Logger,
    private readonly _spillLimit: number,
    o: HealthOptions = {},
  ) {
    this._minRetry = o.retryMs ?? kMinRetryMs;
    this._backoff = this._minRetry;
    this._now = o.now ?? Date.now;
  }

  get failing(): boolean {
    return this._failing !== undefined;
  }

  /**
   * Whether a fill should write to the cache file now: always while writes succeed; while they
   * fail, one fill per retry interval probes (the others go straight to the spill).
   */
  shouldTry(): boolean {
    if (this._failing === undefined) return true;
    const now = this._now();
    if (now < this._nextTry) return false;
    this._nextTry = now + this._backoff;
    this._probing = true;
    return true;
  }

  failed(code: string, what: string): void {
    if (this._failing === undefined) {
      this._failing = code;
      this._backoff = this._minRetry;
      this._log.error(
        `cache directory ${this._dir}: ${what} failed (${code}); serving data from the backend without caching it ` +
          `(up to ${Math.round(this._spillLimit / 1048576)} MiB kept in memory) and retrying cache writes from ${this._minRetry} ms to every ${kMaxRetryMs / 1000} s`,
      );
    } else if (this._probing) {
      // Only a failed probe backs off further; fills that were already running when the first
      // failure came in fail too, and say nothing new.
      this._backoff = Math.min(this._backoff * 2, kMaxRetryMs);
    } else {
      return;
    }
    this._probing = false;
    this._nextTry = this._now() + this._backoff;
  }

  succeeded(): void {
    if (this._failing === undefined) return;
    this._log.info(`cache directory ${this._dir}: cache writes succeed again (after ${this._failing})`);
    this._failing = undefined;
    this._probing = false;
    this._backoff = this._minRetry;
  }
}

export interface SpillEntry {
  readonly map: NativeChunkMap;
  readonly owner: object;
  readonly index: number;
  readonly offset: number;
  readonly size: number;
  pins: number;
  /** The owner forgets the entry (it is no longer in the spill). */
  readonly onEvict: () => void;
}

/** The daemon-wide bound on spilled bytes, oldest evicted first (JS thread only). */
export class SpillBudget {
  private _used = 0;
  private _entries: SpillEntry[] = [];

  constructor(readonly limit: number = kDefaultSpillLimit) {}

  get used(): number {
    return this._used;
  }

  /** Makes room for `size` more bytes and counts them; false when that is impossible. */
  reserve(size: number): boolean {
    if (size > this.limit) return false;
    while (this._used + size > this.limit) {
      const i = this._entries.findIndex((e) => e.pins === 0);
      if (i < 0) return false;
      const [e] = this._entries.splice(i, 1);
      if (e) this._evict(e);
    }
    this._used += size;
    return true;
  }

  /** Returns bytes reserved but not used (the spill write failed). */
  release(size: number): void {
    this._used = Math.max(0, this._used - size);
  }

  /** Records a spilled chunk whose bytes were reserved. */
  add(e: SpillEntry): void {
    this._entries.push(e);
  }

  /** Drops every chunk of `owner` (its blob is closing). */
  dropAll(owner: object): void {
    const keep: SpillEntry[] = [];
    for (const e of this._entries) {
      if (e.owner === owner) this._evict(e);
      else keep.push(e);
    }
    this._entries = keep;
  }

  private _evict(e: SpillEntry): void {
    e.map.evictSpill(e.index, e.offset, e.size);
    this._used -= e.size;
    e.onEvict();
  }
}
