/**
 * Sequential readahead on the demand path, for backends where every request costs a round trip
 * (registry, S3, OSS, http-proxy). A reader that walks a blob chunk after chunk otherwise waits
 * one request per amplify_io window: at queue depth 1 the link idles while the guest copies and
 * asks again. Once a blob's on-demand misses look sequential, the window ahead of the reader is
 * fetched in a few large ranged GETs (fewer, bigger requests: per-request cost dominates on
 * docker-registry) while the reader works through what is already there.
 *
 * Only what reaches the miss path is seen: chunks already cached are served natively and never
 * show up here. So the window is refilled when the reader touches (misses or joins) a chunk
 * within the second half of what was read ahead, or when it missed past its end; a reader faster
 * than the link joins in-flight chunks, which counts too.
 *
 * Random readers are left alone: a stream starts only after two misses each exactly one chunk
 * past the previous one, and anything that is neither forward progress nor a nearby out-of-order
 * miss of concurrent READs ends it. What is read ahead is bounded by the window (max 8 MiB of
 * compressed bytes per blob by default) and obeys the same checks as amplify_io (candidate
 * chunks: known, safe to fill, not cached, not in flight). Pure planning: no I/O.
 */
import type { FetchRange } from './fetch-plan.js';
import { effectiveBatch, mergeChunks, rangeOf } from './fetch-plan.js';
import type { ChunkInfo } from './types.js';

export interface ReadaheadOptions {
  /** Compressed bytes read ahead when a stream is first detected. */
  initialWindow: number;
  /** The window doubles on every refill up to this. */
  maxWindow: number;
  /** One ranged GET carries at most this much (a window goes out as several, in parallel). */
  requestBytes: number;
  /**
   * Readahead requests of one blob in flight at most (absent: the whole window at once). Local
   * backends decode on the fill threads on-demand misses use too: a bounded number of requests
   * keeps what a miss can find ahead of it bounded.
   */
  maxInflight?: number;
  /**
   * One request decodes at most this many uncompressed bytes (absent: no limit). Where the fill
   * threads decode (local backends), a request's cost is its uncompressed size: a well
   * compressed stretch must not become one long fill a reader waits through chunk by chunk
   * while the other thread idles.
   */
  requestUncompressed?: number;
}

export const kReadaheadDefaults: ReadaheadOptions = {
  initialWindow: 4 * 1024 * 1024,
  maxWindow: 8 * 1024 * 1024,
  requestBytes: 4 * 1024 * 1024,
};

/**
 * Local backends (localfs, localdisk): no round trip to hide, but at queue depth 1 every miss
 * pays the whole chain (upcall to JavaScript, planning, a fill thread waking, read and decode)
 * while the reader waits; reading ahead overlaps the next chunks' decode with the reader copying
 * this one. Requests of 1 MiB (or one amplify_io window when that is larger) and at most 1 MiB
 * to decode, so their chunks are stored and readable natively soon and a well compressed stretch
 * is spread over both fill threads instead of decoded by one while the reader waits chunk by
 * chunk (an 8-chunk request of the cold bench took 14 ms that way); three in flight, so both fill
 * threads of a 2-core machine work and a third request is queued when one finishes, without a
 * turn of the event loop in between. Those threads are shared with on-demand misses, which the
 * pool runs before queued readahead (fill_pool.h): a miss waits for the readahead fills already
 * running, not for queued ones (unless one was passed over by eight misses in a row).
 */
export const kLocalReadaheadDefaults: ReadaheadOptions = {
  initialWindow: 4 * 1024 * 1024,
  maxWindow: 8 * 1024 * 1024,
  requestBytes: 1024 * 1024,
  maxInflight: 3,
  requestUncompressed: 1024 * 1024,
};

/** Misses this many chunks behind the furthest one still belong to the stream (parallel READs). */
const kBehind = 32;
/** Forward steps of exactly one chunk needed before readahead starts. */
const kStreakToStart = 2;
/** Chunk indexes one plan walks at most (a long cached stretch ends the walk). */
const kMaxWalk = 4096;

/** What the planner sees of a blob. */
export interface ReadaheadView {
  chunkCount: number;
  batchSize: number;
  /** Chunk i from the metadata, when known and safe to fill. */
  chunkAt(i: number): ChunkInfo | undefined;
  /** Chunk i when it may be fetched ahead: known, safe, neither cached nor in flight. */
  candidate(i: number): ChunkInfo | undefined;
}

export class SequentialReadahead {
  /** Furthest chunk index an on-demand read touched. */
  private _last = -1;
  /** One past the furthest chunk fetched for the stream (misses, amplify_io, readahead). */
  private _reach = 0;
  private _streak = 0;
  private _window: number;
  /** One past the last chunk index read ahead (0: none yet). */
  private _end = 0;
  /** First chunk index of the last top-up; the window grows once the reader gets there. */
  private _topUpStart = -1;
  /** One past the last chunk index readahead may fetch (the end of the file being read). */
  private _limit = Infinity;
  /** Readahead requests handed out and not yet delivered or failed (survives stop()). */
  private _running = 0;

  constructor(private readonly _o: ReadaheadOptions = kReadaheadDefaults) {
    this._window = _o.initialWindow;
  }

  /** True while a stream is detected. */
  get streaming(): boolean {
    return this._streak >= kStreakToStart;
  }

  /**
   * Notes the chunks one on-demand read missed or joined (indexes, any order; `fetchedEnd` is one
   * past the furthest chunk its own fetch covers, amplify_io included; `aheadEnd` one past the
   * last chunk of the file being read, when known) and returns the ranges to read ahead now
   * (empty: none).
   */
  touched(touched: readonly number[], fetchedEnd: number, view: ReadaheadView, aheadEnd?: number): FetchRange[] {
    if (touched.length === 0) return [];
    // The file's end, when the reader said (the next file in the blob is not read ahead).
    this._limit = aheadEnd ?? Infinity;
    let lo = Infinity;
    let hi = -1;
    for (const i of touched) {
      lo = Math.min(lo, i);
      hi = Math.max(hi, i);
    }
    // Forward: the next chunk, or any chunk up to the end of what the stream fetched (chunks
    // fetched by amplify_io or readahead are served natively and never reach us).
    const forward = this._last >= 0 && lo > this._last && lo <= Math.max(this._last + 1, this._reach);
    const nearby = this._last >= 0 && lo <= this._last && lo >= this._last - kBehind;
    if (forward) {
      this._streak++;
    } else if (!nearby) {
      this.stop();
    }
    this._last = Math.max(this._last, hi);
    this._reach = Math.max(this._reach, fetchedEnd, hi + 1);
    // The window grows only with what the reader consumed, not with how fast we fetched: a
    // stream that ends soon (a small file) wastes at most the first window.
    if (this._topUpStart >= 0 && hi >= this._topUpStart) {
      this._window = Math.min(this._window * 2, this._o.maxWindow);
      this._topUpStart = -1;
    }
    return this._topUp(view);
  }

  /**
   * A readahead request delivered its bytes: the reader may be consuming what was there without
   * missing (invisible here), so the window ahead of the last chunk it touched is topped up.
   */
  delivered(view: ReadaheadView): FetchRange[] {
    this._running = Math.max(0, this._running - 1);
    return this._topUp(view);
  }

  /** A readahead request failed: the stream ends (its chunks are fetched on demand). */
  failed(): void {
    this._running = Math.max(0, this._running - 1);
    this.stop();
  }

  /** Readahead requests in flight (handed out, not yet delivered or failed). */
  get running(): number {
    return this._running;
  }

  /** Ends the stream (the reader went elsewhere); requests in flight finish. */
  stop(): void {
    this._last = -1;
    this._reach = 0;
    this._streak = 0;
    this._window = this._o.initialWindow;
    this._end = 0;
    this._topUpStart = -1;
  }

  /**
   * Plans what keeps `window` compressed bytes fetched or in flight past the last chunk touched;
   * nothing when less than a quarter window (or one request) is missing, so a top-up is always a
   * few large requests, never a trickle of small ones.
   */
  private _topUp(view: ReadaheadView): FetchRange[] {
    if (!this.streaming) return [];
    const slots = (this._o.maxInflight ?? Infinity) - this._running;
    if (slots <= 0) return [];
    const first = view.chunkAt(this._last + 1);
    if (!first) return [];
    const limit = first.compressedOffset + this._window;
    const from = Math.max(this._last + 1, this._end, this._reach);
    const chunks: ChunkInfo[] = [];
    let bytes = 0;
    let i = from;
    let atEnd = false;
    for (; i - from < kMaxWalk; i++) {
      const c = i < view.chunkCount && i < this._limit ? view.chunkAt(i) : undefined;
      if (!c) {
        atEnd = true;
        break;
      }
      if (c.compressedOffset + c.compressedSize > limit) break;
      if (!view.candidate(i)) continue;
      chunks.push(c);
      bytes += c.compressedSize;
    }
    if (chunks.length === 0 || (!atEnd && bytes < Math.min(this._window >> 2, this._o.requestBytes))) return [];
    // mergeChunks' gap rule (batch >> 7) keeps each request to a run of neighbouring chunks.
    let ranges = mergeChunks(chunks, view.batchSize, Math.max(this._o.requestBytes, effectiveBatch(view.batchSize)));
    if (this._o.requestUncompressed !== undefined) ranges = splitUncompressed(ranges, this._o.requestUncompressed);
    let end = i;
    if (ranges.length > slots) {
      // The rest of the window is planned again when a slot frees (delivered()).
      ranges = ranges.slice(0, slots);
      end = 0;
      for (const r of ranges) for (const c of r.chunks) end = Math.max(end, c.chunkIndex + 1);
    }
    this._end = end;
    this._reach = Math.max(this._reach, end);
    if (this._topUpStart < 0) this._topUpStart = ranges[0]?.chunks[0]?.chunkIndex ?? end;
    this._running += ranges.length;
    return ranges;
  }
}

/** Splits each range (its chunks in compressed order) so none holds more than `cap` uncompressed bytes (one chunk at least). */
export function splitUncompressed(ranges: FetchRange[], cap: number): FetchRange[] {
  const out: FetchRange[] = [];
  for (const r of ranges) {
    let cur: ChunkInfo[] = [];
    let bytes = 0;
    const flush = (): void => {
      if (cur.length === 0) return;
      out.push(cur.length === r.chunks.length ? r : rangeOf(cur));
      cur = [];
      bytes = 0;
    };
    for (const c of r.chunks) {
      if (cur.length > 0 && bytes + c.uncompressedSize > cap) flush();
      cur.push(c);
      bytes += c.uncompressedSize;
    }
    flush();
  }
  return out;
}
