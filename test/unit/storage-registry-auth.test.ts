/**
 * Registry credentials without a registry: WWW-Authenticate parsing, `auth` checks, token
 * refresh timing, and `StorageService.reloadAuth` (the hook `PUT /api/v1/config` calls) against
 * a small HTTP server in this process that plays a registry's Basic-auth answers (the real
 * docker-registry runs in test/integration/storage-remote.test.ts).
 */
import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';

import { ConfigError } from '../../src/config/index.js';
import { kRegistrySchema } from '../../src/config/schema-common.js';
import { checkBasicAuth, parseChallenge, RegistryAuth } from '../../src/storage/registry/auth.js';
import { StorageService } from '../../src/storage/service.js';
import { createLogger, nullLogger } from '../../src/util/logger.js';

const b64 = (s: string): string => Buffer.from(s).toString('base64');

test('WWW-Authenticate: Bearer needs realm, service and scope; Basic needs nothing', () => {
  assert.deepEqual(parseChallenge('Bearer realm="https://auth.example/token",service="reg.example",scope="repository:a/b:pull"'), {
    scheme: 'bearer',
    realm: 'https://auth.example/token',
    service: 'reg.example',
    scope: 'repository:a/b:pull',
  });
  // Quoted commas, other spacing and case.
  assert.equal(parseChallenge('bearer  realm="http://t/x", service="s", scope="repository:a/b:pull,push"')?.scope, 'repository:a/b:pull,push');
  assert.deepEqual(parseChallenge('Basic realm="harbor"'), { scheme: 'basic', realm: 'harbor', service: '', scope: '' });
  assert.equal(parseChallenge('Bearer realm="x",service="y"'), undefined);
  assert.equal(parseChallenge('Negotiate abc'), undefined);
  assert.equal(parseChallenge(undefined), undefined);
});

test('auth must be base64 of user:password; the error never shows the value', () => {
  assert.equal(checkBasicAuth(` ${b64('u:p')} `, 'k'), b64('u:p'));
  for (const bad of ['not base64!', b64('no-colon'), '']) {
    assert.throws(() => checkBasicAuth(bad, 'backend.registry.auth'), (e: Error) => e instanceof ConfigError && !e.message.includes(bad === '' ? '\u0000' : bad));
  }
});

test('a token is refreshed before it expires, never earlier than half its lifetime', async () => {
  let fetched = 0;
  const auth = new RegistryAuth({}, () => Promise.resolve({ token: `t${++fetched}`, expiresIn: 2 }), nullLogger());
  const c = parseChallenge('Bearer realm="http://127.0.0.1:1/token",service="s",scope="x"');
  assert.ok(c);
  assert.equal(await auth.answer(c), 'Bearer t1');
  assert.equal(await auth.current(), 'Bearer t1', 'fresh token: no refresh');
  await new Promise((r) => setTimeout(r, 1100));
  assert.equal(await auth.current(), 'Bearer t2', 'past half of a 2 s lifetime: refreshed before use');
  assert.equal(auth.tokensFetched, 2);
  // Concurrent answers share one fetch.
  const all = await Promise.all([auth.answer(c), auth.answer(c), auth.answer(c)]);
  assert.deepEqual(all, ['Bearer t3', 'Bearer t3', 'Bearer t3']);
});

interface FakeRegistry {
  port: number;
  seen: string[];
  /** base64 user:pass the server accepts now. */
  accept: string;
  close: () => Promise<void>;
}

/** Answers blob HEAD/GET for one blob with Basic auth; records the Authorization it saw. */
async function fakeRegistry(blob: Buffer, accept: string): Promise<FakeRegistry> {
  const state: FakeRegistry = { port: 0, seen: [], accept, close: () => Promise.resolve() };
  const srv = createServer((req: IncomingMessage, res: ServerResponse) => {
    const a = req.headers.authorization ?? '';
    state.seen.push(a);
    if (a !== `Basic ${state.accept}`) {
      res.writeHead(401, { 'WWW-Authenticate': 'Basic realm="fake"', 'Content-Length': '0' }).end();
      return;
    }
    if (req.method === 'HEAD') {
      res.writeHead(200, { 'Content-Length': String(blob.length) }).end();
      return;
    }
    const m = /bytes=(\d+)-(\d+)/.exec(req.headers.range ?? '');
    const [s, e] = m ? [Number(m[1]), Number(m[2])] : [0, blob.length - 1];
    res.writeHead(206, { 'Content-Range': `bytes ${s}-${e}/${blob.length}`, 'Content-Length': String(e - s + 1) }).end(blob.subarray(s, e + 1));
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  state.port = (srv.address() as AddressInfo).port;
  state.close = () => new Promise<void>((r) => srv.close(() => r()));
  return state;
}

test('StorageService.reloadAuth: new credentials apply to the next request and are never logged', async () => {
  const blob = Buffer.from('0123456789abcdef');
  const id = 'ab'.repeat(32);
  const first = b64('alice:first-password');
  const second = b64('alice:second-password');
  const reg = await fakeRegistry(blob, first);
  const lines: string[] = [];
  const log = createLogger({ level: 'trace', stream: { write: (s: string) => lines.push(s) > 0 } });
  const cfg = kRegistrySchema.parse({ scheme: 'http', host: `127.0.0.1:${reg.port}`, repo: 'ns/app', auth: first });
  const svc = await StorageService.create({
    backend: { type: 'registry', config: cfg },
    backendKey: 'backend.registry',
    cache: { kind: 'dummycache' },
    validate: false,
    batchSize: 0,
  }, log);
  try {
    assert.deepEqual(await svc.backend.read(id, 0, 4), blob.subarray(0, 4));
    // The server now wants other credentials: the old ones fail (no retry helps a 401).
    reg.accept = second;
    await assert.rejects(svc.backend.read(id, 4, 4), /HTTP 401 \(access denied\)/);
    assert.equal(svc.reloadAuth({ auth: second }), true);
    assert.deepEqual(await svc.backend.read(id, 4, 4), blob.subarray(4, 8));
    assert.equal(reg.seen.at(-1), `Basic ${second}`);
    assert.throws(() => svc.reloadAuth({ auth: 'garbage!' }), ConfigError);
    // A preset bearer token replaces the header outright; this server refuses it, so the read
    // falls back to answering the Basic challenge with the reloaded credentials.
    svc.reloadAuth({ registry_token: 'preset-token-value' });
    const before = reg.seen.length;
    assert.deepEqual(await svc.backend.read(id, 8, 4), blob.subarray(8, 12));
    assert.deepEqual(reg.seen.slice(before), ['Bearer preset-token-value', '', `Basic ${second}`]);
  } finally {
    await svc.close();
    await reg.close();
  }
  const text = lines.join('');
  assert.match(text, /registry credentials reloaded \(auth\)/);
  for (const secret of [first, second, 'first-password', 'second-password', 'preset-token-value']) assert.ok(!text.includes(secret), `log shows ${secret}`);
});

test('reloadAuth on a backend that is not a registry does nothing and says so', async () => {
  const svc = await StorageService.create({
    backend: { type: 'localfs', config: { dir: '/', blob_file: '', alt_dirs: [] } },
    backendKey: 'backend.localfs',
    cache: { kind: 'dummycache' },
    validate: false,
    batchSize: 0,
  });
  try {
    assert.equal(svc.reloadAuth({ auth: b64('u:p') }), false);
  } finally {
    await svc.close();
  }
});
