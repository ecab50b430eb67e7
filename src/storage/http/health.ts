/**
 * Periodic health probe of a proxy or mirror: a timer (unref'd, so it never keeps the process
 * alive) that runs the probe every `intervalMs`, skipped while the route has not been used for
 * `pauseAfterMs` (upstream's check_pause_elapsed: an idle daemon sends no pings) and, for
 * mirrors, while the route is healthy (only unhealthy mirrors are pinged back to health).
 */
import type { HttpClient } from './client.js';

/** A probe that GETs `url` (bounded by `timeoutMs`) and judges the status; errors are unhealthy. */
export function httpProbe(
  client: HttpClient,
  url: URL,
  timeoutMs: number,
  healthy: (status: number) => boolean,
  headers: Record<string, string> = {},
): HealthOptions['probe'] {
  return async (signal) => {
    try {
      const res = await client.request({ method: 'GET', url, headers, signal: AbortSignal.any([signal, AbortSignal.timeout(Math.max(timeoutMs, 1000))]), maxBody: 64 * 1024 });
      return healthy(res.status);
    } catch {
      return false;
    }
  };
}

export interface HealthOptions {
  intervalMs: number;
  pauseAfterMs: number;
  /** Probe only while unhealthy (mirrors); the proxy is probed in both states. */
  onlyWhenUnhealthy: boolean;
  /** One probe: true = healthy. Must not throw. */
  probe: (signal: AbortSignal) => Promise<boolean>;
  onChange: (healthy: boolean) => void;
}

export class HealthCheck {
  private _healthy = true;
  private _lastUse = Date.now();
  private _timer: NodeJS.Timeout | undefined;
  private _running = false;
  private readonly _stop = new AbortController();

  constructor(private readonly _o: HealthOptions) {}

  get healthy(): boolean {
    return this._healthy;
  }

  /** Marks the route used now (resumes paused checks). */
  touch(): void {
    this._lastUse = Date.now();
  }

  /** Sets the state from request outcomes (mirror failure_limit); reports transitions. */
  set(healthy: boolean): void {
    if (healthy === this._healthy) return;
    this._healthy = healthy;
    this._o.onChange(healthy);
  }

  start(): void {
    if (this._timer || this._o.intervalMs <= 0) return;
    this._timer = setInterval(() => void this.check(), this._o.intervalMs);
    this._timer.unref();
  }

  /** One check now (also what the timer runs); resolves when it is done. */
  async check(): Promise<void> {
    if (this._running || this._stop.signal.aborted) return;
    if (Date.now() - this._lastUse > this._o.pauseAfterMs) return;
    if (this._o.onlyWhenUnhealthy && this._healthy) return;
    this._running = true;
    try {
      const ok = await this._o.probe(this._stop.signal);
      if (!this._stop.signal.aborted) this.set(ok);
    } finally {
      this._running = false;
    }
  }

  stop(): void {
    this._stop.abort();
    if (this._timer) clearInterval(this._timer);
    this._timer = undefined;
  }
}
