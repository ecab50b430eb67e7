/**
 * An HTTPS file server on 127.0.0.1 for the certificate-trust tests (ours; a test tool): serves
 * the files of `dir` at `/<name>` the way http-proxy backends expect blob servers to (HEAD with
 * Content-Length, GET with or without a single `Range: bytes=a-b`), with the given certificate.
 * Counts requests, so a test can tell a refused handshake (none arrive) from a failed read.
 */
import { readFileSync, statSync } from 'node:fs';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { basename, join } from 'node:path';

export interface TlsBlobServer {
  origin: string;
  /** Requests that got through the TLS handshake. */
  requests(): number;
  stop(): Promise<void>;
}

export async function startTlsBlobServer(dir: string, tls: { cert: string; key: string }): Promise<TlsBlobServer> {
  let requests = 0;
  const srv = createServer({ cert: readFileSync(tls.cert), key: readFileSync(tls.key) }, (req, res) => {
    requests++;
    const file = join(dir, basename(decodeURIComponent(new URL(req.url ?? '/', 'https://x').pathname)));
    const size = statSync(file, { throwIfNoEntry: false })?.size;
    if (size === undefined || (req.method !== 'GET' && req.method !== 'HEAD')) {
      res.writeHead(size === undefined ? 404 : 405).end();
      return;
    }
    const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
    if (req.method === 'HEAD' || !range) {
      res.writeHead(200, { 'content-length': size });
      res.end(req.method === 'HEAD' ? undefined : readFileSync(file));
      return;
    }
    const start = Number(range[1]);
    const end = Math.min(range[2] === '' ? size - 1 : Number(range[2]), size - 1);
    if (start > end) {
      res.writeHead(416, { 'content-range': `bytes */${size}` }).end();
      return;
    }
    res.writeHead(206, { 'content-range': `bytes ${start}-${end}/${size}`, 'content-length': end - start + 1 });
    res.end(readFileSync(file).subarray(start, end + 1));
  });
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  return {
    origin: `https://127.0.0.1:${(srv.address() as AddressInfo).port}`,
    requests: () => requests,
    stop: () => {
      srv.closeAllConnections();
      return new Promise((resolve) => srv.close(() => resolve()));
    },
  };
}
