/**
 * Registry credentials reloaded through the API (PUT /api/v1/config `registry_auth`, what
 * nydus-snapshotter sends when a pull secret rotates) reach the mount's registry backend: a
 * FUSE nydusd started with --apisock mounts an image whose blob lives in Debian's docker-registry
 * behind htpasswd Basic auth; after a PUT with a wrong password the next blob read is refused by
 * the registry (EIO), after a PUT with the right one the same read succeeds. dummycache, so every
 * read goes to the registry. Needs root and /dev/fuse, docker-registry and python3 bcrypt.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import type { TestImage } from '../helpers/api.js';
import { api, makeImage, mountBody } from '../helpers/api.js';
import type { RunningDaemon } from '../helpers/daemon.js';
import { startDaemon } from '../helpers/daemon.js';
import type { Registry } from '../helpers/remote-servers.js';
import { htpasswdLine, pushBlob, remoteSkip, startRegistry } from '../helpers/remote-servers.js';

const kRepo = 'nydus/app';
const b64 = (s: string): string => Buffer.from(s).toString('base64');
const kGood = b64('puller:pull-secret-1');
const kWrong = b64('puller:wrong-secret-2');

const skip = process.getuid?.() !== 0 ? 'needs root (FUSE mount)' : !existsSync('/dev/fuse') ? 'no /dev/fuse' : remoteSkip();

describe('PUT /api/v1/config registry_auth on a registry mount', { skip, timeout: 120_000 }, () => {
  const work = mkdtempSync(join(tmpdir(), 'nydus-api-auth-'));
  const mnt = join(work, 'mnt');
  const sock = join(work, 'api.sock');
  const stops: (() => Promise<unknown>)[] = [];
  let img: TestImage;
  let reg: Registry;
  let d: RunningDaemon | undefined;

  before(async () => {
    mkdirSync(mnt);
    img = await makeImage(join(work, 'img'), {
      'one.txt': 'first file, read with the configured credential\n',
      'two.bin': Buffer.alloc(70_000, 2),
      'three.bin': Buffer.alloc(90_000, 3),
    });
    // Pushed to an anonymous registry; served by one with htpasswd over the same storage.
    const store = join(work, 'store');
    const anon = await startRegistry(join(work, 'anon'), store, { kind: 'none' });
    try {
      for (const id of readdirSync(img.blobDir)) await pushBlob(anon.url, kRepo, id, readFileSync(join(img.blobDir, id)));
    } finally {
      await anon.stop();
    }
    const htpasswd = join(work, 'htpasswd');
    writeFileSync(htpasswd, htpasswdLine('puller', 'pull-secret-1'));
    reg = await startRegistry(join(work, 'basic'), store, { kind: 'htpasswd', file: htpasswd });
    stops.push(reg.stop);
    d = await startDaemon(['--apisock', sock, '--mountpoint', mnt, '--log-level', 'info']);
    stops.push(async () => assert.equal(await d?.stop(), 0, d?.log().slice(-3000)));
  });
  after(async () => {
    for (const s of stops.reverse()) await s();
    rmSync(work, { recursive: true, force: true });
  });

  test('the next blob read uses the new credential; the secrets never reach the log', async () => {
    const config = JSON.stringify({
      device: {
        backend: { type: 'registry', config: { scheme: 'http', host: `127.0.0.1:${reg.port}`, repo: kRepo, auth: kGood } },
        cache: { type: 'dummycache' },
      },
      mode: 'direct',
    });
    const m = await api(sock, 'POST', '/api/v1/mount?mountpoint=/reg', { body: mountBody(img.bootstrap, config) });
    assert.equal(m.status, 204, m.text);
    const dir = join(mnt, 'reg');
    assert.deepEqual(await readFile(join(dir, 'one.txt')), img.files['one.txt']);

    const put = (auth: string, id = '/reg'): Promise<number> =>
      api(sock, 'PUT', `/api/v1/config?id=${encodeURIComponent(id)}`, { body: JSON.stringify({ registry_auth: auth }) }).then((r) => r.status);
    // Another id names no mount: this one keeps its credential.
    assert.equal(await put(kWrong, '/elsewhere'), 204);
    assert.deepEqual(await readFile(join(dir, 'three.bin')), img.files['three.bin']);

    assert.equal(await put(kWrong), 204);
    await assert.rejects(readFile(join(dir, 'two.bin')), { code: 'EIO' }, 'the registry refuses the wrong password');
    assert.equal(await put(kGood), 204);
    assert.deepEqual(await readFile(join(dir, 'two.bin')), img.files['two.bin'], 'the same read, with the right password');

    const log = d?.log() ?? '';
    assert.match(log, /registry credentials reloaded \(auth\)/);
    assert.match(log, /registry_auth for \/reg: applied to 1 of 1 mount/);
    for (const secret of ['pull-secret-1', 'wrong-secret-2', kGood, kWrong]) assert.ok(!log.includes(secret), `log shows ${secret}`);
    assert.equal((await api(sock, 'DELETE', '/api/v1/mount?mountpoint=/reg')).status, 204);
  });
});
