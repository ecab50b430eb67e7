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
import type { SecureContext } from 'node:tls';

import type { Agent, buildConnector, Dispatcher, ProxyAgent } from 'undici';

import { ConfigError } from '../../config/index.js';
import type { Logger } from '../../util/logger.js';
import { errnoCode, StorageError } from '../contract/errors.js';
import { TlsTrust } from './trust.js';
import { proxyAgentClass, undici } from './undici-parts.js';
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
  /** Where warnings about the certificates go (a NODE_EXTRA_CA_CERTS file that cannot be read). */
  log?: Logger;
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
  /**
   * Told after every piece of a 2xx body with a Content-Length: `buf[0, received)` holds the
   * body so far (the buffer the reply will carry; nothing before `received` changes later).
   */
  onBody?: ((head: Pick<HttpResponse, 'status' | 'headers'>, buf: Buffer, received: number) => void) | undefined;
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

/** The contents of the config's CA files (read when the backend is made: a missing one is a config error). */
async function readCaFiles(files: readonly string[], key: string): Promise<string[]> {
  const out: string[] = [];
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
  private readonly _trust: TlsTrust;
  /** CONNECT tunnels through a forward proxy, per proxy origin (https targets only). */
  private readonly _tunnels = new Map<string, ProxyAgent>();
  private _closed = false;

  private constructor(
    private readonly _opts: HttpClientOptions,
    caTexts: string[],
  ) {
    this._trust = new TlsTrust({ caTexts, skipVerify: _opts.skipVerify ?? false, log: _opts.log });
    const options: buildConnector.BuildOptions = {
      ...(_opts.connectTimeoutMs > 0 ? { timeout: _opts.connectTimeoutMs } : {}),
      rejectUnauthorized: !(_opts.skipVerify ?? false),
      ...(_opts.socketPath === undefined ? {} : { socketPath: _opts.socketPath }),
      ...(_opts.lookup ? { lookup: _opts.lookup } : {}),
    };
    const plain = undici.buildConnector(options);
    /** The connector with our trust (TlsTrust), made at the first TLS connection that needs it. */
    let trusted: buildConnector.connector | undefined;
    // Counted on success only: the bench reports how many TCP connections a cold read opened.
    const connect: buildConnector.connector = (o, cb) => {
      const done: buildConnector.Callback = (...args) => {
        if (args[0] === null) this._connections++;
        cb(...args);
      };
      if (o.protocol !== 'https:' || !this._trust.custom) return plain(o, done);
      if (trusted) return trusted(o, done);
      this._trust.context().then(
        (secureContext) => {
          trusted ??= undici.buildConnector({ ...options, secureContext });
          trusted(o, done);
        },
        (err: Error) => cb(err, null),
      );
    };
    this._agent = new undici.Agent({
      connect,
      connections: _opts.connectionsPerOrigin ?? 32,
      keepAliveTimeout: 30_000,
      keepAliveMaxTimeout: 600_000,
      headersTimeout: _opts.timeoutMs,
      bodyTimeout: _opts.timeoutMs,
    });
  }

  static async create(opts: HttpClientOptions): Promise<HttpClient> {
    return new HttpClient(opts, await readCaFiles(opts.caFiles ?? [], opts.configKey ?? 'backend'));
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
      dispatcher = this._tunnel(req.via, this._trust.custom ? await this._trust.context() : undefined);
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
    return collect(
      dispatcher,
      {
        origin,
        path,
        method: req.method,
        headers,
        // undici closes the connection after a HEAD unless told not to (a guard against
        // servers that send a body anyway); blob servers do not, and HEAD is every size query.
        ...(req.method === 'HEAD' ? { reset: false } : {}),
        ...(req.body === undefined ? {} : { body: req.body }),
      },
      req,
      what,
    );
  }

  private _tunnel(via: URL, secureContext: SecureContext | undefined): ProxyAgent {
    let t = this._tunnels.get(via.origin);
    if (!t) {
      const ProxyAgentClass = proxyAgentClass();
      t = new ProxyAgentClass({
        uri: via.origin,
        requestTls: { rejectUnauthorized: !(this._opts.skipVerify ?? false), ...(secureContext ? { secureContext } : {}) },
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

/** Error replies carry at most this much body worth reading (we never show it; it is dropped). */
const kMaxErrorBody = 64 * 1024;

/**
 * Dispatches one request and collects its reply with a raw undici handler: body bytes go
 * straight into one buffer of the announced size (no stream, no concatenation), a body longer
 * than allowed aborts the request, and an abort of `req.signal` aborts it too. An error reply's
 * body is never returned (messages never carry what a server said); a large one just costs the
 * connection.
 */
function collect(dispatcher: Dispatcher, opts: Dispatcher.DispatchOptions, req: HttpRequest, what: string): Promise<HttpResponse> {
  const head = req.method === 'HEAD';
  const signal = req.signal;
  return new Promise<HttpResponse>((resolve, reject) => {
    let controller: Dispatcher.DispatchController | undefined;
    let status = 0;
    let headers: Record<string, string | string[] | undefined> = {};
    let keep = false;
    let limit = 0;
    let buf: Buffer | undefined;
    const parts: Buffer[] = [];
    let n = 0;
    /** Why we aborted it ourselves (reported instead of undici's abort error). */
    let refused: Error | undefined;
    let dropped = false;
    let settled = false;
    const reason = (): Error => (signal?.reason instanceof Error ? signal.reason : new Error('aborted'));
    // A request still queued for a connection has no controller yet: settle now, and abort it
    // when it starts (onRequestStart).
    const onAbort = (): void => (controller ? controller.abort(reason()) : finish(reason()));
    const finish = (err: Error | undefined, res?: HttpResponse): void => {
      if (settled) return;
      settled = true;
      signal?.removeEventListener('abort', onAbort);
      if (err) reject(err);
      else if (res) resolve(res);
    };
    const refuse = (c: Dispatcher.DispatchController, e: StorageError): void => {
      refused = e;
      c.abort(e);
    };
    if (signal?.aborted) {
      reject(reason());
      return;
    }
    signal?.addEventListener('abort', onAbort, { once: true });
    const handler: Dispatcher.DispatchHandler = {
      onRequestStart(c) {
        controller = c;
        if (signal?.aborted) c.abort(reason());
      },
      onResponseStart(c, statusCode, hdrs) {
        status = statusCode;
        headers = hdrs;
        keep = !head && statusCode >= 200 && statusCode < 300;
        limit = head ? 0 : keep ? req.maxBody : kMaxErrorBody;
        const v = hdrs['content-length'];
        const declared = Number(Array.isArray(v) ? v[0] : (v ?? Number.NaN));
        if (head || !Number.isFinite(declared)) return;
        if (declared > limit) {
          if (!keep) {
            dropped = true;
            c.abort(new Error('error reply body dropped'));
            return;
          }
          refuse(c, new StorageError('ERR_BACKEND', `${what}: HTTP ${statusCode} with a ${declared}-byte body, more than the ${req.maxBody} bytes asked for`, { retryable: true }));
          return;
        }
        if (keep) buf = Buffer.allocUnsafe(declared);
      },
      onResponseData(c, chunk) {
        if (n + chunk.length > limit) {
          if (!keep) {
            dropped = true;
            c.abort(new Error('error reply body dropped'));
            return;
          }
          refuse(c, new StorageError('ERR_BACKEND', `${what}: HTTP ${status} sent more than the ${req.maxBody} bytes asked for`, { retryable: true }));
          return;
        }
        if (buf) chunk.copy(buf, n);
        else if (keep) parts.push(chunk);
        n += chunk.length;
        if (buf && req.onBody) req.onBody({ status, headers }, buf, n);
      },
      onResponseEnd() {
        let body: Buffer = Buffer.alloc(0);
        if (keep) body = buf ? (n === buf.length ? buf : buf.subarray(0, n)) : parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts, n);
        finish(undefined, { status, headers, body });
      },
      onResponseError(_c, err) {
        if (refused) finish(refused);
        else if (dropped) finish(undefined, { status, headers, body: Buffer.alloc(0) });
        else if (signal?.aborted) finish(reason());
        else finish(transportError(status === 0 ? what : `${what}: HTTP ${status} body`, err));
      },
    };
    try {
      dispatcher.dispatch(opts, handler);
    } catch (err) {
      finish(transportError(what, err));
    }
  });
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
