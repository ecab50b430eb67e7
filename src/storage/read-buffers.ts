/**
 * Reused memory for large backend reads (local backends read into it; the fill decodes from it).
 *
 * Why: every fresh multi-MiB Buffer is a new ArrayBuffer that V8 counts as external memory, and
 * once enough of it was allocated since the last full GC, V8 runs a mark-compact on the event
 * loop ("external memory pressure") whose pause freeing those backing stores lasted 15-45 ms
 * during a 256 MiB validated cold read. Handing the same ArrayBuffers round keeps a cold read at
 * no new external memory once the pool is warm, so no such collection is due.
 *
 * Invariant: a buffer is lent to one reader at a time; `release` takes back only what `acquire`
 * lent and was not released since (a second release of the same memory is ignored, never a
 * second lender). Free buffers are bounded (`maxRetained`) and dropped after `idleMs` without an
 * acquire, so an idle daemon gives the memory back.
 */

/** Smaller reads come from Node's allocator: they put little pressure on the collector. */
export const kMinPooledRead = 256 * 1024;
export const kDefaultMaxRetained = 64 * 1024 * 1024;
export const kDefaultIdleMs = 5000;

export interface ReadBufferPoolOptions {
  /** Free bytes kept for reuse at most. */
  maxRetained?: number;
  /** Free buffers are dropped after this long without an acquire. */
  idleMs?: number;
}

export interface ReadBufferStats {
  /** Buffers created (fresh external memory). */
  allocated: number;
  /** Acquires served by a buffer that was lent before. */
  reused: number;
  /** Bytes held free for reuse now. */
  retainedBytes: number;
}

/**
 * The capacity a read of `length` bytes gets: rounded up to a quarter of its power of two (at
 * most 25% more), so reads of similar sizes share buffers.
 */
export function capacityFor(length: number): number {
  const pow = 2 ** Math.floor(Math.log2(length));
  const step = Math.max(1, pow / 4);
  return Math.ceil(length / step) * step;
}

export class ReadBufferPool {
  private readonly _free = new Map<number, ArrayBuffer[]>();
  /** Lent now; weak, so a buffer never given back (a failed read) is simply collected. */
  private readonly _lent = new WeakSet<ArrayBuffer>();
  private readonly _maxRetained: number;
  private readonly _idleMs: number;
  private _retained = 0;
  private _allocated = 0;
  private _reused = 0;
  private _lastAcquire = 0;
  private _timer: NodeJS.Timeout | undefined;

  constructor(o: ReadBufferPoolOptions = {}) {
    this._maxRetained = o.maxRetained ?? kDefaultMaxRetained;
    this._idleMs = o.idleMs ?? kDefaultIdleMs;
  }

  /** A buffer of exactly `length` bytes (contents undefined); pooled from kMinPooledRead up. */
  acquire(length: number): Buffer {
    if (length < kMinPooledRead) return Buffer.allocUnsafe(length);
    this._lastAcquire = performance.now();
    const cap = capacityFor(length);
    const free = this._free.get(cap);
    let ab = free?.pop();
    if (ab) {
      this._retained -= cap;
      this._reused++;
    } else {
      ab = Buffer.allocUnsafeSlow(cap).buffer;
      this._allocated++;
    }
    this._lent.add(ab);
    return Buffer.from(ab, 0, length);
  }

  /**
   * Gives back a buffer from acquire once nothing reads or writes it any more. A buffer whose
   * reader may still write it (a failed read) is not given back: the collector takes it.
   */
  release(buf: Buffer): void {
    const ab = buf.buffer as ArrayBuffer;
    if (!this._lent.delete(ab)) return;
    const cap = ab.byteLength;
    if (this._retained + cap > this._maxRetained) return;
    let free = this._free.get(cap);
    if (!free) {
      free = [];
      this._free.set(cap, free);
    }
    free.push(ab);
    this._retained += cap;
    this._armTrim();
  }

  /** Drops every free buffer (lent ones are dropped when they come back past the bound). */
  trim(): void {
    this._free.clear();
    this._retained = 0;
    if (this._timer) clearTimeout(this._timer);
    this._timer = undefined;
  }

  stats(): ReadBufferStats {
    return { allocated: this._allocated, reused: this._reused, retainedBytes: this._retained };
  }

  private _armTrim(): void {
    if (this._timer) return;
    const check = (): void => {
      this._timer = undefined;
      if (this._retained === 0) return;
      const idle = performance.now() - this._lastAcquire;
      if (idle >= this._idleMs) this.trim();
      else this._schedule(check, this._idleMs - idle);
    };
    this._schedule(check, this._idleMs);
  }

  private _schedule(fn: () => void, ms: number): void {
    this._timer = setTimeout(fn, ms);
    // The pool never keeps the process alive.
    this._timer.unref();
  }
}
