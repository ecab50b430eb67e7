/**
 * Real servers for the remote-backend tests, started by the tests themselves (installed by
 * scripts/setup.mjs): Debian's docker-registry (distribution v2: anonymous, htpasswd, token
 * auth, TLS), nginx (static blobs over TCP and a Unix socket, a forward proxy with a ping
 * endpoint standing in for Dragonfly's dfdaemon, a mirror in front of the registry, redirects),
 * s3rver and a token service in child processes (remote-child.ts), certificates from openssl,
 * GPT disk images from sgdisk. Everything listens on 127.0.0.1 only and dies with the test.
 */
import type { ChildProcess } from 'node:child_process';
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import type { LookupFunction } from 'node:net';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { request } from 'undici';

const kSetpriv = '/usr/bin/setpriv';

export function which(bin: string): string | undefined {
  for (const d of ['/usr/sbin', '/usr/bin', '/sbin', '/bin']) if (existsSync(join(d, bin))) return join(d, bin);
  return undefined;
}

/** Why the remote-backend tests cannot run here, or false. */
export function remoteSkip(): string | false {
  for (const [bin, pkg] of [['docker-registry', 'docker-registry'], ['nginx', 'nginx'], ['sgdisk', 'gdisk'], ['openssl', 'openssl']] as const) {
    if (!which(bin)) return `${bin} not found (apt-get install ${pkg})`;
  }
  if (spawnSync('python3', ['-W', 'ignore', '-c', 'import crypt; assert crypt.METHOD_BLOWFISH']).status !== 0) return 'python3 crypt with bcrypt not available (htpasswd)';
  return false;
}

/** Name resolution that sends every name to 127.0.0.1 (OSS bucket host names in tests). */
export const loopbackLookup = ((_host: string, opts: { all?: boolean } | ((...a: unknown[]) => void), cb?: (...a: unknown[]) => void): void => {
  const done = typeof opts === 'function' ? opts : cb;
  if (typeof opts === 'object' && opts.all) done?.(null, [{ address: '127.0.0.1', family: 4 }]);
  else done?.(null, '127.0.0.1', 4);
}) as unknown as LookupFunction;

export async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const addr = srv.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export interface Proc {
  child: ChildProcess;
  log: () => string;
  /** SIGTERM and wait (SIGKILL after 5 s). */
  stop: () => Promise<void>;
  /** SIGKILL now (a server dying mid-run). */
  kill: () => Promise<void>;
}

function spawnLogged(cmd: string, args: string[], logFile: string): Proc {
  const full = existsSync(kSetpriv) ? [kSetpriv, '--pdeathsig', 'KILL', '--', cmd, ...args] : [cmd, ...args];
  const fd = openSync(logFile, 'a');
  const child = spawn(full[0] as string, full.slice(1), { stdio: ['ignore', fd, fd] });
  closeSync(fd);
  const exited = new Promise<void>((r) => {
    child.on('close', () => r());
    child.on('error', () => r());
  });
  const end = async (sig: NodeJS.Signals): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill(sig);
      const t = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(t);
    }
  };
  return {
    child,
    log: () => (existsSync(logFile) ? readFileSync(logFile, 'utf8') : ''),
    stop: () => end('SIGTERM'),
    kill: () => end('SIGKILL'),
  };
}

/** Resolves once `url` answers anything (or rejects with the process log). */
export async function waitHttp(url: string, proc: Proc, opts: { timeoutMs?: number; socketPath?: string } = {}): Promise<void> {
  const until = Date.now() + (opts.timeoutMs ?? 20_000);
  for (;;) {
    if (proc.child.exitCode !== null) throw new Error(`server exited (${proc.child.exitCode}):\n${proc.log().slice(-2000)}`);
    try {
      const { Agent } = await import('undici');
      const dispatcher = new Agent({ connect: { rejectUnauthorized: false, ...(opts.socketPath ? { socketPath: opts.socketPath } : {}) } });
      const res = await request(url, { dispatcher, headersTimeout: 1000, bodyTimeout: 1000 });
      await res.body.dump();
      await dispatcher.close();
      return;
    } catch {
      if (Date.now() > until) throw new Error(`${url} did not answer:\n${proc.log().slice(-2000)}`);
      await sleep(50);
    }
  }
}

export interface Certs {
  dir: string;
  caPem: string;
  serverPem: string;
  serverKey: string;
  /** Self-signed certificate + key that sign registry tokens. */
  tokenPem: string;
  tokenKey: string;
}

function openssl(args: string[], cwd: string): void {
  const r = spawnSync('openssl', args, { cwd, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`openssl ${args.join(' ')}: ${r.stderr}`);
}

/** A CA, a server certificate for 127.0.0.1 signed by it, and a token signing certificate. */
export function makeCerts(dir: string): Certs {
  mkdirSync(dir, { recursive: true });
  const days = ['-days', '2'];
  openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', ...days, '-subj', '/CN=nydus test CA'], dir);
  openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=127.0.0.1'], dir);
  writeFileSync(join(dir, 'san.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  openssl(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.pem', ...days, '-extfile', 'san.ext'], dir);
  openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'token.key', '-out', 'token.pem', ...days, '-subj', '/CN=nydus test token signer'], dir);
  return {
    dir,
    caPem: join(dir, 'ca.pem'),
    serverPem: join(dir, 'server.pem'),
    serverKey: join(dir, 'server.key'),
    tokenPem: join(dir, 'token.pem'),
    tokenKey: join(dir, 'token.key'),
  };
}

/** An htpasswd line (bcrypt, the only hash docker-registry accepts). */
export function htpasswdLine(user: string, pass: string): string {
  const r = spawnSync('python3', ['-W', 'ignore', '-c', 'import crypt,sys; print(crypt.crypt(sys.argv[1], crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16)))', pass], {
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`bcrypt failed: ${r.stderr}`);
  return `${user}:${r.stdout.trim()}\n`;
}

export type RegistryAuth =
  | { kind: 'none' }
  | { kind: 'htpasswd'; file: string }
  | { kind: 'token'; realm: string; service: string; issuer: string; rootCert: string };

export interface Registry extends Proc {
  port: number;
  url: string;
}

/** docker-registry serving `storageDir` on 127.0.0.1 (TLS when `tls` is given). */
export async function startRegistry(dir: string, storageDir: string, auth: RegistryAuth, tls?: { cert: string; key: string }): Promise<Registry> {
  mkdirSync(dir, { recursive: true });
  const port = await freePort();
  const lines = [
    'version: 0.1',
    'log:',
    '  level: error',
    '  accesslog:',
    '    disabled: true',
    'storage:',
    '  cache:',
    '    blobdescriptor: inmemory',
    '  filesystem:',
    `    rootdirectory: ${storageDir}`,
    '  delete:',
    '    enabled: true',
    'http:',
    `  addr: 127.0.0.1:${port}`,
    '  secret: nydus-test-secret',
  ];
  if (tls) lines.push('  tls:', `    certificate: ${tls.cert}`, `    key: ${tls.key}`);
  if (auth.kind === 'htpasswd') lines.push('auth:', '  htpasswd:', '    realm: nydus-test', `    path: ${auth.file}`);
  if (auth.kind === 'token') {
    lines.push('auth:', '  token:', `    realm: ${auth.realm}`, `    service: ${auth.service}`, `    issuer: ${auth.issuer}`, `    rootcertbundle: ${auth.rootCert}`);
  }
  const cfg = join(dir, 'config.yml');
  writeFileSync(cfg, `${lines.join('\n')}\n`);
  const proc = spawnLogged(which('docker-registry') ?? 'docker-registry', ['serve', cfg], join(dir, 'registry.log'));
  const url = `${tls ? 'https' : 'http'}://127.0.0.1:${port}`;
  await waitHttp(`${url}/v2/`, proc);
  return { ...proc, port, url };
}

/** Uploads a blob (monolithic: POST, then PUT with the digest) to an anonymous registry. */
export async function pushBlob(base: string, repo: string, blobId: string, data: Buffer): Promise<void> {
  const start = await request(`${base}/v2/${repo}/blobs/uploads/`, { method: 'POST' });
  await start.body.dump();
  const loc = start.headers['location'];
  if (start.statusCode !== 202 || typeof loc !== 'string') throw new Error(`upload start: HTTP ${start.statusCode}`);
  const u = new URL(loc, base);
  u.searchParams.set('digest', `sha256:${blobId}`);
  const put = await request(u, { method: 'PUT', body: data, headers: { 'content-type': 'application/octet-stream', 'content-length': String(data.length) } });
  const text = await put.body.text();
  if (put.statusCode !== 201) throw new Error(`upload of ${blobId}: HTTP ${put.statusCode} ${text}`);
}

export interface Nginx extends Proc {
  dir: string;
  /** Lines of the access log (format: what `logFormat` says). */
  access: () => string[];
  /**
   * The access log once it stops growing (nginx logs a request after the reply went out, so a
   * client may see the reply before the line is written).
   */
  settled: () => Promise<string[]>;
  /** Restarts nginx with other server blocks (same ports). */
  reconfigure: (servers: string) => Promise<void>;
}

/**
 * nginx as one process (`master_process off`: a kill takes the whole server down at once, and
 * it dies with the test through setpriv's parent-death signal) with `servers` (server blocks)
 * inside an http block.
 */
export async function startNginx(dir: string, servers: string, waitFor: { url: string; socketPath?: string }, logFormat = '$request $status'): Promise<Nginx> {
  mkdirSync(join(dir, 'tmp'), { recursive: true });
  const root = process.getuid?.() === 0;
  const conf = (blocks: string): string => [
    root ? 'user root;' : '',
    'daemon off;',
    'master_process off;',
    `pid ${join(dir, 'nginx.pid')};`,
    `error_log ${join(dir, 'error.log')} warn;`,
    'events { worker_connections 256; }',
    'http {',
    `  log_format t '${logFormat}';`,
    `  access_log ${join(dir, 'access.log')} t;`,
    `  client_body_temp_path ${join(dir, 'tmp')};`,
    `  proxy_temp_path ${join(dir, 'tmp')};`,
    `  fastcgi_temp_path ${join(dir, 'tmp')};`,
    `  uwsgi_temp_path ${join(dir, 'tmp')};`,
    `  scgi_temp_path ${join(dir, 'tmp')};`,
    '  default_type application/octet-stream;',
    '  sendfile on;',
    '  keepalive_requests 10000;',
    blocks,
    '}',
  ].join('\n');
  writeFileSync(join(dir, 'nginx.conf'), conf(servers));
  const proc = spawnLogged(which('nginx') ?? 'nginx', ['-p', dir, '-c', join(dir, 'nginx.conf'), '-e', join(dir, 'error.log')], join(dir, 'stderr.log'));
  const log = (): string => `${proc.log()}${existsSync(join(dir, 'error.log')) ? readFileSync(join(dir, 'error.log'), 'utf8') : ''}`;
  const waitOpts = waitFor.socketPath === undefined ? {} : { socketPath: waitFor.socketPath };
  await waitHttp(waitFor.url, { ...proc, log }, waitOpts);
  const n: Nginx = {
    ...proc,
    log,
    dir,
    access: () => (existsSync(join(dir, 'access.log')) ? readFileSync(join(dir, 'access.log'), 'utf8').split('\n').filter(Boolean) : []),
    settled: async () => {
      let prev = -1;
      for (let i = 0; i < 20; i++) {
        const lines = n.access();
        if (lines.length === prev) return lines;
        prev = lines.length;
        await sleep(50);
      }
      return n.access();
    },
    reconfigure: async (blocks: string) => {
      await n.stop();
      writeFileSync(join(dir, 'nginx.conf'), conf(blocks));
      const again = spawnLogged(which('nginx') ?? 'nginx', ['-p', dir, '-c', join(dir, 'nginx.conf'), '-e', join(dir, 'error.log')], join(dir, 'stderr.log'));
      Object.assign(n, { child: again.child, stop: again.stop, kill: again.kill });
      await waitHttp(waitFor.url, { ...again, log }, waitOpts);
    },
  };
  return n;
}

export interface Child extends Proc {
  port: number;
}

/** A remote-child.ts server in its own process. */
export async function startChild(config: Record<string, unknown>, logFile: string): Promise<Child> {
  const script = fileURLToPath(new URL('./remote-child.js', import.meta.url));
  const full = existsSync(kSetpriv) ? [kSetpriv, '--pdeathsig', 'KILL', '--', process.execPath, script, JSON.stringify(config)] : [process.execPath, script, JSON.stringify(config)];
  const child = spawn(full[0] as string, full.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stderr?.setEncoding('utf8').on('data', (d: string) => {
    err += d;
    writeFileSync(logFile, err);
  });
  const port = await new Promise<number>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`child server did not start: ${err}`)), 20_000);
    child.stdout?.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      const m = /\{"port":(\d+)\}/.exec(out);
      if (m) {
        clearTimeout(t);
        resolve(Number(m[1]));
      }
    });
    child.on('exit', (code) => {
      clearTimeout(t);
      reject(new Error(`child server exited ${String(code)}: ${err}`));
    });
  });
  const exited = new Promise<void>((r) => child.on('close', () => r()));
  const end = async (sig: NodeJS.Signals): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill(sig);
      await exited;
    }
  };
  return { child, port, log: () => err, stop: () => end('SIGTERM'), kill: () => end('SIGKILL') };
}

/** Uploads an object to s3rver (it accepts unsigned requests). */
export async function putObject(port: number, bucket: string, key: string, data: Buffer): Promise<void> {
  const res = await request(`http://127.0.0.1:${port}/${bucket}/${key}`, { method: 'PUT', body: data, headers: { 'content-length': String(data.length) } });
  const text = await res.body.text();
  if (res.statusCode !== 200) throw new Error(`PUT ${bucket}/${key}: HTTP ${res.statusCode} ${text}`);
}

/** The GUID text form (8-4-4-4-12) of 32 hex digits. */
function guidText(hex: string): string {
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
}

/**
 * A GPT disk image holding `blobs` as partitions named as upstream's localdisk tools name them:
 * partition name = first 32 hex digits of the blob id, unique GUID = the last 32 (type Linux
 * filesystem, not Basic Data). Built with sgdisk.
 */
export function makeGptDisk(path: string, blobs: { id: string; file: string }[]): void {
  const sectors = (n: number): number => Math.ceil(n / 512);
  let total = 2048 + 34;
  for (const b of blobs) total += Math.ceil(sectors(statSync(b.file).size) / 2048) * 2048;
  // Partitions start on 1 MiB boundaries (sgdisk's alignment) and end on the blob's last sector.
  writeFileSync(path, '');
  spawnSync('truncate', ['-s', String((total + 2048) * 512), path]);
  const args = ['-o'];
  let start = 2048;
  const placed: [number, string][] = [];
  blobs.forEach((b, i) => {
    const n = sectors(statSync(b.file).size);
    args.push(`-n`, `${i + 1}:${start}:${start + n - 1}`, '-t', `${i + 1}:8300`, '-c', `${i + 1}:${b.id.slice(0, 32)}`, '-u', `${i + 1}:${guidText(b.id.slice(32))}`);
    placed.push([start, b.file]);
    start += Math.ceil(n / 2048) * 2048;
  });
  const r = spawnSync('sgdisk', [...args, path], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`sgdisk: ${r.stderr}${r.stdout}`);
  for (const [s, file] of placed) {
    const w = spawnSync('dd', [`if=${file}`, `of=${path}`, 'bs=512', `seek=${s}`, 'conv=notrunc', 'status=none']);
    if (w.status !== 0) throw new Error(`dd into ${path} failed`);
  }
}
