/**
 * Two daemons, one --sock path: the second must refuse while the first listens (before, it
 * unlinked the first one's socket, bound its own and deleted it on exit, leaving the first
 * running and unreachable), and must take over the path once the first is dead and its socket
 * file stale. Both daemons are real nydusd processes; reachability is checked with the frontend
 * driver's `info` session.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';

import { unixSocketListening } from '../../qemu/virtiofsd.js';
import { createImage, defaultBuildOptions } from '../../src/rafs/builder/index.js';
import { startDaemon } from '../helpers/daemon.js';
import { binDir } from '../helpers/paths.js';
import { driverJson } from './driver-harness.js';

const work = mkdtempSync(join(tmpdir(), 'nydusd-sock-claim-'));
after(() => rmSync(work, { recursive: true, force: true }));
const blobs = join(work, 'blobs');
let boot = '';

before(async () => {
  const src = join(work, 'src');
  mkdirSync(src);
  writeFileSync(join(src, 'hello'), 'hello\n');
  mkdirSync(blobs);
  boot = (await createImage({ ...defaultBuildOptions(src), blobDir: blobs, bootstrapPath: join(work, 'boot') })).bootstrapPath!;
});

async function waitListening(socket: string): Promise<void> {
  for (let i = 0; i < 500 && !unixSocketListening(socket); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(unixSocketListening(socket), `${socket} is not listening`);
}

async function reachable(socket: string): Promise<void> {
  const info = await driverJson<{ init: { major: number }; getattr_root: string }>(socket, ['info']);
  assert.equal(info.getattr_root, 'Success');
}

test('a second nydusd on a live --sock exits 2 naming the path; the first keeps its socket and serves', { timeout: 60_000 }, async () => {
  const socket = join(work, 'live.sock');
  const args = ['virtiofs', '--sock', socket, '--bootstrap', boot, '--localfs-dir', blobs];
  const first = await startDaemon(args);
  try {
    await waitListening(socket);
    const second = spawnSync(process.execPath, [join(binDir, 'nydusd'), ...args], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(second.status, 2, second.stderr);
    const last = second.stderr.trim().split('\n').pop() ?? '';
    assert.equal(last, `nydusd: --sock ${socket}: another process is listening on this socket (a nydusd already running?); stop it or choose another path`);
    assert.ok(statSync(socket).isSocket(), 'the first daemon\'s socket is still there');
    await reachable(socket);
  } finally {
    assert.equal(await first.stop(), 0, first.log());
  }
});

test('a socket file left by a killed nydusd is replaced by the next one', { timeout: 60_000 }, async () => {
  const socket = join(work, 'stale.sock');
  const args = ['virtiofs', '--sock', socket, '--bootstrap', boot, '--localfs-dir', blobs];
  const killed = await startDaemon(args);
  await waitListening(socket);
  killed.proc.kill('SIGKILL');
  await killed.exited;
  assert.ok(statSync(socket).isSocket(), 'SIGKILL leaves the socket file behind');
  assert.equal(unixSocketListening(socket), false);
  const next = await startDaemon(args);
  try {
    await waitListening(socket);
    await reachable(socket);
  } finally {
    assert.equal(await next.stop(), 0, next.log());
  }
});
