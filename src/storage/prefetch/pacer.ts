/**
 * Prefetch bandwidth (`bandwidth_limit` / `bandwidth_rate`, bytes per second): each request is
 * given the next free slot of a virtual timeline advancing by size / rate, and waits for it.
 * Unlike upstream's leaky bucket (which starts full: one second of burst), nothing accumulates
 * while prefetch is idle, so the rate holds over any window longer than one request.
 */
import { setTimeout as sleep } from 'node:timers/promises';

export class Pacer {
  /** When the next request may start, in `now()` milliseconds. */
  private _next = 0;

  constructor(
    private readonly _bytesPerSecond: number,
    private readonly _now: () => number = () => performance.now(),
  ) {}

  get limited(): boolean {
    return this._bytesPerSecond > 0;
  }

  /** Waits for the slot of a `bytes`-sized request (at once when unlimited); early on abort. */
  async take(bytes: number, signal?: AbortSignal): Promise<void> {
    if (this._bytesPerSecond <= 0) return;
    const now = this._now();
    const at = Math.max(now, this._next);
    this._next = at + (bytes * 1000) / this._bytesPerSecond;
    if (at > now) await sleep(at - now, undefined, signal ? { signal } : {}).catch(() => undefined);
  }
}
