/**
 * Every remote backend against a real server, in process (storage API, no mount): Debian's
 * docker-registry anonymous, with htpasswd Basic auth, with token auth (a token service in a
 * child process; POST, GET fallback, `access_token`, expiry both ways), over TLS with a test CA;
 * nginx serving blobs over TCP and a Unix socket, redirecting registry blobs to presigned-style
 * URLs; s3rver for s3 and oss; a sgdisk-made GPT image for localdisk. Each reads a synthetic
 * blob's bytes exactly, through the blob cache with digest validation where it matters.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import type { ResolvedBackend } from '../../src/config/index.js';
import { kHttpProxySchema, kLocalDiskSchema, kOssSchema, kRegistrySchema, kS3Schema } from '../../src/config/schema-common.js';
import type { BlobBackend, StorageSettings } from '../../src/storage/index.js';
import { createBackend, StorageService } from '../../src/storage/index.js';
import type { RegistryBackend } from '../../src/storage/registry/registry.js';
import type { Logger } from '../../src/util/logger.js';
import { createLogger } from '../../src/util/logger.js';
import type { Certs, Child, Nginx, Registry } from '../helpers/remote-servers.js';
import {
  freePort,
  htpasswdLine,
  loopbackLookup,
  makeCerts,
  makeGptDisk,
  pushBlob,
  putObject,
  remoteSkip,
  sleep,
  startChild,
  startNginx,
  startRegistry,
} from '../helpers/remote-servers.js';
import type { SyntheticBlob } from '../helpers/storage-fixtures.js';
import { buildBlob } from '../helpers/storage-fixtures.js';

const kSkip = remoteSkip();
const kRepo = 'nydus/app';
const b64 = (s: string): string => Buffer.from(s).toString('base64');
const kUserAuth = b64('puller:pull-secret-1');

function sha256(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

/** A synthetic blob whose id is its sha256 (what a registry requires). */
function blobFor(seed: number): SyntheticBlob {
  const sizes = Array.from({ length: 24 }, (_, i) => (i % 3 === 0 ? 65536 : 20000 + ((i * seed * 7919) % 40000)));
  const sb = buildBlob({ sizes, compressor: 'zstd', withCi: true });
  sb.info.blobId = sha256(sb.blob);
  return sb;
}

interface Captured {
  log: Logger;
  text: () => string;
}

function capture(): Captured {
  const lines: string[] = [];
  return { log: createLogger({ level: 'debug', stream: { write: (s: string) => lines.push(s) > 0 } }), text: () => lines.join('') };
}

function settings(backend: ResolvedBackend, workDir?: string): StorageSettings {
  return {
    backend,
    backendKey: `backend.${backend.type}`,
    cache: workDir ? { kind: 'blobcache', workDir, workDirKey: 'cache.filecache.work_dir' } : { kind: 'dummycache' },
    validate: true,
    batchSize: 0,
    headers: { 'User-Agent': 'nydusd/1.0.0' },
  };
}

/** The blob's bytes at a few ranges, and its size, through `b`. */
async function checkBytes(b: BlobBackend, sb: SyntheticBlob): Promise<void> {
  const id = sb.info.blobId;
  assert.equal(await b.size(id), sb.blob.length);
  for (const [off, len] of [[0, 4096], [1, 100_000], [sb.blob.length - 777, 777], [12345, 1]] as const) {
    assert.ok((await b.read(id, off, len)).equals(sb.blob.subarray(off, off + len)), `range ${off}+${len}`);
  }
}

/** Every byte of the blob's file through the blob cache (digests validated), cold. */
async function checkThroughCache(s: StorageSettings, sb: SyntheticBlob, log?: Logger): Promise<StorageService> {
  const svc = await StorageService.create(s, log);
  const img = await svc.openImage([sb.info]);
  assert.ok((await img.read(sb.chunks, 0, sb.file.length)).equals(sb.file));
  return svc;
}

describe('remote backends against real servers', { skip: kSkip, timeout: 240_000 }, () => {
  const work = mkdtempSync(join(tmpdir(), 'nydusd-remote-'));
  const store = join(work, 'registry-store');
  const blobFiles = join(work, 'blobs');
  const a = blobFor(1);
  const b = blobFor(2);
  let certs: Certs;
  let anon: Registry;
  const stop: (() => Promise<void>)[] = [];
  let fresh = 0;
  const dir = (name: string): string => {
    const d = join(work, `${name}-${fresh++}`);
    mkdirSync(d, { recursive: true });
    return d;
  };

  before(async () => {
    mkdirSync(blobFiles);
    certs = makeCerts(join(work, 'certs'));
    anon = await startRegistry(join(work, 'anon'), store, { kind: 'none' });
    stop.push(anon.stop);
    for (const sb of [a, b]) {
      await pushBlob(anon.url, kRepo, sb.info.blobId, sb.blob);
      writeFileSync(join(blobFiles, sb.info.blobId), sb.blob);
    }
  });
  after(async () => {
    for (const s of stop.reverse()) await s();
    rmSync(work, { recursive: true, force: true });
  });

  const registry = (extra: Record<string, unknown>): ResolvedBackend => ({
    type: 'registry',
    config: kRegistrySchema.parse({ scheme: 'http', host: `127.0.0.1:${anon.port}`, repo: kRepo, timeout: 5, ...extra }),
  });

  test('registry, anonymous: HEAD size, ranged GETs, one keep-alive connection for many reads', async () => {
    const be = await createBackend(settings(registry({})), capture().log);
    try {
      await checkBytes(be, a);
      await checkBytes(be, b);
      for (let i = 0; i < 40; i++) await be.read(a.info.blobId, i * 1000, 1000);
      // Sequential requests reuse a kept-alive connection (a second one may open while the
      // first is still being handed back to the pool).
      assert.ok(be.stats().connections <= 2, `${be.stats().connections} connections for 50 requests`);
    } finally {
      await be.close();
    }
    const svc = await checkThroughCache(settings(registry({}), dir('cache')), a);
    await svc.close();
  });

  test('registry, htpasswd Basic auth: served with the configured credentials, refused without or with wrong ones', async () => {
    const htpasswd = join(work, 'htpasswd');
    writeFileSync(htpasswd, htpasswdLine('puller', 'pull-secret-1'));
    const reg = await startRegistry(join(work, 'basic'), store, { kind: 'htpasswd', file: htpasswd });
    stop.push(reg.stop);
    const at = (auth?: string): ResolvedBackend => registry({ host: `127.0.0.1:${reg.port}`, ...(auth ? { auth } : {}) });
    const cap = capture();
    const ok = await createBackend(settings(at(kUserAuth)), cap.log);
    try {
      await checkBytes(ok, a);
    } finally {
      await ok.close();
    }
    for (const auth of [undefined, b64('puller:wrong-secret-2')]) {
      const be = await createBackend(settings(at(auth)), cap.log);
      try {
        await assert.rejects(be.read(a.info.blobId, 0, 10), /HTTP 401 \(access denied\)/);
        assert.equal(be.stats().retries, 0, 'an authorization failure is not retried');
      } finally {
        await be.close();
      }
    }
    for (const s of ['pull-secret-1', 'wrong-secret-2', kUserAuth]) assert.ok(!cap.text().includes(s), `log shows ${s}`);
    await reg.stop();
  });

  test('registry, token auth: POST then cached, GET fallback with access_token, the first request alone, expiry refreshed and re-asked', async () => {
    const tokenCfg = { mode: 'token', certFile: certs.tokenPem, keyFile: certs.tokenKey, issuer: 'nydus-test-issuer', service: 'nydus-test', users: { puller: 'pull-secret-1' } };
    // 1. POST form; 8 parallel reads on a fresh backend: the first runs alone, one token serves all.
    const tok = await startChild({ ...tokenCfg, expiresIn: 600, jwtLifetime: 300 }, join(work, 'token1.log'));
    stop.push(tok.stop);
    const reg = await startRegistry(join(work, 'token1'), store, { kind: 'token', realm: `http://127.0.0.1:${tok.port}/token`, service: 'nydus-test', issuer: 'nydus-test-issuer', rootCert: certs.tokenPem });
    stop.push(reg.stop);
    const cap = capture();
    const be = await createBackend(settings(registry({ host: `127.0.0.1:${reg.port}`, auth: kUserAuth })), cap.log);
    try {
      const reads = Array.from({ length: 8 }, (_, i) => be.read(a.info.blobId, i * 4096, 4096));
      const got = await Promise.all(reads);
      got.forEach((g, i) => assert.ok(g.equals(a.blob.subarray(i * 4096, (i + 1) * 4096))));
      const st = await stats(tok);
      assert.equal(st.issued, 1, 'one token for the parallel first reads');
      assert.equal(st.post, 1);
      assert.deepEqual(st.scopes, [`repository:${kRepo}:pull`]);
      await checkBytes(be, b);
      assert.equal((await stats(tok)).issued, 1, 'the token is cached');
    } finally {
      await be.close();
    }
    // 2. A token service that only answers GET and replies `access_token`; the token dies 3 s
    // after issue at the registry (its 60 s leeway included) although expires_in says 600:
    // the 401 is retried without the stale token, the challenge answered again.
    const tok2 = await startChild({ ...tokenCfg, expiresIn: 600, jwtLifetime: -57, getOnly: true, field: 'access_token' }, join(work, 'token2.log'));
    stop.push(tok2.stop);
    const reg2 = await startRegistry(join(work, 'token2'), store, { kind: 'token', realm: `http://127.0.0.1:${tok2.port}/token`, service: 'nydus-test', issuer: 'nydus-test-issuer', rootCert: certs.tokenPem });
    stop.push(reg2.stop);
    const be2 = await createBackend(settings(registry({ host: `127.0.0.1:${reg2.port}`, auth: kUserAuth })), cap.log);
    try {
      assert.ok((await be2.read(a.info.blobId, 0, 100)).equals(a.blob.subarray(0, 100)));
      await sleep(3500);
      assert.ok((await be2.read(a.info.blobId, 100, 100)).equals(a.blob.subarray(100, 200)));
      const st = await stats(tok2);
      assert.equal(st.issued, 2, 'the expired token was replaced');
      assert.ok(st.get >= 2 && st.post <= 1, `POST tried once, GET remembered: ${JSON.stringify(st)}`);
    } finally {
      await be2.close();
    }
    // 3. A short expires_in: refreshed before it runs out, no 401 needed.
    const tok3 = await startChild({ ...tokenCfg, expiresIn: 2, jwtLifetime: 300 }, join(work, 'token3.log'));
    stop.push(tok3.stop);
    const reg3 = await startRegistry(join(work, 'token3'), store, { kind: 'token', realm: `http://127.0.0.1:${tok3.port}/token`, service: 'nydus-test', issuer: 'nydus-test-issuer', rootCert: certs.tokenPem });
    stop.push(reg3.stop);
    const be3 = await createBackend(settings(registry({ host: `127.0.0.1:${reg3.port}`, auth: kUserAuth })), cap.log);
    try {
      await be3.read(a.info.blobId, 0, 10);
      await sleep(1200);
      await be3.read(a.info.blobId, 10, 10);
      assert.equal((await stats(tok3)).issued, 2);
      assert.equal((be3.raw as RegistryBackend).auth.tokensFetched, 2);
    } finally {
      await be3.close();
    }
    assert.doesNotMatch(cap.text(), /eyJ|pull-secret-1/, 'no token or password in the log');
  });

  test('registry over TLS: ca_cert_files trusted, an unknown CA refused without retries, skip_verify accepted (and falls back to http)', async () => {
    const reg = await startRegistry(join(work, 'tls'), store, { kind: 'none' }, { cert: certs.serverPem, key: certs.serverKey });
    stop.push(reg.stop);
    const tls = (extra: Record<string, unknown>): ResolvedBackend => registry({ scheme: 'https', host: `127.0.0.1:${reg.port}`, ...extra });
    const ok = await createBackend(settings(tls({ ca_cert_files: [certs.caPem] })), capture().log);
    try {
      await checkBytes(ok, a);
    } finally {
      await ok.close();
    }
    const bad = await createBackend(settings(tls({})), capture().log);
    try {
      await assert.rejects(bad.read(a.info.blobId, 0, 10), /SELF_SIGNED|UNABLE_TO_VERIFY|certificate/i);
      assert.equal(bad.stats().retries, 0);
    } finally {
      await bad.close();
    }
    const skip = await createBackend(settings(tls({ skip_verify: true })), capture().log);
    try {
      await checkBytes(skip, b);
    } finally {
      await skip.close();
    }
    await assert.rejects(createBackend(settings(tls({ ca_cert_files: [join(work, 'missing.pem')] })), capture().log), /ca_cert_files .*missing\.pem: cannot read \(ENOENT\)/);
    // skip_verify and https against a plain-http registry: switched to http for good (upstream).
    const cap = capture();
    const plain = await createBackend(settings(registry({ scheme: 'https', skip_verify: true })), cap.log);
    try {
      await checkBytes(plain, a);
      assert.match(cap.text(), /speaks plain http; switching to http \(skip_verify\)/);
    } finally {
      await plain.close();
    }
  });

  test('registry redirects: Location cached per blob, blob_redirected_host applied, an expired location asked again, a loop fails', async () => {
    const d = dir('nginx-redirect');
    const files = await freePort();
    const front = await freePort();
    const conf = (sig: string): string => `
      server { listen 127.0.0.1:${front};
        location ~ ^/v2/loop/app/blobs/(.*)$ { return 307 /v2/loop/app/blobs/$1; }
        location ~ ^/v2/${kRepo}/blobs/sha256:([0-9a-f]+)$ { return 307 http://127.0.0.1:${files}/files/$1?sig=${sig}; }
        location = /v2/ { return 200; }
      }
      server { listen 127.0.0.1:${files};
        location /files/ { if ($arg_sig != "${sig}") { return 403; } alias ${blobFiles}/; }
      }`;
    const ng = await startNginx(d, conf('SIG-ONE-s3cr3t'), { url: `http://127.0.0.1:${front}/v2/` });
    stop.push(() => ng.stop());
    const cap = capture();
    const be = await createBackend(settings(registry({ host: `127.0.0.1:${front}` })), cap.log);
    try {
      await checkBytes(be, a);
      const redirects = async (): Promise<number> => (await ng.settled()).filter((l) => / 307$/.test(l)).length;
      const before = await redirects();
      for (let i = 0; i < 5; i++) await be.read(a.info.blobId, i, 10);
      assert.equal(await redirects(), before, 'the cached location is used');
      // The signature changes (the presigned URL expired): 403 at the old location, the
      // registry is asked again, once.
      await ng.reconfigure(conf('SIG-TWO-s3cr3t'));
      assert.ok((await be.read(a.info.blobId, 50, 50)).equals(a.blob.subarray(50, 100)));
      assert.equal(await redirects(), before + 1);
    } finally {
      await be.close();
    }
    // blob_redirected_host: the location's host is replaced (the same server, by another name).
    const be2 = await createBackend(settings(registry({ host: `127.0.0.1:${front}`, blob_redirected_host: `localhost:${files}` })), cap.log);
    try {
      await checkBytes(be2, b);
    } finally {
      await be2.close();
    }
    assert.doesNotMatch(cap.text(), /SIG-(ONE|TWO)/, 'presigned query strings are never logged');
    // A registry that redirects a blob to itself, forever.
    const be3 = await createBackend(settings(registry({ host: `127.0.0.1:${front}`, repo: 'loop/app' })), cap.log);
    try {
      await assert.rejects(be3.read(b.info.blobId, 0, 10), /more than 5 redirects/);
      assert.equal(be3.stats().retries, 3);
    } finally {
      await be3.close();
    }
  });

  test('http-proxy: {addr}{path}/{blob_id} over TCP, and `/` over a Unix socket', async () => {
    const d = dir('nginx-blobs');
    const port = await freePort();
    const sock = join(d, 'blob.sock');
    const ng: Nginx = await startNginx(
      d,
      `server { listen 127.0.0.1:${port}; location /ns/blobs/ { alias ${blobFiles}/; } location = /ping { return 200; } }
       server { listen unix:${sock}; location = / { root ${blobFiles}; try_files /${b.info.blobId} =404; } }`,
      { url: `http://127.0.0.1:${port}/ping` },
    );
    stop.push(ng.stop);
    const tcp = await createBackend(settings({ type: 'http-proxy', config: kHttpProxySchema.parse({ addr: `http://127.0.0.1:${port}`, path: '/ns/blobs' }) }), capture().log);
    try {
      await checkBytes(tcp, a);
    } finally {
      await tcp.close();
    }
    const svc = await checkThroughCache(settings({ type: 'http-proxy', config: kHttpProxySchema.parse({ addr: sock }) }, dir('cache')), b);
    assert.ok(svc.stats().backend.readCount > 0);
    await svc.close();
    await assert.rejects(createBackend(settings({ type: 'http-proxy', config: kHttpProxySchema.parse({ addr: join(d, 'none.sock') }) }), capture().log), /none\.sock: no such socket/);
    await ng.stop();
  });

  test('s3 (path style, SigV4) and oss (virtual-hosted bucket, OSS signature) on s3rver', async () => {
    const s3: Child = await startChild({ mode: 's3rver', directory: dir('s3rver'), buckets: ['nydus', 'ossbkt.oss.test'] }, join(work, 's3rver.log'));
    stop.push(s3.stop);
    await putObject(s3.port, 'nydus', `layers/${a.info.blobId}`, a.blob);
    // s3rver takes a host name that is not an address as the bucket name.
    await putObject(s3.port, 'ossbkt.oss.test', `p/${b.info.blobId}`, b.blob);
    const s3be: ResolvedBackend = {
      type: 's3',
      config: kS3Schema.parse({ scheme: 'http', endpoint: `127.0.0.1:${s3.port}`, region: 'us-east-1', bucket_name: 'nydus', object_prefix: 'layers/', access_key_id: 'S3RVER', access_key_secret: 'S3RVER' }),
    };
    const svc = await checkThroughCache(settings(s3be, dir('cache')), a);
    await svc.close();
    const be = await createBackend(settings(s3be), capture().log);
    try {
      await checkBytes(be, a);
      await assert.rejects(be.read(b.info.blobId, 0, 10), /HTTP 404/);
    } finally {
      await be.close();
    }
    const oss: ResolvedBackend = {
      type: 'oss',
      config: kOssSchema.parse({ scheme: 'http', endpoint: `oss.test:${s3.port}`, bucket_name: 'ossbkt', object_prefix: 'p/', access_key_id: 'AK', access_key_secret: 'SK' }),
    };
    const obe = await createBackend(settings(oss), capture().log, { lookup: loopbackLookup });
    try {
      // s3rver only knows AWS signatures: it refuses "OSS ..." with 400, so a plain 400 shows
      // the request reached it; the bytes come through nginx in the end-to-end test.
      await assert.rejects(obe.read(b.info.blobId, 0, 10), /HTTP 400/);
    } finally {
      await obe.close();
    }
  });

  test('localdisk: GPT partitions of a sgdisk image are the blobs, named as upstream names them', async () => {
    const disk = join(dir('disk'), 'disk.img');
    makeGptDisk(disk, [a, b].map((sb) => ({ id: sb.info.blobId, file: join(blobFiles, sb.info.blobId) })));
    const ld: ResolvedBackend = { type: 'localdisk', config: kLocalDiskSchema.parse({ device_path: disk }) };
    const be = await createBackend(settings(ld), capture().log);
    try {
      for (const sb of [a, b]) {
        const id = sb.info.blobId;
        // A partition ends on a sector boundary: the blob reads as its bytes, then padding.
        assert.equal(await be.size(id), Math.ceil(sb.blob.length / 512) * 512);
        assert.ok((await be.read(id, 0, sb.blob.length)).equals(sb.blob));
      }
      await assert.rejects(be.read('c'.repeat(64), 0, 1), /no partition .* holds it/);
      await assert.rejects(be.read(a.info.blobId, await be.size(a.info.blobId), 1), /beyond partition/);
    } finally {
      await be.close();
    }
    const svc = await checkThroughCache(settings(ld, dir('cache')), b);
    await svc.close();
    // A damaged table is refused at start, naming the device.
    const { openSync, writeSync, closeSync } = await import('node:fs');
    const fd = openSync(disk, 'r+');
    writeSync(fd, Buffer.from('garbage'), 0, 7, 512 + 40); // inside the 92-byte header the CRC covers
    closeSync(fd);
    await assert.rejects(createBackend(settings(ld), capture().log), /no valid GPT \(header CRC32 mismatch\)/);
    await assert.rejects(createBackend(settings({ type: 'localdisk', config: kLocalDiskSchema.parse({ device_path: disk, disable_gpt: true }) }), capture().log), /disable_gpt .* is not supported yet/);
  });
});

async function stats(tok: Child): Promise<{ issued: number; post: number; get: number; denied: number; scopes: string[] }> {
  const { request } = await import('undici');
  const r = await request(`http://127.0.0.1:${tok.port}/stats`);
  return (await r.body.json()) as { issued: number; post: number; get: number; denied: number; scopes: string[] };
}
