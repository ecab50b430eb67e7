/**
 * A virtio-fs daemon's vhost-user socket listens early (src/daemon/early-listen.ts): bin/nydusd
 * once its flags are checked, before the configuration is loaded; an in-process Daemon after its
 * checks, before the storage is built and the image mounted. The backend accepts only once the
 * image is mounted. Checked with a real frontend (nydus_vu_driver) that connects while the start
 * is held inside storage creation: it must be served the image, not the empty root a backend
 * accepting too early would show. A start that fails after listening removes the socket.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, watch, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';

import { unixSocketListening } from '../../qemu/virtiofsd.js';
import { Daemon } from '../../src/daemon/index.js';
import type { DaemonOptions } from '../../src/daemon/index.js';
import { StorageService } from '../../src/storage/index.js';
import type { StorageSettings } from '../../src/storage/index.js';
import type { Logger } from '../../src/util/logger.js';
import { nullLogger } from '../../src/util/logger.js';
import { testDaemonOptions } from '../helpers/daemon-options.js';
import { oneFileImage } from '../helpers/one-file-image.js';
import { binDir } from '../helpers/paths.js';
import { runDriver } from './driver-harness.js';

const work = mkdtempSync(join(tmpdir(), 'nydusd-early-listen-'));
after(() => rmSync(work, { recursive: true, force: true }));
let blobs = '';
let boot = '';

before(async () => {
  ({ boot, blobs } = await oneFileImage(work, 'hello', 'hello from the image\n'));
});

function options(name: string): DaemonOptions {
  const text = JSON.stringify({ device: { backend: { type: 'localfs', config: { dir: blobs } }, cache: { type: 'blobcache', config: { work_dir: join(work, `${name}-cache`) } } } });
  return testDaemonOptions({ mode: 'virtiofs', socketPath: join(work, `${name}.sock`), bootstrap: boot }, text);
}

/** A storage factory that waits for release() before building the real storage. */
function heldStorage(fail?: Error): {
  create: (s: StorageSettings, log: Logger) => Promise<StorageService>;
  reached: Promise<void>;
  release: () => void;
} {
  let reached!: () => void;
  let release!: () => void;
  const reachedP = new Promise<void>((r) => (reached = r));
  const gate = new Promise<void>((r) => (release = r));
  return {
    reached: reachedP,
    release,
    create: async (s, log) => {
      reached();
      await gate;
      if (fail !== undefined) throw fail;
      return StorageService.create(s, log);
    },
  };
}

/** Connections waiting in the backlog of the listening socket at `path` (ss's Recv-Q), or undefined without ss. */
function pendingConnections(path: string): number | undefined {
  const r = spawnSync('ss', ['-xlnH'], { encoding: 'utf8' });
  if (r.status !== 0) return undefined;
  for (const line of r.stdout.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.includes(path)) return Number(f[2]);
  }
  return 0;
}

test('the vhost-user socket listens before the image is mounted, and a frontend connecting meanwhile is served the image', { timeout: 60_000 }, async () => {
  const o = options('held');
  const socket = o.socketPath!;
  const held = heldStorage();
  const daemon = new Daemon(o, { log: nullLogger(), createStorage: held.create, applyRlimit: () => undefined });
  const started = daemon.start();
  try {
    await held.reached;
    assert.ok(unixSocketListening(socket), 'listening while the storage is still being built');
    assert.notEqual(daemon.state, 'RUNNING');
    const reader = runDriver(socket, ['cat', '/hello'], 30_000);
    // Let the driver's connection reach the backlog before the start goes on (ss shows it).
    for (let i = 0; i < 1000 && (pendingConnections(socket) ?? 1) < 1; i++) await new Promise((r) => setTimeout(r, 5));
    if (pendingConnections(socket) !== undefined) assert.ok((pendingConnections(socket) ?? 0) >= 1, 'the driver waits in the backlog');
    assert.equal(daemon.state, 'INIT');
    held.release();
    await started;
    assert.equal(daemon.state, 'RUNNING');
    const r = await reader;
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.toString('utf8'), 'hello from the image\n');
  } finally {
    held.release();
    await started.catch(() => undefined);
    await daemon.stop('test done');
  }
  assert.equal(existsSync(socket), false, 'the socket file is removed at stop');
});

test('a start that fails after the socket listens closes it and removes its file', { timeout: 60_000 }, async () => {
  const o = options('fails');
  const socket = o.socketPath!;
  const held = heldStorage(new Error('storage refused'));
  const daemon = new Daemon(o, { log: nullLogger(), createStorage: held.create, applyRlimit: () => undefined });
  const started = daemon.start();
  await held.reached;
  assert.ok(unixSocketListening(socket));
  held.release();
  await assert.rejects(started, /storage refused/);
  assert.equal(unixSocketListening(socket), false);
  assert.equal(existsSync(socket), false);
  assert.equal(daemon.state, 'STOPPED');
});

test('a start with a stand-in serve step does not listen on --sock itself', { timeout: 60_000 }, async () => {
  const o = options('standin');
  const socket = o.socketPath!;
  let sawListener: boolean | undefined;
  const daemon = new Daemon(o, {
    log: nullLogger(),
    applyRlimit: () => undefined,
    serve: (ctx) => {
      sawListener = ctx.listener !== undefined || unixSocketListening(socket);
      return Promise.resolve({ done: new Promise<void>(() => undefined), stop: () => Promise.resolve() });
    },
  });
  await daemon.start();
  await daemon.stop('test done');
  assert.equal(sawListener, false);
});

test('bin/nydusd listens before it loads the configuration; a configuration error still exits 2 with its message and removes the socket', { timeout: 60_000 }, async () => {
  const dir = mkdtempSync(join(work, 'cli-'));
  const socket = join(dir, 'vhost.sock');
  const cfg = join(dir, 'bad.json');
  // Valid JSON, invalid configuration: the error comes from loading it, after the flags.
  writeFileSync(cfg, JSON.stringify({ device: { backend: { type: 'localfs', config: { dir: 42 } } } }));
  const seen = new Set<string>();
  const watcher = watch(dir, (_event, name) => {
    if (name !== null) seen.add(name);
  });
  try {
    const r = spawnSync(join(binDir, 'nydusd'), ['virtiofs', '--config', cfg, '--bootstrap', boot, '--sock', socket], {
      encoding: 'utf8',
      timeout: 30_000,
      env: { ...process.env, PATH: `${join(process.execPath, '..')}:${process.env['PATH'] ?? ''}` },
    });
    assert.equal(r.status, 2, r.stderr);
    const last = r.stderr.trim().split('\n').pop() ?? '';
    assert.ok(last.startsWith(`nydusd: ${cfg}: `), last);
    // The watcher's events were queued by the kernel while the daemon ran; they arrive now.
    for (let i = 0; i < 200 && !seen.has('vhost.sock'); i++) await new Promise((res) => setTimeout(res, 5));
    assert.ok(seen.has('vhost.sock'), 'the socket was created before the configuration was refused');
    assert.equal(existsSync(socket), false, 'and removed again');
  } finally {
    watcher.close();
  }
});
