/**
 * A fault-injecting TCP proxy for HTTP/1.1 backends (ours; a test tool). It sits between the
 * daemon and a real server (docker-registry, nginx, s3rver) and, per request, either passes the
 * exchange through or breaks it the way a bad network or a bad server does:
 *
 *   reset        the connection is reset when the request arrives
 *   status       a canned reply (e.g. 503) instead of forwarding
 *   truncate     the reply is cut after half its body, then the connection closes
 *   stall        the reply stops after half its body; the connection stays open and silent
 *   bad-length   Content-Length claims more bytes than the body has, then the connection closes
 *   lie-size     Content-Length of a HEAD / the total in Content-Range of a 206 is replaced
 *   short-range  a 206 whose body and Content-Range end early
 *
 * It parses just enough HTTP: request heads (GET/HEAD/POST with Content-Length bodies) and reply
 * heads with Content-Length; a chunked reply is passed through untouched. Faults are queued
 * with a count and an optional path filter; counters tell a test what happened.
 */
import type { Server, Socket } from 'node:net';
import { connect, createServer } from 'node:net';

export type FaultKind = 'reset' | 'status' | 'truncate' | 'stall' | 'bad-length' | 'lie-size' | 'short-range';

export interface Fault {
  kind: FaultKind;
  /** How many matching requests get it (default 1; Infinity = until cleared). */
  times?: number;
  /** Only requests whose method+path match, e.g. /^GET .*\/blobs\//. */
  match?: RegExp;
  /** status: the code (default 503). lie-size: the size to claim. */
  value?: number;
}

interface Pending {
  kind: FaultKind | 'pass';
  value: number | undefined;
  method: string;
}

const kHeadEnd = Buffer.from('\r\n\r\n');

function parseHead(head: string): { first: string; headers: [string, string][] } {
  const lines = head.split('\r\n');
  const headers: [string, string][] = [];
  for (const l of lines.slice(1)) {
    const i = l.indexOf(':');
    if (i > 0) headers.push([l.slice(0, i), l.slice(i + 1).trim()]);
  }
  return { first: lines[0] ?? '', headers };
}

function getHeader(h: [string, string][], name: string): string | undefined {
  return h.find(([k]) => k.toLowerCase() === name)?.[1];
}

function setHeader(h: [string, string][], name: string, value: string): void {
  const e = h.find(([k]) => k.toLowerCase() === name.toLowerCase());
  if (e) e[1] = value;
  else h.push([name, value]);
}

function renderHead(first: string, h: [string, string][]): Buffer {
  return Buffer.from(`${first}\r\n${h.map(([k, v]) => `${k}: ${v}`).join('\r\n')}\r\n\r\n`);
}

export class FaultProxy {
  /** Connections accepted from clients. */
  connections = 0;
  requests = 0;
  readonly applied: Record<string, number> = {};
  private readonly _faults: (Fault & { left: number })[] = [];
  private readonly _sockets = new Set<Socket>();
  private _server: Server | undefined;
  port = 0;

  constructor(
    private readonly _targetPort: number,
    private readonly _targetHost = '127.0.0.1',
  ) {}

  async start(): Promise<this> {
    this._server = createServer((c) => this._serve(c));
    await new Promise<void>((r) => this._server?.listen(0, '127.0.0.1', r));
    const addr = this._server.address();
    this.port = typeof addr === 'object' && addr ? addr.port : 0;
    return this;
  }

  get origin(): string {
    return `127.0.0.1:${this.port}`;
  }

  inject(f: Fault): void {
    this._faults.push({ ...f, left: f.times ?? 1 });
  }

  clear(): void {
    this._faults.length = 0;
  }

  /** Closes every open connection (clients see resets), keeps listening. */
  dropConnections(): void {
    for (const s of this._sockets) s.destroy();
  }

  async close(): Promise<void> {
    this.dropConnections();
    await new Promise<void>((r) => (this._server ? this._server.close(() => r()) : r()));
  }

  private _next(method: string, path: string): Pending {
    const key = `${method} ${path}`;
    for (const f of this._faults) {
      if (f.left <= 0 || (f.match && !f.match.test(key))) continue;
      f.left--;
      this.applied[f.kind] = (this.applied[f.kind] ?? 0) + 1;
      return { kind: f.kind, value: f.value, method };
    }
    return { kind: 'pass', value: undefined, method };
  }

  private _serve(client: Socket): void {
    this.connections++;
    this._sockets.add(client);
    const upstream = connect(this._targetPort, this._targetHost);
    this._sockets.add(upstream);
    const pending: Pending[] = [];
    let reqBuf = Buffer.alloc(0);
    let bodyLeft = 0;
    const kill = (): void => {
      client.destroy();
      upstream.destroy();
    };
    client.on('close', () => {
      this._sockets.delete(client);
      upstream.destroy();
    });
    upstream.on('close', () => {
      this._sockets.delete(upstream);
      client.destroy();
    });
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());

    client.on('data', (d: Buffer) => {
      reqBuf = Buffer.concat([reqBuf, d]);
      for (;;) {
        if (bodyLeft > 0) {
          const n = Math.min(bodyLeft, reqBuf.length);
          upstream.write(reqBuf.subarray(0, n));
          reqBuf = reqBuf.subarray(n);
          bodyLeft -= n;
          if (bodyLeft > 0) return;
        }
        const end = reqBuf.indexOf(kHeadEnd);
        if (end < 0) return;
        const headBytes = reqBuf.subarray(0, end + 4);
        reqBuf = reqBuf.subarray(end + 4);
        const { first, headers } = parseHead(headBytes.toString('latin1'));
        const [method = '', path = ''] = first.split(' ');
        this.requests++;
        bodyLeft = Number(getHeader(headers, 'content-length') ?? 0);
        const p = this._next(method, path);
        if (p.kind === 'reset') {
          client.resetAndDestroy();
          upstream.destroy();
          return;
        }
        if (p.kind === 'status') {
          // Answered here; the request (and any body) never reaches the server.
          const code = p.value ?? 503;
          client.write(`HTTP/1.1 ${code} Injected\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n`);
          const skip = Math.min(bodyLeft, reqBuf.length);
          reqBuf = reqBuf.subarray(skip);
          bodyLeft -= skip;
          continue;
        }
        pending.push(p);
        upstream.write(headBytes);
      }
    });

    let resBuf = Buffer.alloc(0);
    // The reply being forwarded: bytes to send, bytes of the real body to swallow, then what.
    let cur: { send: number; drop: number; after: 'none' | 'kill' | 'stall' | 'end' } | undefined;
    let passthrough = false;
    upstream.on('data', (d: Buffer) => {
      if (passthrough) {
        client.write(d);
        return;
      }
      resBuf = Buffer.concat([resBuf, d]);
      for (;;) {
        if (cur) {
          const s = Math.min(cur.send, resBuf.length);
          if (s > 0) client.write(resBuf.subarray(0, s));
          resBuf = resBuf.subarray(s);
          cur.send -= s;
          if (cur.send > 0) return;
          if (cur.after === 'kill') {
            kill();
            return;
          }
          if (cur.after === 'stall') {
            // Keep both sockets open and say nothing more.
            upstream.pause();
            return;
          }
          const dr = Math.min(cur.drop, resBuf.length);
          resBuf = resBuf.subarray(dr);
          cur.drop -= dr;
          if (cur.drop > 0) return;
          const after = cur.after;
          cur = undefined;
          if (after === 'end') {
            client.end();
            return;
          }
          continue;
        }
        const end = resBuf.indexOf(kHeadEnd);
        if (end < 0) return;
        const { first, headers } = parseHead(resBuf.subarray(0, end + 4).toString('latin1'));
        resBuf = resBuf.subarray(end + 4);
        const p = pending.shift() ?? { kind: 'pass', value: undefined, method: 'GET' };
        const status = Number(first.split(' ')[1]);
        const lenHeader = getHeader(headers, 'content-length');
        if (lenHeader === undefined) {
          // Chunked or close-delimited: no per-request faults on this connection any more.
          client.write(renderHead(first, headers));
          client.write(resBuf);
          resBuf = Buffer.alloc(0);
          passthrough = true;
          return;
        }
        const hasBody = p.method !== 'HEAD' && status !== 204 && status !== 304;
        const len = hasBody ? Number(lenHeader) : 0;
        cur = { send: len, drop: 0, after: 'none' };
        switch (p.kind) {
          case 'truncate':
            cur = { send: Math.floor(len / 2), drop: 0, after: 'kill' };
            break;
          case 'stall':
            cur = { send: Math.floor(len / 2), drop: 0, after: 'stall' };
            break;
          case 'bad-length':
            setHeader(headers, 'Content-Length', String(len + 100));
            cur.after = 'end';
            break;
          case 'lie-size': {
            const v = String(p.value ?? 1);
            if (p.method === 'HEAD') setHeader(headers, 'Content-Length', v);
            const cr = getHeader(headers, 'content-range');
            if (cr) setHeader(headers, 'Content-Range', cr.replace(/\/\d+$/, `/${v}`));
            break;
          }
          case 'short-range': {
            const cr = /bytes (\d+)-(\d+)\/(\d+)/.exec(getHeader(headers, 'content-range') ?? '');
            if (cr && len > 1) {
              const half = Math.floor(len / 2);
              setHeader(headers, 'Content-Range', `bytes ${cr[1]}-${Number(cr[1]) + half - 1}/${cr[3]}`);
              setHeader(headers, 'Content-Length', String(half));
              cur = { send: half, drop: len - half, after: 'none' };
            }
            break;
          }
          case 'pass':
          case 'reset':
          case 'status':
            break;
        }
        client.write(renderHead(first, headers));
      }
    });
  }
}
