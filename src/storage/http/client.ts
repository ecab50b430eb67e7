/**
 * The one HTTP client every network backend uses: an undici Agent (a keep-alive pool per origin,
 * connections reused across chunks and blobs), TLS with extra CA files or without verification,
 * a connect timeout, and `timeout` applied as undici's headers and body timeouts (a stalled
 * server fails the attempt; a slow but moving transfer does not). A Unix-socket client serves
 * `http-proxy` backends whose `addr` is a socket path.
 *
 * Bodies are collected into one Buffer with a hard cap (a backend never makes us buffer more
 * than asked for). Every failure becomes a StorageError whose message names the method and the
 * URL without userinfo or query string (presigned redirect URLs carry signatures there), and
 * whose `retryable` says whether another attempt may help.
 */
import { readFile } from 'node:fs/promises';
import type { LookupFunction } from 'node:net';
import { rootCertificates } from 'node:tls';

import { Agent, buildConnector, ProxyAgent } from 'undici';
import type { Dispatcher } from 'undici';

import { ConfigError } from '../../config/index.js';
import { errnoCode, StorageError } from '../errors.js';
import { displayUrl } from './url.js';

export interface HttpClientOptions {
  /** Headers and body (idle) timeout per request, ms; 0 = none. */
  timeoutMs: number;
  connectTimeoutMs: number;
  /** Extra PEM CA files trusted besides the system roots (config `ca_cert_files`). */
  caFiles?: readonly string[];
  /** Config `skip_verify`. */
  skipVerify?: boolean;
  /** Connect every request to this Unix socket instead of the URL's host. */
  socketPath?: string;
  /** Name resolution override (tests: names under a test domain resolve to loopback). */
  lookup?: LookupFunction;
  /** Keep-alive connections per origin at most. */
  connectionsPerOrigin?: number;
  /** Config key prefix for errors about the TLS files. */
  configKey?: string;
}

export type HttpMethod = 'GET' | 'HEAD' | 'POST';

export interface HttpRequest {
  method: HttpMethod;
  url: URL;
  headers: Record<string, string>;
  body?: string;
  signal?: AbortSignal | undefined;
  /** Largest body accepted; longer bodies fail the request (retryable: the server misbehaved). */
  maxBody: number;
  /**
   * Send through this HTTP forward proxy (absolute-form request target, the way HTTP proxies
   * and Dragonfly's dfdaemon expect plain-http requests).
   */
  via?: URL | undefined;
}

export interface HttpResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

/** Transport failures worth another attempt (the server or the path between us may recover). */
const kRetryableCodes = new Set([
  'ECONNRESET', 'ECONNREFUSED', 'ECONNABORTED', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN',
  'UND_ERR_SOCKET', 'UND_ERR_CLOSED', 'UND_ERR_DESTROYED', 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH', 'UND_ERR_INFO',
]);
const kTimeoutCodes = new Set(['UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT']);

/** First header value, or undefined. */
export function header(res: Pick<HttpResponse, 'headers'>, name: string): string | undefined {
  const v = res.headers[name.toLowerCase()];
  return Array.isArray(v) ? v[0] : v;
}

/** True for errors that mean "TLS spoken to a plain-http server" (upstream's http fallback). */
export function isTlsToPlainHttp(err: unknown): boolean {
  for (let e: unknown = err; e instanceof Error; e = e.cause) {
    const code = (e as NodeJS.ErrnoException).code ?? '';
    if (code === 'ERR_SSL_WRONG_VERSION_NUMBER' || /wrong version number/i.test(e.message)) return true;
  }
  return false;
}

async function loadCa(files: readonly string[], key: string): Promise<string[] | undefined> {
  if (files.length === 0) return undefined;
  const out = [...rootCertificates];
  for (const f of files) {
    try {
      out.push(await readFile(f, 'utf8'));
    } catch (err) {
      throw new ConfigError(`${key}.ca_cert_files ${f}: cannot read (${errnoCode(err)})`, { cause: err });
    }
  }
  return out;
}

export class HttpClient {
  private _connections = 0;
  private readonly _agent: Agent;
  /** CONNECT tunnels through a forward proxy, per proxy origin (https targets only). */
  private readonly _tls: { rejectUnauthorized: boolean; ca?: string[] };
  private readonly _tunnels = new Map<string, ProxyAgent>();
  private _closed = false;

  private constructor(
    private readonly _opts: HttpClientOptions,
    ca: string[] | undefined,
  ) {
    const base = buildConnector({
      ...(_opts.connectTimeoutMs > 0 ? { timeout: _opts.connectTimeoutMs } : {}),
      rejectUnauthorized: !(_opts.skipVerify ?? false),
      ...(ca ? { ca } : {}),
      ...(_opts.socketPath === undefined ? {} : { socketPath: _opts.socketPath }),
      ...(_opts.lookup ? { lookup: _opts.lookup } : {}),
    });
    // Counted on success only: the bench reports how many TCP connections a cold read opened.
    const connect: buildConnector.connector = (options, cb) => {
      base(options, (...args) => {
        if (args[0] === null) this._connections++;
        cb(...args);
      });
    };
    this._tls = { rejectUnauthorized: !(_opts.skipVerify ?? false), ...(ca ? { ca } : {}) };
    this._agent = new Agent({
      connect,
      connections: _opts.connectionsPerOrigin ?? 32,
      keepAliveTimeout: 30_000,
      keepAliveMaxTimeout: 600_000,
      headersTimeout: _opts.timeoutMs,
      bodyTimeout: _opts.timeoutMs,
    });
  }

  static async create(opts: HttpClientOptions): Promise<HttpClient> {
    return new HttpClient(opts, await loadCa(opts.caFiles ?? [], opts.configKey ?? 'backend'));
  }

  /** TCP (or Unix) connections this client opened so far. */
  get connectionsOpened(): number {
    return this._connections;
  }

  async request(req: HttpRequest): Promise<HttpResponse> {
    const what = `${req.method} ${displayUrl(req.url)}`;
    if (this._closed) throw new StorageError('ERR_STORAGE_CLOSED', `${what}: backend closed`);
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(req.headers)) headers[k.toLowerCase()] = v;
    let origin: string;
    let path: string;
    let dispatcher: Dispatcher = this._agent;
    if (req.via && req.url.protocol === 'https:') {
      // An https origin through an HTTP proxy: a CONNECT tunnel, TLS end to end.
      dispatcher = this._tunnel(req.via);
      origin = req.url.origin;
      path = `${req.url.pathname}${req.url.search}`;
    } else if (req.via) {
      origin = req.via.origin;
      path = req.url.href;
      headers['host'] = req.url.host;
    } else {
      origin = this._opts.socketPath === undefined ? req.url.origin : 'http://localhost';
      path = `${req.url.pathname}${req.url.search}`;
    }
    let res: Dispatcher.ResponseData;
    try {
      res = await dispatcher.request({
        origin,
        path,
        method: req.method,
        headers,
        // undici closes the connection after a HEAD unless told not to (a guard against
        // servers that send a body anyway); blob servers do not, and HEAD is every size query.
        ...(req.method === 'HEAD' ? { reset: false } : {}),
        ...(req.body === undefined ? {} : { body: req.body }),
        ...(req.signal ? { signal: req.signal } : {}),
      });
    } catch (err) {
      throw transportError(what, err);
    }
    const body = await readBody(res, req.maxBody, what, req.method === 'HEAD');
    return { status: res.statusCode, headers: res.headers, body };
  }

  private _tunnel(via: URL): ProxyAgent {
    let t = this._tunnels.get(via.origin);
    if (!t) {
      t = new ProxyAgent({
        uri: via.origin,
        requestTls: this._tls,
        headersTimeout: this._opts.timeoutMs,
        bodyTimeout: this._opts.timeoutMs,
        keepAliveTimeout: 30_000,
      });
      this._tunnels.set(via.origin, t);
    }
    return t;
  }

  async close(): Promise<void> {
    if (this._closed) return;
    this._closed = true;
    await Promise.all([this._agent, ...this._tunnels.values()].map((d) => d.destroy().catch(() => undefined)));
  }
}

/** Error replies carry at most this much body worth reading (we never show it; it is drained). */
const kMaxErrorBody = 64 * 1024;

async function readBody(res: Dispatcher.ResponseData, max: number, what: string, head: boolean): Promise<Buffer> {
  // An error reply's body is never used: drained (bounded) so the connection can be reused.
  const limit = head ? 0 : res.statusCode >= 200 && res.statusCode < 300 ? max : kMaxErrorBody;
  const declared = Number(header(res, 'content-length') ?? Number.NaN);
  if (!head && Number.isFinite(declared) && declared > limit) {
    discard(res);
    if (limit !== max) return Buffer.alloc(0);
    throw new StorageError('ERR_BACKEND', `${what}: HTTP ${res.statusCode} with a ${declared}-byte body, more than the ${max} bytes asked for`, { retryable: true });
  }
  const parts: Buffer[] = [];
  let n = 0;
  try {
    for await (const chunk of res.body) {
      const b = chunk as Buffer;
      n += b.length;
      if (n > limit) {
        discard(res);
        if (limit !== max) return Buffer.alloc(0);
        throw new StorageError('ERR_BACKEND', `${what}: HTTP ${res.statusCode} sent more than the ${max} bytes asked for`, { retryable: true });
      }
      parts.push(b);
    }
  } catch (err) {
    if (err instanceof StorageError) throw err;
    throw transportError(`${what}: HTTP ${res.statusCode} body`, err);
  }
  if (head || limit !== max) return Buffer.alloc(0);
  return parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts, n);
}

/** Drops a reply body we will not read (the connection closes; nothing is left unhandled). */
function discard(res: Dispatcher.ResponseData): void {
  res.body.on('error', () => undefined);
  res.body.destroy();
}

function transportError(what: string, err: unknown): Error {
  const e = err as { name?: string; code?: string; message?: string };
  if (e.name === 'AbortError' || e.code === 'UND_ERR_ABORTED' || e.code === 'ABORT_ERR') {
    return err instanceof Error ? err : new Error(String(err));
  }
  const code = e.code ?? '';
  // Undici's messages name no URL and carry no headers; keep them, they say what went wrong.
  const msg = e.message ?? String(err);
  if (kTimeoutCodes.has(code)) {
    return new StorageError('ERR_BACKEND_TIMEOUT', `${what}: ${msg}`, { cause: err, retryable: true });
  }
  if (isTlsToPlainHttp(err)) return new StorageError('ERR_BACKEND', `${what}: TLS handshake failed (${msg})`, { cause: err });
  const retryable = kRetryableCodes.has(code) || code === '';
  return new StorageError('ERR_BACKEND', `${what}: ${code !== '' ? `${code}: ` : ''}${msg}`, { cause: err, retryable });
}
