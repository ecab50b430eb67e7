/**
 * `registry` backend (reference/rafs-format.md §3.5): blobs at
 * `{scheme}://{host}/v2/{repo}/blobs/sha256:{blob_id}`, HEAD for the size, GET with Range for
 * data, through the shared transport (proxy or mirrors).
 *
 * - Auth: the cached header is sent; a 401 to a request that carried one is retried once
 *   without it (Harbor answers an expired token with a Basic challenge), then the
 *   `WWW-Authenticate` challenge is answered (Basic from `auth`, or a Bearer token from the
 *   realm: POST form first, GET on failure, remembered per realm) and the request re-sent.
 *   Token requests never go through the proxy or mirrors.
 * - The first request runs alone, so the token it fetches is cached before parallel requests go.
 * - Redirects (301/302/303/307/308): `Location` (scheme and host overridden by
 *   `blob_url_scheme` / `blob_redirected_host`) is cached per blob and fetched without the
 *   registry's credentials; a cached location answering 401/403 is dropped and the whole flow
 *   redone once. At most 5 hops (a loop fails the attempt).
 * - `skip_verify` on https: a TLS handshake that meets a plain-http server switches the backend
 *   to http for good (upstream).
 */
import type { RegistryConfig } from '../../config/index.js';
import { ConfigError } from '../../config/index.js';
import type { Logger } from '../../util/logger.js';
import { StorageError } from '../contract/errors.js';
import type { BlobReply, BlobRequest } from '../http/blob-http.js';
import { HttpBlobBackend } from '../http/blob-http.js';
import type { HttpResponse } from '../http/client.js';
import { header, isTlsToPlainHttp } from '../http/client.js';
import type { Transport } from '../http/transport.js';
import { displayUrl } from '../http/url.js';
import type { AuthUpdate, Challenge, Token } from './auth.js';
import { basicCredentials, parseChallenge, RegistryAuth } from './auth.js';

const kRedirects = new Set([301, 302, 303, 307, 308]);
const kMaxHops = 5;
const kClientId = 'nydus-registry-client';
const kMaxTokenReply = 1024 * 1024;

export class RegistryBackend extends HttpBlobBackend {
  readonly type = 'registry';
  readonly auth: RegistryAuth;
  private _scheme: 'http' | 'https';
  private readonly _redirects = new Map<string, URL>();
  /** Realm hosts whose token endpoint only answers GET. */
  private readonly _getRealms = new Set<string>();
  private _first: Promise<void> | undefined;
  private _firstDone = false;

  constructor(
    private readonly _cfg: RegistryConfig,
    transport: Transport,
    private readonly _log: Logger,
    private readonly _at = 'backend.registry',
  ) {
    super(transport);
    if (!/^[^/?#@\s]+$/.test(_cfg.host)) throw new ConfigError(`${_at}.host ${JSON.stringify(_cfg.host)}: not a host[:port]`);
    if (!/^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$/.test(_cfg.repo)) {
      throw new ConfigError(`${_at}.repo ${JSON.stringify(_cfg.repo)}: not a repository name (namespace/repo, lower case, no tag)`);
    }
    this._scheme = _cfg.scheme === 'http' ? 'http' : 'https';
    this.auth = new RegistryAuth(_cfg, (c, basic, signal) => this._fetchToken(c, basic, signal), _log, _at);
  }

  /** Hot reload of the credentials (see RegistryAuth.reload). */
  reloadAuth(update: AuthUpdate): void {
    this.auth.reload(update);
  }

  private _blobUrl(blobId: string): URL {
    if (!/^[0-9a-f]{64}$/.test(blobId)) {
      throw new StorageError('ERR_BLOB_NOT_FOUND', `blob ${blobId}: not a sha256 digest, a registry cannot hold it`);
    }
    return new URL(`${this._scheme}://${this._cfg.host}/v2/${this._cfg.repo}/blobs/sha256:${blobId}`);
  }

  private _origin(): string {
    return new URL(`${this._scheme}://${this._cfg.host}/`).origin;
  }

  protected async send(req: BlobRequest): Promise<BlobReply> {
    if (this._firstDone) return this._send(req);
    if (this._first) {
      await this._first;
      return this._send(req);
    }
    let release!: () => void;
    this._first = new Promise((resolve) => (release = resolve));
    try {
      return await this._send(req);
    } finally {
      this._firstDone = true;
      release();
    }
  }

  private async _send(req: BlobRequest): Promise<BlobReply> {
    const cached = this._redirects.get(req.blobId);
    let url = cached ?? this._blobUrl(req.blobId);
    let redoneFresh = false;
    for (let hop = 0; ; hop++) {
      const foreign = url.origin !== this._origin();
      let res: HttpResponse;
      try {
        res = foreign ? await this._plain(req, url) : await this._authed(req, url);
      } catch (err) {
        if (!foreign && this._scheme === 'https' && this._cfg.skip_verify && isTlsToPlainHttp(err)) {
          this._log.warn(`registry ${this._cfg.host} speaks plain http; switching to http (skip_verify)`);
          this._scheme = 'http';
          url = this._blobUrl(req.blobId);
          continue;
        }
        throw err;
      }
      if (kRedirects.has(res.status)) {
        if (hop >= kMaxHops) {
          this._redirects.delete(req.blobId);
          throw new StorageError('ERR_BACKEND', `blob ${req.blobId}: ${req.method} ${displayUrl(url)}: more than ${kMaxHops} redirects (a redirect loop?)`, { retryable: true });
        }
        url = this._redirectTarget(req, url, res);
        if (req.method === 'GET') this._redirects.set(req.blobId, url);
        continue;
      }
      if (foreign && (res.status === 401 || res.status === 403) && !redoneFresh) {
        // An expired presigned location: ask the registry again.
        this._log.debug(() => `blob ${req.blobId}: redirected location answered HTTP ${res.status}; asking the registry again`);
        this._redirects.delete(req.blobId);
        redoneFresh = true;
        url = this._blobUrl(req.blobId);
        continue;
      }
      if (res.status >= 400) this._redirects.delete(req.blobId);
      return { res, url };
    }
  }

  private _redirectTarget(req: BlobRequest, from: URL, res: HttpResponse): URL {
    const loc = header(res, 'location');
    let next: URL;
    try {
      if (loc === undefined || loc === '') throw new Error('no Location');
      next = new URL(loc, from);
    } catch {
      throw new StorageError('ERR_BACKEND', `blob ${req.blobId}: ${req.method} ${displayUrl(from)}: HTTP ${res.status} without a valid Location`, { retryable: true });
    }
    if (this._cfg.blob_url_scheme !== '') next.protocol = `${this._cfg.blob_url_scheme}:`;
    if (this._cfg.blob_redirected_host !== '') next.host = this._cfg.blob_redirected_host;
    if (next.protocol !== 'http:' && next.protocol !== 'https:') {
      throw new StorageError('ERR_BACKEND', `blob ${req.blobId}: redirected to a ${next.protocol} URL`);
    }
    return next;
  }

  /** A request to a redirected location: no registry credentials, never a mirror. */
  private _plain(req: BlobRequest, url: URL): Promise<HttpResponse> {
    return this.transport.send({ method: req.method, url, headers: this.transport.headers(req.headers), signal: req.signal, maxBody: req.maxBody, onBody: req.onBody }, { priority: req.priority });
  }

  private async _authed(req: BlobRequest, url: URL): Promise<HttpResponse> {
    const send = (auth: string | undefined): Promise<HttpResponse> =>
      this.transport.send(
        {
          method: req.method,
          url,
          headers: this.transport.headers(auth === undefined ? req.headers : { ...req.headers, Authorization: auth }),
          signal: req.signal,
          maxBody: req.maxBody,
          onBody: req.onBody,
        },
        { mirrorable: true, priority: req.priority },
      );
    const sent = await this.auth.current(req.signal);
    let res = await send(sent);
    if (res.status !== 401) return res;
    if (sent !== undefined) {
      this.auth.rejected(sent);
      res = await send(undefined);
      if (res.status !== 401) return res;
    }
    const challenge = parseChallenge(header(res, 'www-authenticate'));
    if (!challenge) return res;
    const answer = await this.auth.answer(challenge, req.signal);
    if (answer === undefined) return res;
    res = await send(answer);
    if (res.status === 401) this.auth.rejected(answer);
    return res;
  }

  private async _fetchToken(c: Challenge, basic: string | undefined, signal: AbortSignal | undefined): Promise<Token> {
    let realm: URL;
    try {
      realm = new URL(c.realm);
      if (realm.protocol !== 'http:' && realm.protocol !== 'https:') throw new Error('scheme');
    } catch {
      throw new StorageError('ERR_BACKEND', `registry ${this._cfg.host}: the token realm in WWW-Authenticate is not an http(s) URL`);
    }
    const auth: Record<string, string> = basic === undefined ? {} : { Authorization: `Basic ${basic}` };
    const what = `token request to ${displayUrl(realm)}`;
    let res: HttpResponse | undefined;
    if (!this._getRealms.has(realm.host)) {
      const form = new URLSearchParams({ service: c.service, scope: c.scope, client_id: kClientId });
      if (basic !== undefined) {
        const { username, password } = basicCredentials(basic);
        form.set('grant_type', 'password');
        form.set('username', username);
        form.set('password', password);
      }
      try {
        res = await this.transport.client.request({
          method: 'POST',
          url: realm,
          headers: this.transport.headers({ ...auth, 'Content-Type': 'application/x-www-form-urlencoded' }),
          body: form.toString(),
          signal,
          maxBody: kMaxTokenReply,
        });
      } catch (err) {
        if (signal?.aborted) throw err;
        res = undefined;
      }
      if (res?.status !== 200) {
        this._log.debug(() => `${what}: POST ${res ? `answered HTTP ${res.status}` : 'failed'}; using GET for ${realm.host}`);
        this._getRealms.add(realm.host);
        res = undefined;
      }
    }
    if (!res) {
      const url = new URL(realm.href);
      url.searchParams.set('service', c.service);
      url.searchParams.set('scope', c.scope);
      url.searchParams.set('client_id', kClientId);
      res = await this.transport.client.request({ method: 'GET', url, headers: this.transport.headers(auth), signal, maxBody: kMaxTokenReply });
    }
    if (res.status !== 200) {
      throw new StorageError('ERR_BACKEND', `registry ${this._cfg.host}: ${what} answered HTTP ${res.status}`, { retryable: res.status >= 500 || res.status === 429 });
    }
    let body: { token?: unknown; access_token?: unknown; expires_in?: unknown };
    try {
      body = JSON.parse(res.body.toString('utf8')) as typeof body;
    } catch {
      throw new StorageError('ERR_BACKEND', `registry ${this._cfg.host}: ${what}: the reply is not JSON`, { retryable: true });
    }
    const token = typeof body.token === 'string' && body.token !== '' ? body.token : body.access_token;
    if (typeof token !== 'string' || token === '' || /[\r\n]/.test(token)) {
      throw new StorageError('ERR_BACKEND', `registry ${this._cfg.host}: ${what}: the reply has no token`);
    }
    const expiresIn = typeof body.expires_in === 'number' && body.expires_in > 0 ? body.expires_in : 600;
    return { token, expiresIn };
  }
}
