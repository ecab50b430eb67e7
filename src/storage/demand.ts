/**
 * On-demand backend reads in flight, shared by every image of a storage service: prefetch
 * consults it before each request so that a guest's miss never queues behind prefetch traffic
 * (the prefetcher drops to one request in flight while any on-demand read runs).
 */
export class DemandTracker {
  private _active = 0;
  private _idle: (() => void)[] = [];

  /** On-demand backend reads running now. */
  get active(): number {
    return this._active;
  }

  begin(): void {
    this._active++;
  }

  end(): void {
    if (this._active > 0) this._active--;
    if (this._active > 0) return;
    const waiters = this._idle;
    this._idle = [];
    for (const w of waiters) w();
  }

  /** Resolves when no on-demand read runs (at once if none does) or when `signal` aborts. */
  whenIdle(signal?: AbortSignal): Promise<void> {
    if (this._active === 0 || signal?.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        signal?.removeEventListener('abort', done);
        resolve();
      };
      this._idle.push(done);
      signal?.addEventListener('abort', done, { once: true });
    });
  }
}
