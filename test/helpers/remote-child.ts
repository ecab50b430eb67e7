/**
 * Servers the remote-backend tests run in a child process (never in the test process: a test
 * that reads a FUSE mount synchronously would otherwise block the server the daemon is
 * waiting on). Started by remote-servers.ts as `node remote-child.js '<json>'`; prints one line
 * `{"port":N}` once it listens, exits on SIGTERM.
 *
 * - `s3rver`: the npm S3 server holding objects (it does not check V4 signatures; the tests
 *   check ours against AWS's vectors and curl).
 * - `token`: a registry token service (docker distribution's token auth): checks Basic
 *   credentials, issues RS256 JWTs carrying the signing certificate in `x5c` (the registry
 *   trusts it through `rootcertbundle`). `GET /stats` reports what it issued.
 */
import { createPrivateKey, createSign, randomUUID, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRequire } from 'node:module';

interface S3rverConfig {
  mode: 's3rver';
  directory: string;
  buckets: string[];
}

interface TokenConfig {
  mode: 'token';
  certFile: string;
  keyFile: string;
  issuer: string;
  service: string;
  /** user -> password; empty: anonymous tokens. */
  users: Record<string, string>;
  /** expires_in in the reply, seconds. */
  expiresIn: number;
  /** Seconds the JWT's exp lies after issue (docker-registry adds 60 s of leeway to it). */
  jwtLifetime: number;
  /** Answer POST with 405, so clients must use GET. */
  getOnly?: boolean;
  /** Reply field: "token" (default) or "access_token". */
  field?: 'token' | 'access_token';
}

type Config = S3rverConfig | TokenConfig;

const cfg = JSON.parse(process.argv[2] ?? '{}') as Config;

function b64url(b: Buffer | string): string {
  return Buffer.from(b).toString('base64url');
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve) => {
    let s = '';
    req.setEncoding('utf8').on('data', (d: string) => (s += d)).on('end', () => resolve(s));
  });
}

async function tokenServer(c: TokenConfig): Promise<number> {
  const key = createPrivateKey(readFileSync(c.keyFile));
  const der = new X509Certificate(readFileSync(c.certFile)).raw;
  const stats = { issued: 0, post: 0, get: 0, denied: 0, scopes: [] as string[] };
  const srv = createServer((req: IncomingMessage, res: ServerResponse) => {
    void (async (): Promise<void> => {
      const url = new URL(req.url ?? '/', 'http://x');
      if (url.pathname === '/stats') {
        res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify(stats));
        return;
      }
      if (url.pathname !== '/token') {
        res.writeHead(404).end();
        return;
      }
      const body = await readBody(req);
      if (req.method === 'POST' && c.getOnly) {
        res.writeHead(405).end();
        return;
      }
      const params = req.method === 'POST' ? new URLSearchParams(body) : url.searchParams;
      if (req.method === 'POST') stats.post++;
      else stats.get++;
      const users = Object.entries(c.users);
      if (users.length > 0) {
        const m = /^Basic (.+)$/.exec(req.headers.authorization ?? '');
        const [user, pass] = m ? Buffer.from(m[1] ?? '', 'base64').toString('utf8').split(':', 2) : [];
        if (user === undefined || c.users[user] !== pass) {
          stats.denied++;
          res.writeHead(401, { 'Content-Type': 'application/json' }).end('{"details":"bad credentials"}');
          return;
        }
      }
      const scope = params.get('scope') ?? '';
      stats.scopes.push(scope);
      const [type, name, actions] = scope.split(':');
      const now = Math.floor(Date.now() / 1000);
      const header = { typ: 'JWT', alg: 'RS256', x5c: [der.toString('base64')] };
      const claims = {
        iss: c.issuer,
        sub: 'nydus-test',
        aud: c.service,
        exp: now + c.jwtLifetime,
        nbf: now - 10,
        iat: now,
        jti: randomUUID(),
        access: type === 'repository' ? [{ type, name, actions: (actions ?? '').split(',') }] : [],
      };
      const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
      const sig = createSign('RSA-SHA256').update(input).sign(key);
      stats.issued++;
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ [c.field ?? 'token']: `${input}.${b64url(sig)}`, expires_in: c.expiresIn, issued_at: new Date().toISOString() }));
    })();
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return (srv.address() as AddressInfo).port;
}

interface S3rverInstance {
  run(): Promise<AddressInfo>;
}
type S3rverCtor = new (o: Record<string, unknown>) => S3rverInstance;

async function s3rver(c: S3rverConfig): Promise<number> {
  const require = createRequire(import.meta.url);
  const S3rver = require('s3rver') as S3rverCtor;
  const server = new S3rver({
    address: '127.0.0.1',
    port: 0,
    silent: true,
    directory: c.directory,
    configureBuckets: c.buckets.map((name) => ({ name })),
  });
  const addr = await server.run();
  return addr.port;
}

const port = cfg.mode === 's3rver' ? await s3rver(cfg) : await tokenServer(cfg);
process.stdout.write(`${JSON.stringify({ port })}\n`);
process.on('SIGTERM', () => process.exit(0));
