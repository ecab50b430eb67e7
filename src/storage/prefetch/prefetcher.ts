/**
 * The prefetch scheduler of one mounted image: a queue of planned ranges (plan.ts) served in
 * order by `threads` workers, each with at most one request in flight, paced to the bandwidth
 * limit, and handed to the blob cache's fill entry point (CachedBlob.fetchPlanned).
 *
 * On-demand reads go first: prefetch requests are separate from misses (a miss is never queued
 * here), and while any on-demand read is in flight only one prefetch worker sends; the others
 * wait until the misses are served. The in-flight count is also capped below the HTTP client's
 * connections per origin, so a miss always finds a free connection.
 */
import { setMaxListeners } from 'node:events';

import type { Logger } from '../../util/logger.js';
import type { CachedBlob } from '../blob-cache.js';
import type { DemandTracker } from '../demand.js';
import type { FetchRange } from '../fetch-plan.js';
import { Pacer } from './pacer.js';
import type { PrefetchStats } from './stats.js';
import { emptyPrefetchStats, wallTime } from './stats.js';

/** Prefetch requests in flight at most, whatever `threads` says (the client keeps 32 per origin). */
export const kMaxPrefetchInflight = 16;

export type PrefetchSource = 'readahead' | 'files' | 'all';

export interface PrefetchJob {
  blob: CachedBlob;
  range: FetchRange;
  source: PrefetchSource;
}

interface Queued extends PrefetchJob {
  /** Wall clock when planned (upstream measures a request's time from its birth). */
  born: number;
}

export interface PrefetcherOptions {
  threads: number;
  /** Bytes per second, 0 = unlimited. */
  bandwidthLimit: number;
  demand?: DemandTracker | undefined;
  log: Logger;
}

export class Prefetcher {
  private _queue: Queued[] = [];
  private _head = 0;
  private readonly _stop = new AbortController();
  private readonly _pacer: Pacer;
  private readonly _workers: Promise<void>[] = [];
  private _wake: (() => void)[] = [];
  private _idle: (() => void)[] = [];
  /** Jobs taken from the queue and not finished (waiting for their slot, or in flight). */
  private _busy = 0;
  /** Fills of requests whose reply is in (their workers moved on). */
  private readonly _filling = new Set<Promise<void>>();
  private readonly _stats: PrefetchStats = emptyPrefetchStats();
  private _beginWall = 0;

  constructor(private readonly _o: PrefetcherOptions) {
    this._pacer = new Pacer(_o.bandwidthLimit);
    // Each worker's wait and each request it handed off listen on the stop signal until they
    // end (up to `threads` workers, each with fills running): no listener limit, no leak warning.
    setMaxListeners(0, this._stop.signal);
  }

  get stopped(): boolean {
    return this._stop.signal.aborted;
  }

  /** Appends planned ranges (behind what is queued); starts the workers on first use. */
  push(jobs: Iterable<PrefetchJob>): void {
    if (this.stopped) return;
    const born = Date.now();
    for (const j of jobs) {
      this._queue.push({ ...j, born });
      this._stats.prefetch_total_size += j.range.length;
    }
    const want = Math.max(1, Math.min(this._o.threads, kMaxPrefetchInflight));
    while (this._workers.length < want) this._workers.push(this._work(this._workers.length));
    const wake = this._wake;
    this._wake = [];
    for (const w of wake) w();
  }

  stats(): PrefetchStats {
    return { ...this._stats, prefetch_pending_requests: this._queue.length - this._head };
  }

  /** Resolves when nothing is queued or in flight (or prefetch stopped). */
  whenIdle(): Promise<void> {
    if (this._isIdle()) return Promise.resolve();
    return new Promise((resolve) => this._idle.push(resolve));
  }

  /** Drops what is queued, aborts the requests no on-demand read joined, waits for the workers. */
  async stop(): Promise<void> {
    if (!this.stopped) {
      this._stop.abort();
      this._queue = [];
      this._head = 0;
      for (const w of this._wake) w();
      this._wake = [];
    }
    await Promise.allSettled(this._workers);
    await Promise.allSettled([...this._filling]);
    this._settleIdle();
  }

  private _isIdle(): boolean {
    return this.stopped || (this._head >= this._queue.length && this._busy === 0);
  }

  private _settleIdle(): void {
    if (!this._isIdle()) return;
    const idle = this._idle;
    this._idle = [];
    for (const f of idle) f();
  }

  private _next(): Queued | undefined {
    if (this._head >= this._queue.length) return undefined;
    const j = this._queue[this._head++];
    // Drop the consumed prefix now and then, so a long run does not keep every job alive.
    if (this._head > 1024 && this._head * 2 > this._queue.length) {
      this._queue = this._queue.slice(this._head);
      this._head = 0;
    }
    return j;
  }

  private async _work(id: number): Promise<void> {
    this._stats.prefetch_workers++;
    const signal = this._stop.signal;
    try {
      while (!signal.aborted) {
        const job = this._next();
        if (!job) {
          this._settleIdle();
          await new Promise<void>((resolve) => this._wake.push(resolve));
          continue;
        }
        this._busy++;
        let handedOff = false;
        try {
          // Worker 0 keeps prefetch moving; the rest give the link to on-demand reads.
          if (id > 0) await this._o.demand?.whenIdle(signal);
          const todo = job.blob.plannedTodo(job.range);
          if (!todo) {
            this._stats.prefetch_skipped_requests++;
            continue;
          }
          await this._pacer.take(todo.length, signal);
          if (signal.aborted) break;
          // The worker moves on once the response is in; the fill finishes on its own (and
          // keeps the job counted busy until then).
          let read!: () => void;
          const gotReply = new Promise<void>((resolve) => (read = resolve));
          const sent = this._send(job, signal, read).finally(() => {
            this._busy--;
            this._settleIdle();
          });
          this._filling.add(sent);
          void sent.finally(() => this._filling.delete(sent)).catch(() => undefined);
          handedOff = true;
          await gotReply;
        } finally {
          if (!handedOff) this._busy--;
        }
      }
    } finally {
      this._stats.prefetch_workers--;
    }
  }

  private async _send(job: Queued, signal: AbortSignal, onRead: () => void): Promise<void> {
    if (this._beginWall === 0) {
      this._beginWall = Date.now();
      const t = wallTime(this._beginWall);
      this._stats.prefetch_begin_time_secs = t.secs;
      this._stats.prefetch_begin_time_millis = t.millis;
    }
    const out = await job.blob.fetchPlanned(job.range, signal, onRead);
    if (out.bytes === 0) {
      this._stats.prefetch_skipped_requests++;
      return;
    }
    const s = this._stats;
    s.prefetch_requests_count++;
    if (out.read) {
      s.prefetch_data_amount += out.bytes;
      s.prefetch_unmerged_chunks += out.filled + out.failed;
    }
    // A request stop() aborted is no failure.
    if (out.failed > 0 && !signal.aborted) s.prefetch_failed_requests++;
    const now = Date.now();
    s.prefetch_cumulative_time_millis += Math.max(0, now - job.born);
    const t = wallTime(now);
    s.prefetch_end_time_secs = t.secs;
    s.prefetch_end_time_millis = t.millis;
    this._o.log.trace(() => `prefetch (${job.source}): blob ${job.blob.info.blobId} offset ${job.range.offset} length ${out.bytes}: ${out.filled} chunk(s) filled, ${out.failed} failed`);
  }
}
