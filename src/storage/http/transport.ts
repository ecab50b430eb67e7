/**
 * How a network backend's requests travel: through the proxy (with fallback) or the mirrors (in
 * order, then the origin), or straight to the origin, all on one HttpClient. Built from the
 * fields every network backend shares (`timeout`, `connect_timeout`, `skip_verify`,
 * `ca_cert_files`, `proxy`, `mirrors`) plus the NYDUS_HEADER_* headers sent on every request.
 */
import type { MirrorConfig, ProxyConfig } from '../../config/index.js';
import { ConfigError } from '../../config/index.js';
import { NotSupportedError } from '../../util/errors.js';
import type { Logger } from '../../util/logger.js';
import { StorageError } from '../contract/errors.js';
import type { HttpClientOptions, HttpRequest, HttpResponse } from './client.js';
import { HttpClient } from './client.js';
import { Mirror, MirrorSet } from './mirrors.js';
import type { Priority } from './proxy.js';
import { ProxyRoute } from './proxy.js';

/** The config fields shared by the network backends (schema-common.ts netFields). */
export interface NetConfig {
  skip_verify: boolean;
  ca_cert_files: string[];
  timeout: number;
  connect_timeout: number;
  proxy: ProxyConfig;
  mirrors: MirrorConfig[];
}

export interface RouteOptions {
  /** Bypass proxy and mirrors (upstream: auth requests always go straight to the realm). */
  direct?: boolean;
  /** The URL is on the backend's own origin, so mirrors may serve it. */
  mirrorable?: boolean;
  priority?: Priority;
}

export interface TransportOptions {
  /** Config key of the backend section, for messages. */
  at: string;
  /** Headers on every request (User-Agent and NYDUS_HEADER_*). */
  headers: Record<string, string>;
  log: Logger;
  /** Connect to this Unix socket instead (http-proxy with a socket path). */
  socketPath?: string;
  /** Tests: name resolution override. */
  lookup?: HttpClientOptions['lookup'];
}

export class Transport {
  private constructor(
    readonly client: HttpClient,
    private readonly _proxy: ProxyRoute | undefined,
    private readonly _mirrors: MirrorSet | undefined,
    readonly baseHeaders: Readonly<Record<string, string>>,
  ) {}

  static async create(cfg: NetConfig, o: TransportOptions): Promise<Transport> {
    if (cfg.proxy.dragonfly_scheduler_endpoint !== '') throw new NotSupportedError(`${o.at}.proxy.dragonfly_scheduler_endpoint (Dragonfly SDK mode)`);
    if (cfg.proxy.url !== '' && cfg.mirrors.length > 0) {
      throw new ConfigError(`${o.at}: proxy and mirrors cannot be configured at the same time`);
    }
    const client = await HttpClient.create({
      timeoutMs: cfg.timeout * 1000,
      connectTimeoutMs: cfg.connect_timeout * 1000,
      caFiles: cfg.ca_cert_files,
      skipVerify: cfg.skip_verify,
      configKey: o.at,
      log: o.log,
      ...(o.socketPath === undefined ? {} : { socketPath: o.socketPath }),
      ...(o.lookup ? { lookup: o.lookup } : {}),
    });
    try {
      const connectMs = cfg.connect_timeout * 1000;
      const proxy = cfg.proxy.url !== '' ? new ProxyRoute(cfg.proxy, client, o.log.child('proxy'), connectMs, o.at) : undefined;
      const mirrors = cfg.mirrors.length > 0
        ? new MirrorSet(cfg.mirrors.map((m, i) => new Mirror(m, client, o.log.child('mirror'), connectMs, `${o.at}.mirrors[${i}]`)))
        : undefined;
      return new Transport(client, proxy, mirrors, o.headers);
    } catch (err) {
      await client.close();
      throw err;
    }
  }

  get proxy(): ProxyRoute | undefined {
    return this._proxy;
  }
  get mirrors(): MirrorSet | undefined {
    return this._mirrors;
  }
  get connectionsOpened(): number {
    return this.client.connectionsOpened;
  }

  /** The base headers with `extra` on top (what a signer must see before signing). */
  headers(extra: Record<string, string> = {}): Record<string, string> {
    return { ...this.baseHeaders, ...extra };
  }

  /** Sends `req` (whose headers already include the base headers) along its route. */
  async send(req: HttpRequest, route: RouteOptions = {}): Promise<HttpResponse> {
    if (!route.direct && this._proxy) {
      const out = await this._proxy.send(req, route.priority ?? 'ondemand');
      if (out.kind === 'response') return out.res;
      if (out.kind === 'refused') throw new StorageError('ERR_BACKEND', `${req.method} via proxy: ${out.why}`, { retryable: out.retryable });
    } else if (!route.direct && route.mirrorable && this._mirrors) {
      const res = await this._mirrors.send(this.client, req);
      if (res) return res;
    }
    return this.client.request(req);
  }

  async close(): Promise<void> {
    this._proxy?.close();
    this._mirrors?.close();
    await this.client.close();
  }
}
