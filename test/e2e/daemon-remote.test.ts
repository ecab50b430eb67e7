/**
 * The product with every remote backend, as users run it: `nydus-image create`, the blob put
 * where the backend keeps blobs, `nydusd` with a config naming that backend, digest validation
 * on and an empty cache. Per backend, a FUSE mount on the host, and all of them as virtio-fs
 * shares of ONE QEMU guest, must equal the source tree:
 *   registry   docker-registry with token auth (IMAGE_PULL_AUTH credentials, a token service)
 *   s3         s3rver, path style, SigV4
 *   oss        s3rver behind nginx as the P2P proxy (the bucket host only resolves there);
 *              nginx logs each request and the test re-checks its OSS signature
 *   http-proxy nginx serving the blob directory, NYDUS_HEADER_* headers passed through
 *   localdisk  a GPT disk image made with sgdisk
 * Also: a registry that fails mid-run gives EIO for those reads only and the same daemon
 * serves them once it recovers; the daemon's debug log never shows a credential.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { guestAvailable, runGuest } from '../../qemu/guest.js';
import { parseTreeDump, toolBinary } from '../../qemu/tools.js';
import { createImage, defaultBuildOptions } from '../../src/rafs/builder/index.js';
import { signOss } from '../../src/storage/object/sign.js';
import type { RunningDaemon } from '../helpers/daemon.js';
import { startDaemon } from '../helpers/daemon.js';
import { FaultProxy } from '../helpers/fault-proxy.js';
import type { Nginx } from '../helpers/remote-servers.js';
import { freePort, makeCerts, makeGptDisk, pushBlob, putObject, remoteSkip, startChild, startNginx, startRegistry } from '../helpers/remote-servers.js';
import { makeRichTree } from '../helpers/rich-tree.js';
import { chunkBytes } from '../helpers/storage-fixtures.js';
import type { TreeSnapshot } from '../helpers/tree.js';
import { diffTrees, snapshotDir, snapshotFromTreeDump } from '../helpers/tree.js';

const kSkip = process.getuid?.() !== 0 ? 'FUSE mounts need root' : remoteSkip();
const kChunk = 0x10000;
const kRepo = 'nydus/e2e';
const kUser = 'e2e-puller';
const kPass = 'e2e-registry-password-3';
const kPullAuth = Buffer.from(`${kUser}:${kPass}`).toString('base64');
const kOssSecret = 'oss-access-key-secret-4';
const kS3Secret = 'S3RVER';
const kBackends = ['registry', 's3', 'oss', 'http-proxy', 'localdisk'] as const;
type Backend = (typeof kBackends)[number];

describe('nydusd with remote backends: FUSE and a QEMU guest read lazily what the source holds', { skip: kSkip, timeout: 600_000 }, () => {
  const work = mkdtempSync(join(tmpdir(), 'nydusd-remote-e2e-'));
  const src = join(work, 'src');
  const blobDir = join(work, 'blobs');
  const boot = join(work, 'image.boot');
  let blobId = '';
  let want: TreeSnapshot = {};
  const backendCfg = {} as Record<Backend, Record<string, unknown>>;
  const env: NodeJS.ProcessEnv = { IMAGE_PULL_AUTH: kPullAuth, 'NYDUS_HEADER_X-Nydus-Test': 'header-from-env' };
  let blobNginx: Nginx;
  let ossProxy: Nginx;
  let registryPort = 0;
  const cleanup: (() => Promise<void>)[] = [];
  let n = 0;

  before(async () => {
    makeRichTree(src, { chunkSize: kChunk, manyEntries: 150, depth: 12 });
    // Incompressible data: several merged ranged GETs per file.
    writeFileSync(join(src, 'random.bin'), chunkBytes(99, 3 * 1024 * 1024 + 12345, false));
    want = snapshotDir(src);
    const root = want['/'];
    if (root) root.perm = (root.perm & ~0o777) | 0o755;
    mkdirSync(blobDir);
    const built = await createImage({ ...defaultBuildOptions(src), chunkSize: kChunk, blobDir, bootstrapPath: boot });
    blobId = built.blobIds[0] ?? '';
    assert.match(blobId, /^[0-9a-f]{64}$/);
    const blob = readFileSync(join(blobDir, blobId));

    // registry: pushed through an anonymous instance, served by one with token auth.
    const certs = makeCerts(join(work, 'certs'));
    const store = join(work, 'store');
    const anon = await startRegistry(join(work, 'anon'), store, { kind: 'none' });
    await pushBlob(anon.url, kRepo, blobId, blob);
    await anon.stop();
    const tok = await startChild(
      { mode: 'token', certFile: certs.tokenPem, keyFile: certs.tokenKey, issuer: 'e2e-issuer', service: 'e2e', users: { [kUser]: kPass }, expiresIn: 600, jwtLifetime: 600 },
      join(work, 'token.log'),
    );
    cleanup.push(tok.stop);
    const reg = await startRegistry(join(work, 'registry'), store, { kind: 'token', realm: `http://127.0.0.1:${tok.port}/token`, service: 'e2e', issuer: 'e2e-issuer', rootCert: certs.tokenPem });
    cleanup.push(reg.stop);
    registryPort = reg.port;
    backendCfg.registry = { scheme: 'http', host: `127.0.0.1:${reg.port}`, repo: kRepo };

    // s3 and oss: s3rver (the oss bucket is named by its virtual host).
    const s3 = await startChild({ mode: 's3rver', directory: join(work, 's3rver'), buckets: ['nydus', 'ossbkt.oss.e2e'] }, join(work, 's3rver.log'));
    cleanup.push(s3.stop);
    await putObject(s3.port, 'nydus', `blobs/${blobId}`, blob);
    await putObject(s3.port, 'ossbkt.oss.e2e', `p/${blobId}`, blob);
    backendCfg.s3 = { scheme: 'http', endpoint: `127.0.0.1:${s3.port}`, region: 'us-east-1', bucket_name: 'nydus', object_prefix: 'blobs/', access_key_id: 'S3RVER', access_key_secret: kS3Secret };
    const proxyPort = await freePort();
    // s3rver only knows AWS signatures, so the proxy strips the OSS one after logging it.
    ossProxy = await startNginx(
      join(work, 'nginx-oss'),
      `server { listen 127.0.0.1:${proxyPort};
         location = /server/ping { return 200; }
         location / { proxy_pass http://127.0.0.1:${s3.port}; proxy_set_header Authorization ""; proxy_set_header Host $http_host; } }`,
      { url: `http://127.0.0.1:${proxyPort}/server/ping` },
      '$request_method|$host|$uri|$http_date|$http_authorization|$status',
    );
    cleanup.push(() => ossProxy.stop());
    backendCfg.oss = {
      scheme: 'http', endpoint: `oss.e2e:${s3.port}`, bucket_name: 'ossbkt', object_prefix: 'p/', access_key_id: 'OSSAK', access_key_secret: kOssSecret,
      proxy: { url: `http://127.0.0.1:${proxyPort}`, ping_url: `http://127.0.0.1:${proxyPort}/server/ping`, fallback: false },
    };

    // http-proxy: nginx serving the blob directory.
    const blobPort = await freePort();
    blobNginx = await startNginx(
      join(work, 'nginx-blobs'),
      `server { listen 127.0.0.1:${blobPort}; location /ns/blobs/ { alias ${blobDir}/; } location = /ping { return 200; } }`,
      { url: `http://127.0.0.1:${blobPort}/ping` },
      '$request $status x=$http_x_nydus_test ua=$http_user_agent',
    );
    cleanup.push(() => blobNginx.stop());
    backendCfg['http-proxy'] = { addr: `http://127.0.0.1:${blobPort}`, path: '/ns/blobs' };

    // localdisk: the blob as a GPT partition.
    const disk = join(work, 'disk.img');
    makeGptDisk(disk, [{ id: blobId, file: join(blobDir, blobId) }]);
    backendCfg.localdisk = { device_path: disk };
  });

  after(async () => {
    for (const c of cleanup.reverse()) await c();
    rmSync(work, { recursive: true, force: true });
  });

  /** A v2 config for `b`: its section, a fresh empty blob cache, digest validation on. */
  function config(b: Backend, override: Record<string, unknown> = {}): string {
    const dir = join(work, `run-${n++}`);
    mkdirSync(dir);
    const cfg = join(dir, 'config.json');
    writeFileSync(cfg, JSON.stringify({
      version: 2,
      backend: { type: b, [b]: { ...backendCfg[b], ...override } },
      cache: { type: 'blobcache', filecache: { work_dir: join(dir, 'cache') } },
      rafs: { validate: true, enable_xattr: true },
    }));
    return cfg;
  }

  function checkLog(d: RunningDaemon, b: Backend): void {
    const log = d.log();
    assert.doesNotMatch(log, / ERROR /, log);
    const m = /storage closed: backend (\d+) reads/.exec(log);
    assert.ok(m && Number(m[1]) > 0, `${b}: nothing was read from the backend:\n${log}`);
    for (const secret of [kPass, kPullAuth, kOssSecret, 'eyJ']) assert.ok(!log.includes(secret), `${b}: the log shows a secret (${secret.slice(0, 3)}...)`);
  }

  for (const b of kBackends) {
    test(`FUSE: ${b}`, { timeout: 120_000 }, async () => {
      const mnt = join(work, `mnt-${n++}`);
      mkdirSync(mnt);
      const d = await startDaemon(['--config', config(b), '--bootstrap', boot, '--mountpoint', mnt, '--log-level', 'debug'], { env });
      try {
        assert.deepEqual(diffTrees(want, snapshotDir(mnt), { ignoreRootMtime: true }), []);
      } finally {
        assert.equal(await d.stop(), 0, d.log());
      }
      checkLog(d, b);
      if (b === 'http-proxy') {
        const lines = (await blobNginx.settled()).filter((l) => l.includes(blobId));
        assert.ok(lines.length > 0 && lines.every((l) => l.includes('x=header-from-env ua=nydusd/1.0.0')), lines.join('\n'));
      }
      if (b === 'oss') {
        // Every request went through the proxy, signed as Alibaba documents it.
        const lines = (await ossProxy.settled()).filter((l) => l.includes(blobId));
        assert.ok(lines.length > 0);
        for (const l of lines) {
          const [method = '', host, uri = '', date = '', auth] = l.split('|');
          assert.equal(host, 'ossbkt.oss.e2e');
          const wantAuth = signOss({ method, date, headers: {}, resource: `/ossbkt${uri}`, accessKeyId: 'OSSAK', accessKeySecret: kOssSecret }).authorization;
          assert.equal(auth, wantAuth, l);
        }
      }
    });
  }

  test('a registry failing mid-run: EIO for those reads, the same daemon serves them after it recovers', { timeout: 120_000 }, async () => {
    const fp = await new FaultProxy(registryPort).start();
    const mnt = join(work, `mnt-${n++}`);
    mkdirSync(mnt);
    const d = await startDaemon(['--config', config('registry', { host: fp.origin, timeout: 2 }), '--bootstrap', boot, '--mountpoint', mnt], { env });
    try {
      // Reads go through the thread pool: the fault proxy lives on this event loop.
      assert.ok((await readFile(join(mnt, 'small.txt'))).equals(readFileSync(join(src, 'small.txt'))));
      fp.inject({ kind: 'status', value: 503, times: Infinity, match: /^GET .*\/blobs\// });
      await assert.rejects(readFile(join(mnt, 'random.bin')), (e: NodeJS.ErrnoException) => e.code === 'EIO');
      fp.clear();
      assert.ok((await readFile(join(mnt, 'random.bin'))).equals(readFileSync(join(src, 'random.bin'))));
      assert.ok((await readFile(join(mnt, 'multi.bin'))).equals(readFileSync(join(src, 'multi.bin'))));
    } finally {
      assert.equal(await d.stop(), 0, d.log());
      await fp.close();
    }
    const errors = d.log().split('\n').filter((l) => / ERROR /.test(l));
    assert.ok(errors.length >= 1 && errors.every((l) => l.includes(`blob ${blobId}: fetching`) && /at offset \d+ length \d+ failed/.test(l)), errors.join('\n'));
  });

  test('one QEMU guest mounts all five as virtio-fs shares and sees the source tree in each', { skip: guestAvailable(), timeout: 300_000 }, async () => {
    const daemons: RunningDaemon[] = [];
    const shares: { socket: string; tag: string }[] = [];
    try {
      for (const b of kBackends) {
        const socket = join(work, `vhost-${n++}.sock`);
        daemons.push(await startDaemon(['virtiofs', '--config', config(b), '--bootstrap', boot, '--sock', socket], { env }));
        shares.push({ socket, tag: b });
      }
      const script = [
        'set -e',
        'chmod +x /treedump',
        ...kBackends.flatMap((b) => [`mkdir -p /mnt/${b}`, `mount -t virtiofs ${b} /mnt/${b}`, `echo "=== ${b}"`, `/treedump /mnt/${b}`]),
      ].join('\n');
      const r = await runGuest({ script, virtiofs: shares, files: { '/treedump': readFileSync(toolBinary('treedump')) }, memoryMiB: 768, timeoutMs: 240_000 });
      assert.equal(r.exitCode, 0, `${r.output.slice(-3000)}\n${r.consoleLog.slice(-2000)}\n${daemons.map((d) => d.log().slice(-1500)).join('\n')}`);
      const parts = r.output.split(/^=== (\S+)$/m);
      for (const b of kBackends) {
        const i = parts.indexOf(b);
        assert.ok(i >= 0, `no dump for ${b}`);
        const got = snapshotFromTreeDump(parseTreeDump(parts[i + 1] ?? ''));
        assert.deepEqual(diffTrees(want, got, { ignoreRootMtime: true }), [], b);
      }
    } finally {
      for (const d of daemons) assert.equal(await d.stop(), 0, d.log());
    }
    daemons.forEach((d, i) => checkLog(d, kBackends[i] as Backend));
  });
});
