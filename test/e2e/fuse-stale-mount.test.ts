/**
 * Restarting nydusd on a mountpoint whose daemon was killed: the kernel keeps the dead FUSE mount
 * and every stat of it fails with ENOTCONN. Before, the restart stopped with "cannot stat
 * (ENOTCONN)"; now a stale mount of ours is detached (umount -l) and the image is served again.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';

import { findMount } from '../../src/daemon/stale-mount.js';
import { createImage, defaultBuildOptions } from '../../src/rafs/builder/index.js';
import { startDaemon } from '../helpers/daemon.js';

const kSkip = process.getuid?.() !== 0 ? 'FUSE mounts need root' : !existsSync('/dev/fuse') ? '/dev/fuse is missing' : false;
const work = mkdtempSync(join(tmpdir(), 'nydusd-stale-mount-'));
const blobs = join(work, 'blobs');
const mnt = join(work, 'mnt');
let boot = '';

before(async () => {
  if (kSkip) return;
  const src = join(work, 'src');
  mkdirSync(src);
  writeFileSync(join(src, 'hello'), 'hello\n');
  mkdirSync(blobs);
  mkdirSync(mnt);
  boot = (await createImage({ ...defaultBuildOptions(src), blobDir: blobs, bootstrapPath: join(work, 'boot') })).bootstrapPath!;
});
after(() => {
  // Leave no mount behind even when an assertion failed half way.
  if (!kSkip && findMount(readFileSync('/proc/self/mountinfo', 'utf8'), mnt)) spawnSync('umount', ['-l', mnt]);
  rmSync(work, { recursive: true, force: true });
});

test('a restart on the mountpoint of a killed nydusd clears the stale mount and serves again', { skip: kSkip, timeout: 60_000 }, async () => {
  const args = ['--mountpoint', mnt, '--bootstrap', boot, '--localfs-dir', blobs];
  const killed = await startDaemon(args);
  assert.equal(readFileSync(join(mnt, 'hello'), 'utf8'), 'hello\n');
  killed.proc.kill('SIGKILL');
  await killed.exited;
  assert.throws(() => statSync(mnt), { code: 'ENOTCONN' });
  const next = await startDaemon(args);
  try {
    assert.match(next.log(), /WARN .*--mountpoint .*: removed a stale FUSE mount \(fuse\.nydus, source nydus\) left by a daemon that is gone \(umount -l\)/);
    assert.equal(readFileSync(join(mnt, 'hello'), 'utf8'), 'hello\n');
  } finally {
    assert.equal(await next.stop(), 0, next.log());
  }
  assert.equal(findMount(readFileSync('/proc/self/mountinfo', 'utf8'), mnt), undefined, 'nothing stays mounted');
});
