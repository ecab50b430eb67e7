/**
 * The `proxy` sub-config (reference/rafs-format.md §3.6): an HTTP proxy in front of the backend,
 * typically Dragonfly's dfdaemon. Requests go through it while it is healthy; a transport error
 * or a 5xx from it falls back to the origin when `fallback` is on. `ping_url` is fetched every
 * `check_interval` seconds (2xx/3xx = healthy), not while the backend has been idle for
 * `check_pause_elapsed` seconds. `use_http` turns https origins into http so the proxy can see
 * (and cache) the request instead of tunnelling it.
 */
import type { ProxyConfig } from '../../config/index.js';
import type { Logger } from '../../util/logger.js';
import type { HttpClient, HttpRequest, HttpResponse } from './client.js';
import { header } from './client.js';
import { HealthCheck, httpProbe } from './health.js';
import { displayUrl, parseHttpUrl } from './url.js';

export type Priority = 'ondemand' | 'prefetch';

/** Dragonfly's scheduling hints (upstream: priority 6 on demand, 3 for prefetch). */
export function dragonflyHeaders(priority: Priority): Record<string, string> {
  return {
    'X-Dragonfly-Priority': priority === 'prefetch' ? '3' : '6',
    'X-Dragonfly-Use-P2P': 'true',
    ...(priority === 'prefetch' ? { 'X-Dragonfly-Prefetch': 'true' } : {}),
  };
}

export type ProxyOutcome =
  | { kind: 'response'; res: HttpResponse }
  | { kind: 'fallback'; why: string }
  /** Fallback is off; `retryable` false for dfdaemon's own 403 (upstream does not retry it). */
  | { kind: 'refused'; why: string; retryable: boolean };

export class ProxyRoute {
  readonly url: URL;
  private readonly _health: HealthCheck | undefined;
  private _warnedFallback = false;

  constructor(
    private readonly _cfg: ProxyConfig,
    private readonly _client: HttpClient,
    private readonly _log: Logger,
    connectTimeoutMs: number,
    at: string,
  ) {
    this.url = parseHttpUrl(_cfg.url, `${at}.proxy.url`);
    if (_cfg.ping_url !== '') {
      const ping = parseHttpUrl(_cfg.ping_url, `${at}.proxy.ping_url`);
      this._health = new HealthCheck({
        intervalMs: _cfg.check_interval * 1000,
        pauseAfterMs: _cfg.check_pause_elapsed * 1000,
        onlyWhenUnhealthy: false,
        // 2xx/3xx is healthy (upstream), probed within connect_timeout.
        probe: httpProbe(_client, ping, connectTimeoutMs, (status) => status >= 200 && status < 400),
        onChange: (ok) => {
          if (ok) this._log.info(`proxy ${displayUrl(this.url)} is healthy again`);
          else this._log.warn(`proxy ${displayUrl(this.url)} failed its health check (${displayUrl(ping)})${_cfg.fallback ? '; requests go to the origin' : ''}`);
          this._warnedFallback = false;
        },
      });
      this._health.start();
    }
  }

  get healthy(): boolean {
    return this._health?.healthy ?? true;
  }

  /** Runs one health check now (tests; the timer does the same). */
  check(): Promise<void> {
    return this._health?.check() ?? Promise.resolve();
  }

  /**
   * Sends `req` through the proxy. 'fallback' means: go to the origin (fallback on and the proxy
   * unhealthy, failing or answering 5xx); 'refused': the proxy failed and fallback is off.
   */
  async send(req: HttpRequest, priority: Priority): Promise<ProxyOutcome> {
    this._health?.touch();
    if (!this.healthy) return this._fail('the proxy is not healthy');
    let url = req.url;
    if (this._cfg.use_http && url.protocol === 'https:') {
      url = new URL(url.href);
      url.protocol = 'http:';
    }
    let res: HttpResponse;
    try {
      res = await this._client.request({ ...req, url, via: this.url, headers: { ...req.headers, ...dragonflyHeaders(priority) } });
    } catch (err) {
      if (req.signal?.aborted) throw err;
      if (!this._cfg.fallback) throw err;
      return this._fail(`the proxy failed: ${(err as Error).message}`);
    }
    // dfdaemon marks errors of its own (rate limits, refusals) apart from the origin's.
    if (header(res, 'x-dragonfly-error-type') === 'proxy' && (res.status === 429 || res.status === 403)) {
      return this._fail(`the proxy refused the request (HTTP ${res.status})`, res.status === 429);
    }
    if (res.status >= 500 && this._cfg.fallback) return this._fail(`the proxy answered HTTP ${res.status}`);
    this._warnedFallback = false;
    return { kind: 'response', res };
  }

  private _fail(why: string, retryable = true): ProxyOutcome {
    if (!this._cfg.fallback) return { kind: 'refused', why: `${why} and fallback is disabled`, retryable };
    if (!this._warnedFallback) {
      this._warnedFallback = true;
      this._log.warn(`proxy ${displayUrl(this.url)}: ${why}; falling back to the origin`);
    } else {
      this._log.debug(() => `proxy ${displayUrl(this.url)}: ${why}; falling back to the origin`);
    }
    return { kind: 'fallback', why };
  }

  close(): void {
    this._health?.stop();
  }
}
