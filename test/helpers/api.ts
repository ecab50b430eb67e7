/**
 * Test tools for the HTTP API on --apisock: requests over the Unix socket (keep-alive or one
 * connection each, exactly what a client writes), small RAFS images with their configuration
 * strings, and a raw idle connection like nydus-snapshotter's liveness probe.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import type { Socket } from 'node:net';
import { connect } from 'node:net';
import { dirname, join } from 'node:path';

import { createImage, defaultBuildOptions } from '../../src/rafs/builder/index.js';

export interface ApiResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  json(): unknown;
}

export interface ApiCallOptions {
  body?: string | Buffer;
  headers?: Record<string, string>;
  agent?: Agent;
}

/** One request to the API socket (origin-form path, query included). */
export function api(sock: string, method: string, path: string, opts: ApiCallOptions = {}): Promise<ApiResponse> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { ...opts.headers };
    if (opts.body !== undefined) headers['Content-Length'] = String(Buffer.byteLength(opts.body));
    const req = request({ socketPath: sock, method, path, headers, agent: opts.agent ?? false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json: () => JSON.parse(text) as unknown }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

/** A keep-alive agent: one connection reused across calls (as Kata's and the snapshotter's clients). */
export function keepAliveAgent(): Agent {
  return new Agent({ keepAlive: true, maxSockets: 1 });
}

/** A connection that never writes (the snapshotter's liveness probe); `closed` flips on hang-up. */
export function idleConnection(sock: string): Promise<{ socket: Socket; closed: () => boolean }> {
  return new Promise((resolve, reject) => {
    let closed = false;
    const s = connect(sock);
    s.on('close', () => (closed = true));
    s.once('error', reject);
    s.once('connect', () => resolve({ socket: s, closed: () => closed }));
  });
}

export interface TestImage {
  bootstrap: string;
  blobDir: string;
  files: Record<string, Buffer>;
}

/** Builds a RAFS v6 image of `files` (path -> content) under `dir`. */
export async function makeImage(dir: string, files: Record<string, string | Buffer>, opts: { chunkSize?: number } = {}): Promise<TestImage> {
  const src = join(dir, 'src');
  const out: Record<string, Buffer> = {};
  for (const [p, c] of Object.entries(files)) {
    const full = join(src, p);
    mkdirSync(dirname(full), { recursive: true });
    const data = typeof c === 'string' ? Buffer.from(c) : c;
    writeFileSync(full, data);
    out[p] = data;
  }
  const blobDir = join(dir, 'blobs');
  mkdirSync(blobDir, { recursive: true });
  const bootstrap = join(dir, 'image.boot');
  await createImage({ ...defaultBuildOptions(src), chunkSize: opts.chunkSize ?? 0x10000, blobDir, bootstrapPath: bootstrap });
  return { bootstrap, blobDir, files: out };
}

/** The nydusd v1 configuration text a mount body carries (as nydus-snapshotter writes it). */
export function rafsConfigText(blobDir: string, cacheDir: string, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({
    device: { backend: { type: 'localfs', config: { dir: blobDir } }, cache: { type: 'blobcache', config: { work_dir: cacheDir } } },
    mode: 'direct',
    digest_validate: false,
    ...extra,
  });
}

/** Mounts a passthrough_fs share exactly as Kata does (`config: ""`). */
export function mountShare(sock: string, mountpoint: string, source: string): Promise<ApiResponse> {
  return api(sock, 'POST', `/api/v1/mount?mountpoint=${mountpoint}`, {
    body: mountBody(source, '', 'passthrough_fs'),
    headers: { 'Content-Type': 'application/json' },
  });
}

/** A POST/PUT /api/v1/mount body. */
export function mountBody(source: string, config: string, fsType = 'rafs'): string {
  return JSON.stringify({ fs_type: fsType, source, config });
}
