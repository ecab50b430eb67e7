/**
 * Registry credentials and the Authorization header they produce (reference/rafs-format.md
 * §3.5): Basic from `auth` (IMAGE_PULL_AUTH, hot reload), Bearer tokens from the realm a 401's
 * `WWW-Authenticate` names (fetched by the caller's `fetchToken`), a preset `registry_token`.
 *
 * One token fetch at a time per challenge: concurrent 401s share it. A token is refreshed before
 * it expires, at expires_at - (20 s + random 0..min(ttl/10, 300 s)) as upstream, but never
 * earlier than half its lifetime (a short-lived token must not be re-fetched on every request).
 * Nothing here logs or returns a credential in a message.
 */
import { ConfigError } from '../../config/index.js';
import type { Logger } from '../../util/logger.js';

export interface Challenge {
  scheme: 'basic' | 'bearer';
  realm: string;
  service: string;
  scope: string;
}

/**
 * Parses `WWW-Authenticate`: `Basic realm="x"` or `Bearer realm="..",service="..",scope=".."`.
 * Bearer needs realm, service and scope (upstream's rule); undefined for anything else.
 */
export function parseChallenge(value: string | undefined): Challenge | undefined {
  if (value === undefined) return undefined;
  const m = /^\s*(\w+)\s*(.*)$/s.exec(value);
  if (!m) return undefined;
  const scheme = (m[1] ?? '').toLowerCase();
  const params = new Map<string, string>();
  const re = /([A-Za-z_][\w-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*,?\s*/g;
  for (let p = re.exec(m[2] ?? ''); p; p = re.exec(m[2] ?? '')) {
    params.set((p[1] ?? '').toLowerCase(), p[2] !== undefined ? p[2].replace(/\\(.)/g, '$1') : (p[3] ?? ''));
  }
  if (scheme === 'basic') return { scheme, realm: params.get('realm') ?? '', service: '', scope: '' };
  if (scheme !== 'bearer') return undefined;
  const realm = params.get('realm');
  const service = params.get('service');
  const scope = params.get('scope');
  if (realm === undefined || service === undefined || scope === undefined) return undefined;
  return { scheme, realm, service, scope };
}

/** Checks `auth` is base64 of `user:password`; the decoded parts never leave this function. */
export function checkBasicAuth(auth: string, key: string): string {
  const v = auth.trim();
  const decoded = Buffer.from(v, 'base64').toString('utf8');
  if (v === '' || !/^[A-Za-z0-9+/]+={0,2}$/.test(v) || !decoded.includes(':')) {
    throw new ConfigError(`${key}: not the base64 encoding of "username:password"`);
  }
  return v;
}

/** Username and password of a checked `auth` (for the token request form). */
export function basicCredentials(auth: string): { username: string; password: string } {
  const decoded = Buffer.from(auth, 'base64').toString('utf8');
  const i = decoded.indexOf(':');
  return { username: decoded.slice(0, i), password: decoded.slice(i + 1) };
}

export interface Token {
  token: string;
  /** Seconds. */
  expiresIn: number;
}

export type FetchToken = (c: Challenge, basicAuth: string | undefined, signal: AbortSignal | undefined) => Promise<Token>;

export interface AuthUpdate {
  auth?: string | undefined;
  registry_token?: string | undefined;
}

export class RegistryAuth {
  private _basic: string | undefined;
  /** The header to send (`Basic ...` / `Bearer ...`), once one worked or was preset. */
  private _cached: string | undefined;
  /** The challenge the current token answers, and when to fetch the next one (ms). */
  private _bearer: { challenge: Challenge; refreshAt: number } | undefined;
  private _fetching: Promise<string> | undefined;
  /** Tokens fetched so far (tests and the log). */
  tokensFetched = 0;

  constructor(
    cfg: AuthUpdate,
    private readonly _fetchToken: FetchToken,
    private readonly _log: Logger,
    private readonly _key = 'backend.registry',
  ) {
    if (cfg.auth !== undefined && cfg.auth.trim() !== '') this._basic = checkBasicAuth(cfg.auth, `${_key}.auth`);
    const t = cfg.registry_token?.trim();
    if (t !== undefined && t !== '') this._cached = `Bearer ${t}`;
  }

  /** The header for the next request, refreshing a token that is due first. */
  async current(signal?: AbortSignal): Promise<string | undefined> {
    const b = this._bearer;
    if (b && Date.now() >= b.refreshAt) {
      try {
        await this._token(b.challenge, signal);
      } catch (err) {
        // The old token may still work; a 401 will ask again.
        this._log.warn(`registry token refresh failed: ${(err as Error).message}`);
        b.refreshAt = Date.now() + 5000;
      }
    }
    return this._cached;
  }

  /** A request with `sent` got 401: forget it (unless a newer header replaced it already). */
  rejected(sent: string): void {
    if (this._cached === sent) this._cached = undefined;
  }

  /** The header answering `c`, or undefined when there is nothing to answer it with. */
  async answer(c: Challenge, signal?: AbortSignal): Promise<string | undefined> {
    if (c.scheme === 'basic') {
      if (this._basic === undefined) return undefined;
      this._cached = `Basic ${this._basic}`;
      this._bearer = undefined;
      return this._cached;
    }
    return this._token(c, signal);
  }

  private _token(c: Challenge, signal?: AbortSignal): Promise<string> {
    this._fetching ??= (async () => {
      try {
        const t = await this._fetchToken(c, this._basic, signal);
        this.tokensFetched++;
        const ttl = Math.max(1, t.expiresIn);
        const margin = Math.min(20 + Math.random() * Math.min(ttl / 10, 300), ttl / 2);
        this._bearer = { challenge: c, refreshAt: Date.now() + (ttl - margin) * 1000 };
        this._cached = `Bearer ${t.token}`;
        this._log.debug(() => `registry token fetched from ${new URL(c.realm).host}, valid ${ttl} s`);
        return this._cached;
      } finally {
        this._fetching = undefined;
      }
    })();
    return this._fetching;
  }

  /**
   * Hot reload (PUT /api/v1/config `registry_auth`, or a new preset token): new Basic
   * credentials replace a cached Basic header at once and make a cached token due for refresh
   * (the next request fetches one with the new credentials); a new `registry_token` replaces
   * the header outright.
   */
  reload(update: AuthUpdate): void {
    if (update.auth !== undefined) {
      const auth = update.auth.trim() === '' ? undefined : checkBasicAuth(update.auth, 'registry_auth');
      this._basic = auth;
      if (this._cached?.startsWith('Basic ')) this._cached = auth === undefined ? undefined : `Basic ${auth}`;
      if (this._bearer) this._bearer.refreshAt = 0;
    }
    if (update.registry_token !== undefined) {
      const t = update.registry_token.trim();
      this._cached = t === '' ? undefined : `Bearer ${t}`;
      this._bearer = undefined;
    }
  }

  /** What kind of header is in use (for the log; never the value). */
  get kind(): 'none' | 'basic' | 'bearer' {
    return this._cached === undefined ? 'none' : this._cached.startsWith('Basic ') ? 'basic' : 'bearer';
  }
}
