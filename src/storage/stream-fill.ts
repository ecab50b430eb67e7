/**
 * Filling a range while its bytes arrive: each time the backend reports progress, the chunks
 * whose compressed bytes are all in go to the fill (cache-fill.ts) at once, so decoding and the
 * cache write overlap the rest of the transfer and a reader parked on an early chunk of a large
 * readahead request is woken without waiting for the whole request. A chunk is handed over once,
 * complete, and checked as any fill checks it (digest with validation on); the chunks left when
 * the request ends are filled from the final buffer, or fail with the request.
 */
import type { FillHost } from './cache-fill.js';
import { fillRange } from './cache-fill.js';
import type { FetchRange } from './fetch-plan.js';
import { rangeOf } from './fetch-plan.js';
import type { ChunkInfo } from './types.js';

export class StreamFill {
  private readonly _chunks: ChunkInfo[];
  /** Chunks before this index (in _chunks) were handed to a fill. */
  private _next = 0;
  private readonly _fills: Promise<void>[] = [];

  constructor(
    private readonly _h: FillHost,
    private readonly _r: FetchRange,
    /** Readahead: the fills yield to on-demand ones (cache-fill.ts fillRange). */
    private readonly _speculative = false,
  ) {
    this._chunks = [..._r.chunks].sort((a, b) => a.compressedOffset - b.compressedOffset);
  }

  /** Backend progress: `buf[0, bytes)` are the range's first bytes. */
  readonly progress = (buf: Buffer, bytes: number): void => {
    const start = this._next;
    let k = start;
    while (k < this._chunks.length) {
      const c = this._chunks[k] as ChunkInfo;
      if (c.compressedOffset + c.compressedSize - this._r.offset > bytes) break;
      k++;
    }
    if (k === start) return;
    this._next = k;
    this._fills.push(this._fill(this._chunks.slice(start, k), buf));
  };

  /** Chunks not handed to a fill (they share the request's fate). */
  pending(): ChunkInfo[] {
    return this._chunks.slice(this._next);
  }

  /** Fills what is left from the request's final buffer, then waits for every fill. */
  async finish(buf: Buffer): Promise<void> {
    const rest = this.pending();
    this._next = this._chunks.length;
    if (rest.length > 0) this._fills.push(this._fill(rest, buf));
    await Promise.all(this._fills);
  }

  private _fill(chunks: ChunkInfo[], buf: Buffer): Promise<void> {
    const sub = rangeOf(chunks);
    const at = sub.offset - this._r.offset;
    return fillRange(this._h, sub, buf.subarray(at, at + sub.length), this._speculative);
  }
}
