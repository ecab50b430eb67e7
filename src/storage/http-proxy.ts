/**
 * `http-proxy` backend (reference/rafs-format.md §3.8): HEAD for the size, GET with Range for
 * data.
 * - `addr` http(s)://host[:port]: blobs at `{addr}{path}/{blob_id}`, through the shared
 *   transport (so the proxy and mirrors sub-configs apply);
 * - `addr` an absolute Unix socket path: every request goes to path `/` on that socket (as
 *   upstream: one blob per socket; `path` is ignored).
 */
import { stat } from 'node:fs/promises';

import type { HttpProxyConfig } from '../config/index.js';
import { ConfigError } from '../config/index.js';
import type { Logger } from '../util/logger.js';
import { errnoCode } from './contract/errors.js';
import type { BlobReply, BlobRequest } from './http/blob-http.js';
import { HttpBlobBackend } from './http/blob-http.js';
import { Transport } from './http/transport.js';
import { joinPath } from './http/url.js';

export class HttpProxyBackend extends HttpBlobBackend {
  readonly type = 'http-proxy';

  private constructor(
    transport: Transport,
    private readonly _url: (blobId: string) => URL,
    private readonly _mirrorable: boolean,
  ) {
    super(transport);
  }

  static async create(cfg: HttpProxyConfig, o: { at: string; headers: Record<string, string>; log: Logger }): Promise<HttpProxyBackend> {
    if (cfg.addr.startsWith('/')) {
      let isSocket: boolean;
      try {
        isSocket = (await stat(cfg.addr)).isSocket();
      } catch (err) {
        throw new ConfigError(`${o.at}.addr ${cfg.addr}: ${errnoCode(err) === 'ENOENT' ? 'no such socket' : `cannot stat (${errnoCode(err)})`}`, { cause: err });
      }
      if (!isSocket) throw new ConfigError(`${o.at}.addr ${cfg.addr}: not a Unix socket`);
      const transport = await Transport.create(cfg, { ...o, socketPath: cfg.addr });
      const url = new URL('http://localhost/');
      return new HttpProxyBackend(transport, () => url, false);
    }
    let base: URL;
    try {
      base = new URL(cfg.addr);
    } catch {
      throw new ConfigError(`${o.at}.addr ${JSON.stringify(cfg.addr)}: not a URL`);
    }
    if ((base.protocol !== 'http:' && base.protocol !== 'https:') || base.search !== '' || base.username !== '') {
      throw new ConfigError(`${o.at}.addr: must be http(s)://host[:port][/path] or an absolute Unix socket path`);
    }
    const transport = await Transport.create(cfg, o);
    return new HttpProxyBackend(transport, (id) => new URL(joinPath(base.pathname, cfg.path, encodeURIComponent(id)), base), true);
  }

  protected async send(req: BlobRequest): Promise<BlobReply> {
    const url = this._url(req.blobId);
    const res = await this.transport.send(
      { method: req.method, url, headers: this.transport.headers(req.headers), signal: req.signal, maxBody: req.maxBody, onBody: req.onBody },
      { mirrorable: this._mirrorable, priority: req.priority },
    );
    return { res, url };
  }
}
