/**
 * Taking the transport target: a Unix socket path (claimSocketPath, shared by --sock and the API
 * socket) and a FUSE mountpoint left stale by a dead daemon (stale-mount.ts). Live listeners are
 * real sockets here; stale ones come from a process killed with SIGKILL, as in the field.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';

import { clearStaleFuseMount, findMount, isOurMount } from '../../src/daemon/stale-mount.js';
import { claimSocketPath, probeSocket } from '../../src/util/unix-socket.js';

const work = mkdtempSync(join(tmpdir(), 'transport-target-'));
after(() => rmSync(work, { recursive: true, force: true }));

const isUsage = (re: RegExp) => (e: unknown) => (e as { code?: string }).code === 'ERR_USAGE' && re.test((e as Error).message);

/** A socket file nobody listens on: its listener was SIGKILLed, so nothing unlinked it. */
async function staleSocket(path: string): Promise<void> {
  const child = spawn(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(path)}, () => console.log('up'))`], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
  child.kill('SIGKILL');
  await new Promise((resolve) => child.once('exit', resolve));
  assert.ok(statSync(path).isSocket());
}

test('claimSocketPath: a free path is left alone, a stale socket file is removed', async () => {
  const free = join(work, 'free.sock');
  await claimSocketPath(free, '--sock');
  assert.equal(existsSync(free), false);
  const stale = join(work, 'stale.sock');
  await staleSocket(stale);
  assert.equal(await probeSocket(stale), 'stale');
  await claimSocketPath(stale, '--sock');
  assert.equal(existsSync(stale), false);
});

test('claimSocketPath: a live listener is refused naming flag and path, and keeps its socket', async () => {
  const path = join(work, 'live.sock');
  // A probe connects and drops at once: the server sees a reset, which is not this test's concern.
  const server = createServer((c) => c.on('error', () => undefined).end('still here'));
  await new Promise<void>((resolve) => server.listen(path, resolve));
  try {
    assert.equal(await probeSocket(path), 'live');
    await assert.rejects(claimSocketPath(path, '--apisock'), isUsage(/^--apisock .*live\.sock: another process is listening on this socket/));
    assert.ok(statSync(path).isSocket());
    const reply = await new Promise<string>((resolve, reject) => {
      let got = '';
      createConnection({ path })
        .on('data', (d) => (got += d.toString()))
        .on('end', () => resolve(got))
        .on('error', reject);
    });
    assert.equal(reply, 'still here');
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
});

test('claimSocketPath: anything but a socket is never removed', async () => {
  const file = join(work, 'file.sock');
  writeFileSync(file, 'data');
  await assert.rejects(claimSocketPath(file, '--sock'), isUsage(/^--sock .*file\.sock: exists and is not a socket$/));
  const dir = join(work, 'dir.sock');
  mkdirSync(dir);
  await assert.rejects(claimSocketPath(dir, '--sock'), isUsage(/exists and is not a socket/));
  assert.ok(existsSync(file) && existsSync(dir));
});

const kMountinfo = [
  '22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw',
  '45 22 0:40 / /mnt/image ro,nosuid,nodev,relatime shared:30 - fuse.nydus nydus ro,user_id=0,group_id=0',
  '46 22 0:41 / /mnt/with\\040space ro,relatime - fuse.sshfs host:/x rw',
  '47 22 0:42 / /mnt/stacked rw - fuse.sshfs host:/y rw',
  '48 47 0:43 / /mnt/stacked ro - fuse.nydus nydus ro',
].join('\n');

test('stale FUSE mounts: mountinfo is parsed (escapes, optional fields, the top of a stack) and ours is told apart', () => {
  assert.deepEqual(findMount(kMountinfo, '/mnt/image'), { mountpoint: '/mnt/image', fstype: 'fuse.nydus', source: 'nydus' });
  assert.deepEqual(findMount(kMountinfo, '/mnt/with space'), { mountpoint: '/mnt/with space', fstype: 'fuse.sshfs', source: 'host:/x' });
  assert.equal(findMount(kMountinfo, '/mnt/stacked')?.fstype, 'fuse.nydus');
  assert.equal(findMount(kMountinfo, '/mnt'), undefined);
  assert.equal(isOurMount(findMount(kMountinfo, '/mnt/image')!), true);
  assert.equal(isOurMount(findMount(kMountinfo, '/mnt/with space')!), false);
});

test('stale FUSE mounts: somebody else\'s, or none at all, is refused with how to clear it; ours that cannot be removed too', () => {
  assert.throws(() => clearStaleFuseMount('/mnt/with space', undefined, kMountinfo), isUsage(/a stale FUSE mount \(fuse\.sshfs, source host:\/x\) .*clear it with `umount -l \/mnt\/with space`$/));
  assert.throws(() => clearStaleFuseMount('/mnt/none', undefined, kMountinfo), isUsage(/not connected \(ENOTCONN\), probably a stale FUSE mount; clear it with `umount -l \/mnt\/none`$/));
  // A directory that mountinfo claims is ours but that is not mounted: umount -l fails and says so.
  const dir = join(work, 'not-mounted');
  mkdirSync(dir);
  const info = `45 22 0:40 / ${dir} ro - fuse.nydus nydus ro`;
  assert.throws(() => clearStaleFuseMount(dir, undefined, info), isUsage(/removing it failed \(.+\); clear it with `umount -l /));
});
