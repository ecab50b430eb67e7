/**
 * The seed's `mirrors` (reference/nydusd.md, rafs-format.md §3.6; upstream removed them in July
 * 2025, the seed documents them): each request to the backend's origin tries the healthy mirrors
 * in order, with the URL's scheme/host/port replaced by the mirror's and the mirror's headers
 * added. A reply below 500 is the answer; a transport error or a 5xx counts a failure and the
 * next mirror (at last the origin) is tried. `failure_limit` failures mark a mirror unhealthy;
 * an unhealthy mirror is pinged every `health_check_interval` seconds (a reply below 500 brings
 * it back), not while the backend has been idle for `health_check_pause_elapsed` seconds.
 */
import type { MirrorConfig } from '../../config/index.js';
import type { Logger } from '../../util/logger.js';
import type { HttpClient, HttpRequest, HttpResponse } from './client.js';
import { HealthCheck, httpProbe } from './health.js';
import { displayUrl, parseHttpUrl } from './url.js';

export class Mirror {
  readonly base: URL;
  readonly health: HealthCheck;
  private _failures = 0;

  constructor(
    readonly cfg: MirrorConfig,
    client: HttpClient,
    private readonly _log: Logger,
    connectTimeoutMs: number,
    at: string,
  ) {
    this.base = parseHttpUrl(cfg.host, `${at}.host`);
    const ping = cfg.ping_url !== '' ? parseHttpUrl(cfg.ping_url, `${at}.ping_url`) : new URL('/v2', this.base);
    this.health = new HealthCheck({
      intervalMs: cfg.health_check_interval * 1000,
      pauseAfterMs: cfg.health_check_pause_elapsed * 1000,
      onlyWhenUnhealthy: true,
      // Anything below 500 means the mirror is back (upstream).
      probe: httpProbe(client, ping, connectTimeoutMs, (status) => status < 500, cfg.headers),
      onChange: (ok) => {
        if (ok) {
          this._failures = 0;
          this._log.info(`mirror ${displayUrl(this.base)} is healthy again`);
        } else {
          this._log.warn(`mirror ${displayUrl(this.base)} failed ${cfg.failure_limit} time(s); skipped until its health check passes`);
        }
      },
    });
    this.health.start();
  }

  /** The request URL with this mirror's scheme, host and port. */
  rewrite(url: URL): URL {
    const u = new URL(url.href);
    u.protocol = this.base.protocol;
    u.hostname = this.base.hostname;
    u.port = this.base.port;
    return u;
  }

  succeeded(): void {
    this._failures = 0;
  }

  failed(why: string): void {
    this._failures++;
    this._log.debug(() => `mirror ${displayUrl(this.base)}: ${why} (failure ${this._failures} of ${this.cfg.failure_limit})`);
    if (this._failures >= Math.max(1, this.cfg.failure_limit)) this.health.set(false);
  }
}

export class MirrorSet {
  constructor(readonly mirrors: readonly Mirror[]) {}

  /**
   * The first reply below 500 from a healthy mirror, or undefined when every mirror failed (the
   * caller then asks the origin). Aborts propagate.
   */
  async send(client: HttpClient, req: HttpRequest): Promise<HttpResponse | undefined> {
    for (const m of this.mirrors) {
      m.health.touch();
      if (!m.health.healthy) continue;
      try {
        const res = await client.request({ ...req, url: m.rewrite(req.url), headers: { ...req.headers, ...m.cfg.headers } });
        if (res.status < 500) {
          m.succeeded();
          return res;
        }
        m.failed(`HTTP ${res.status}`);
      } catch (err) {
        if (req.signal?.aborted) throw err;
        m.failed((err as Error).message);
      }
    }
    return undefined;
  }

  close(): void {
    for (const m of this.mirrors) m.health.stop();
  }
}
