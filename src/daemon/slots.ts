/**
 * The numbered resources a mount takes while it is attached: its node-id slot (1..255, see
 * fs/node-space.ts) and the native blob slots its cache files are registered under (0..4095).
 *
 * Mount slots are handed out round-robin, as upstream's fs_idx: a freed slot comes back only
 * after every other free slot was used once, which keeps a kernel's stale node id from meeting a
 * new mount in the same slot for as long as possible. Blob slots come back in the order they were
 * freed (FIFO) for the same reason; their safety does not depend on it (an unmount drops every
 * native handle that reads them before they are freed).
 */
export class MountSlots {
  private readonly _used = new Set<number>();
  private _next: number;

  constructor(
    private readonly _first: number,
    private readonly _last: number,
  ) {
    this._next = _first;
  }

  get inUse(): number {
    return this._used.size;
  }

  take(): number | undefined {
    const n = this._last - this._first + 1;
    for (let i = 0; i < n; i++) {
      const s = this._first + ((this._next - this._first + i) % n);
      if (!this._used.has(s)) {
        this._used.add(s);
        this._next = s === this._last ? this._first : s + 1;
        return s;
      }
    }
    return undefined;
  }

  give(slot: number): void {
    this._used.delete(slot);
  }
}

export class BlobSlots {
  /**
   * Slots never handed out are [_fresh, total), a counter: a daemon's start made a 4096-entry
   * free list, one push at a time, before its first mount. Freed slots queue behind them (FIFO).
   */
  private _fresh = 0;
  private readonly _freed: number[] = [];
  private _head = 0;

  constructor(readonly total: number) {}

  get available(): number {
    return this.total - this._fresh + this._freed.length - this._head;
  }

  /** `n` slots, or undefined (nothing taken) when fewer are free. */
  take(n: number): number[] | undefined {
    if (n > this.available) return undefined;
    const out: number[] = [];
    while (out.length < n && this._fresh < this.total) out.push(this._fresh++);
    const more = n - out.length;
    if (more > 0) {
      out.push(...this._freed.slice(this._head, this._head + more));
      this._head += more;
      if (this._head > 1024 && this._head * 2 > this._freed.length) {
        this._freed.splice(0, this._head);
        this._head = 0;
      }
    }
    return out;
  }

  give(slots: readonly number[]): void {
    this._freed.push(...slots);
  }
}
