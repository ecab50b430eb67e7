/**
 * The HTTP/1.1 server of --apisock (node:http on a Unix socket), with upstream nydusd's transport
 * rules (reference/clients.md §3.1): every response carries `Server: Nydus API` and
 * `Content-Type: application/json`; success with a body is 200, without 204; errors are
 * `{"code","message"}`. Origin-form and absolute-form targets both work; the query is decoded as
 * a form (`%2F` and `+`). Bodies above upstream's 51200 bytes are refused.
 *
 * Connections: idle keep-alive connections are never closed by us (nydus-snapshotter keeps one
 * open forever and treats a hang-up as the daemon's death); they end when the daemon stops. The
 * socket file is created mode 0600 (umask while binding, then chmod).
 */
import { chmod, unlink } from 'node:fs/promises';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { createServer } from 'node:http';

import type { Logger } from '../../util/logger.js';
import { ApiError, badRequest } from './errors.js';
import type { ApiReply, ApiRequest, Router } from './router.js';
import { claimSocketPath } from '../../util/unix-socket.js';

export const kMaxPayload = 51200;

function target(raw: string): { path: string; query: URLSearchParams } {
  if (raw.startsWith('/')) {
    const q = raw.indexOf('?');
    return q < 0 ? { path: raw, query: new URLSearchParams() } : { path: raw.slice(0, q), query: new URLSearchParams(raw.slice(q + 1)) };
  }
  // Absolute form (upstream's own tests send "GET http://localhost/api/v1/daemon").
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw badRequest();
  }
  return { path: u.pathname, query: u.searchParams };
}

function readBody(req: IncomingMessage): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > kMaxPayload) over = true;
      else chunks.push(c);
    });
    req.on('end', () => {
      if (over) reject(new ApiError(400, `PayloadTooLarge(${kMaxPayload})`));
      else resolve(size === 0 ? undefined : Buffer.concat(chunks));
    });
    req.on('error', reject);
  });
}

export class ApiServer {
  private constructor(
    private readonly _server: Server,
    readonly path: string,
    private readonly _log: Logger,
  ) {}

  /** Claims `path` (a stale socket file is replaced, a live one refused), listens, restricts it to its owner. */
  static async listen(path: string, router: Router, log: Logger): Promise<ApiServer> {
    await claimSocketPath(path, '--apisock');
    const server = createServer({ keepAliveTimeout: 0, requestTimeout: 0 }, (req, res) => {
      void ApiServer._handle(router, log, req, res);
    });
    // A request that started must finish its headers within a minute; idle connections are
    // not requests and are never timed out (keepAliveTimeout 0).
    server.headersTimeout = 60_000;
    server.keepAliveTimeout = 0;
    server.timeout = 0;
    const oldMask = process.umask(0o177);
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(path, () => {
          server.off('error', reject);
          resolve();
        });
      });
    } finally {
      process.umask(oldMask);
    }
    await chmod(path, 0o600);
    server.on('error', (err) => log.error(`API server: ${err.message}`));
    server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
      if (err.code === 'ECONNRESET' || !socket.writable) {
        socket.destroy();
        return;
      }
      socket.end('HTTP/1.1 400 Bad Request\r\nServer: Nydus API\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: 43\r\n\r\n{"code":"UNDEFINED","message":"BadRequest"}');
    });
    log.info(`API listening on ${path}`);
    return new ApiServer(server, path, log);
  }

  private static async _handle(router: Router, log: Logger, req: IncomingMessage, res: ServerResponse): Promise<void> {
    let reply: ApiReply;
    try {
      const { path, query } = target(req.url ?? '/');
      const body = await readBody(req);
      const r: ApiRequest = { method: req.method ?? 'GET', path, query, body };
      reply = await router.dispatch(r);
    } catch (err) {
      if (err instanceof ApiError) {
        reply = { status: err.status, json: err.body };
      } else {
        log.error(`API ${req.method ?? '?'} ${req.url ?? '?'}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
        reply = { status: 500, json: { code: 'UNDEFINED', message: `Internal(${JSON.stringify(err instanceof Error ? err.message : String(err))})` } };
      }
    }
    log.debug(() => `API ${req.method ?? '?'} ${req.url ?? '?'} -> ${reply.status}`);
    const headers: Record<string, string> = { Server: 'Nydus API', 'Content-Type': reply.contentType ?? 'application/json' };
    if (reply.status === 204 || (reply.json === undefined && reply.text === undefined)) {
      res.writeHead(reply.status === 200 ? 204 : reply.status, headers);
      res.end();
      return;
    }
    const text = reply.text ?? JSON.stringify(reply.json);
    headers['Content-Length'] = String(Buffer.byteLength(text));
    res.writeHead(reply.status, headers);
    res.end(text);
  }

  get connections(): Promise<number> {
    return new Promise((resolve) => this._server.getConnections((_e, n) => resolve(n)));
  }

  /** Stops listening, ends every connection (clients see the daemon go) and removes the socket. */
  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this._server.close(() => resolve()));
    this._server.closeAllConnections();
    await closed;
    try {
      await unlink(this.path);
    } catch {
      // Already gone.
    }
    this._log.debug(`API socket ${this.path} closed`);
  }
}
