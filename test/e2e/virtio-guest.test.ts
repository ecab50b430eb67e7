/**
 * A QEMU guest (Linux 6.1, TCG) mounts virtio-fs served by our vhost-user backend and FUSE
 * session, hosted in a separate process with the in-memory test tree. The guest's tree dump
 * (types, modes, sizes, mtimes, symlink targets, xattrs, sha256 of every file — including the
 * native fast-path files: cache hits, lazy misses, zstd chunks) must equal both the tree the
 * handler serves and the host's view of the same tree through a /dev/fuse mount. A reboot
 * (INIT on a live session, no DESTROY) must serve the second boot the same way, and a dropped
 * dentry cache must reach the handler as FORGETs.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';

import type { GuestResult } from '../../qemu/guest.js';
import { guestAvailable, runGuest } from '../../qemu/guest.js';
import type { TreeEntry } from '../../qemu/tools.js';
import { dumpHostTree, parseTreeDump, toolBinary } from '../../qemu/tools.js';
import { startFuseServer } from '../helpers/fuse-server-process.js';
import { createMemFs } from '../helpers/mem-fuse-fs.js';

const skip = guestAvailable() || (process.getuid?.() !== 0 || !existsSync('/dev/fuse') ? 'needs root and /dev/fuse for the host view' : false);

function why(r: GuestResult, serverErr: string): string {
  return `exit ${String(r.exitCode)}, timedOut ${String(r.timedOut)}\n--- output ---\n${r.output}\n--- console ---\n${r.consoleLog}\n` +
    `--- qemu stderr ---\n${r.qemuStderr}\n--- server stderr ---\n${serverErr}`;
}

const strip = (t: TreeEntry[]): unknown[] => t.map(({ ino: _ino, ...rest }) => rest);

test('a guest mounts our virtio-fs and sees exactly the served tree, across a reboot', { skip, timeout: 600_000 }, async () => {
  const base = await mkdtemp(join(tmpdir(), 'nydus-virtio-guest-'));
  const dirs = ['vm', 'host', 'expected', 'mnt'].map((d) => join(base, d));
  for (const d of dirs) await mkdir(d);
  const [vmTmp, hostTmp, expTmp, mnt] = dirs as [string, string, string, string];
  const socket = join(base, 'vu.sock');
  const vm = await startFuseServer(['--tmp', vmTmp, '--socket', socket]);
  const host = await startFuseServer(['--tmp', hostTmp, '--mount', mnt, '--threads', '2']);
  const mem = await createMemFs(expTmp);
  try {
    const hostTree = dumpHostTree(mnt);
    const r = await runGuest({
      script: [
        'set -e',
        'mount -t virtiofs nydus /mnt',
        'chmod +x /treedump',
        'echo "=== boot $BOOT"',
        '/treedump /mnt',
        'if touch /mnt/new-file 2>/dev/null; then echo write-succeeded; else echo write-refused; fi',
        'cat /mnt/link',
        'echo 2 > /proc/sys/vm/drop_caches',
      ].join('\n'),
      virtiofs: [{ socket, tag: 'nydus' }],
      files: { '/treedump': readFileSync(toolBinary('treedump')) },
      reboots: 1,
      timeoutMs: 300_000,
    });
    assert.equal(r.exitCode, 0, why(r, vm.stderr()));
    assert.equal(r.boots, 2, why(r, vm.stderr()));
    const boots = r.output.split(/^=== boot \d+$/m).slice(1);
    assert.equal(boots.length, 2, why(r, vm.stderr()));
    for (const out of boots) {
      const guestTree = parseTreeDump(out);
      // Guest view == host /dev/fuse view of the same tree.
      assert.deepEqual(strip(guestTree), strip(hostTree));
      // ... and both are the tree the handler serves.
      const byPath = new Map(guestTree.map((e) => [e.path, e]));
      for (const e of mem.expected) {
        const got = byPath.get(`/mnt/${e.path}`) ?? byPath.get(`/${e.path}`);
        assert.ok(got, `guest is missing ${e.path}: ${out.slice(0, 2000)}`);
        assert.equal(got.mode & 0o7777, e.mode, e.path);
        assert.equal(got.size, e.size, e.path);
        assert.equal(got.mtime, e.mtime, e.path);
        if (e.sha256 !== undefined) assert.equal(got.sha256, e.sha256, e.path);
        if (e.target !== undefined) assert.equal(got.target, e.target, e.path);
        for (const [k, v] of Object.entries(e.xattrs ?? {})) assert.equal(got.xattrs[k], Buffer.from(v).toString('hex'), `${e.path} ${k}`);
      }
      assert.match(out, /^write-refused$/m);
      assert.match(out, /^hello world$/m);
    }
  } finally {
    const closed = await vm.close();
    host.kill('SIGTERM');
    await host.exit;
    mem.close();
    await rm(base, { recursive: true, force: true });
    assert.deepEqual(closed, { code: 0, signal: null }, vm.stderr());
  }
  const counters = JSON.parse((vm.lines.find((l) => l.startsWith('CLOSED ')) ?? 'CLOSED {}').slice(7)) as { counters?: { forgets: number; fills: number } };
  assert.ok((counters.counters?.forgets ?? 0) > 0, `no FORGET reached the handler: ${vm.lines.join('\n')}`);
  assert.ok((counters.counters?.fills ?? 0) > 0);
});
