/**
 * The same guest write workload through our passthrough share and through QEMU's C virtiofsd
 * must leave the same host tree. Ours is played as Kata drives it: `nydusd virtiofs --apisock A
 * --sock S`, then `POST /api/v1/mount?mountpoint=/containers` with `{"fs_type":"passthrough_fs",
 * "source":DIR,"config":""}`; the guest mounts the tag and works in /containers. virtiofsd serves
 * another DIR (`-o source=DIR -o cache=auto`) and the guest works at its root. The trees are
 * compared by names, types, permission bits (setuid included), owners, sizes, contents, link
 * counts, symlink targets, device numbers and xattrs; mtimes only where the workload set them
 * (touch -d) and of the untarred Debian files (tar restores them), since everything else is
 * stamped with the time each guest ran. Xattrs are set by qemu/tools/posixsuite (busybox has no
 * setfattr); the Debian tar (qemu/debian-tar.ts) is a raw virtio-blk disk the guest unpacks with
 * `tar -x -f /dev/vda`.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';

import { debianTarAvailable, makeDebianTar } from '../../qemu/debian-tar.js';
import { guestAvailable, runGuest } from '../../qemu/guest.js';
import type { GuestResult } from '../../qemu/guest.js';
import { toolBinary } from '../../qemu/tools.js';
import { startVirtiofsd, virtiofsdAvailable } from '../../qemu/virtiofsd.js';
import type { RunningDaemon } from '../helpers/daemon.js';
import { startDaemon } from '../helpers/daemon.js';
import { api, mountShare } from '../helpers/api.js';
import { diffTrees, snapshotDir } from '../helpers/tree.js';

const kSkip = process.getuid?.() !== 0 ? 'needs root' : guestAvailable() || virtiofsdAvailable() || debianTarAvailable();

// $W: the directory the workload runs in.
const workload = (w: string): string => `
set -e
mkdir -p /s
mount -t virtiofs share /s
W=${w}
cd $W
mkdir -p d/e
echo hello > d/a
echo more >> d/a
i=0; while [ $i -lt 3000 ]; do echo "line $i"; i=$((i+1)); done > big
dd if=/dev/zero of=z bs=4096 count=10 2>/dev/null
truncate -s 1000 z
ln d/a hl
ln -s d/a sl
ln -s /etc/passwd abs
mv d/a d/b
chmod 0640 d/b
chmod 4755 big
chmod 2750 d/e
chown 1000:1000 d/b
chown -h 1000:1000 sl
touch -d '2020-01-02 03:04:05' d/b
mkfifo fifo
mknod cdev c 1 3
echo one > x
echo two > y
mv x y
mkdir gone; echo q > gone/f; rm gone/f; rmdir gone
echo keep > keep; echo trunc > keep
echo app >> keep
chmod +x /posixsuite
/posixsuite setx d/b user.k v1
/posixsuite setx d/e user.dir on-a-dir
/posixsuite setx big user.big "a longer value, with spaces"
/posixsuite setx d/b user.second v2
# a Debian tar from a raw virtio disk
mkdir deb; tar -C deb -x -f /dev/vda
# untar: a small archive made in the guest, unpacked into the share
mkdir -p /tmp/t/p/q; echo in-tar > /tmp/t/p/q/f; ln -s q/f /tmp/t/p/l; chmod 0600 /tmp/t/p/q/f
tar -C /tmp/t -cf /tmp/t.tar p
mkdir u; tar -C u -xf /tmp/t.tar
sync
ls -la $W
echo WORKLOAD-DONE
`;

function check(r: GuestResult, what: string, log: () => string): void {
  assert.equal(r.exitCode, 0, `${what}: exit ${r.exitCode}\n--- output ---\n${r.output}\n--- console ---\n${r.consoleLog.slice(-3000)}\n--- server ---\n${log().slice(-3000)}`);
  assert.match(r.output, /WORKLOAD-DONE/);
}

test('a guest write workload leaves the same host tree through our passthrough_fs (Kata API) and virtiofsd', { skip: kSkip, timeout: 300_000 }, async (t) => {
  const work = mkdtempSync(join(tmpdir(), 'nydus-pt-guest-'));
  after(() => rmSync(work, { recursive: true, force: true }));
  const ours = join(work, 'ours');
  const ref = join(work, 'ref');
  mkdirSync(ours);
  mkdirSync(ref);

  const tar = makeDebianTar(work);
  const guest = { files: { '/posixsuite': readFileSync(toolBinary('posixsuite')) }, disks: [{ path: tar, readonly: true }], timeoutMs: 180_000 };
  const apisock = join(work, 'api.sock');
  const vsock = join(work, 'vhost.sock');
  let d: RunningDaemon | undefined;
  let r1: GuestResult;
  try {
    d = await startDaemon(['virtiofs', '--log-level', 'info', '--apisock', apisock, '--sock', vsock]);
    const m = await mountShare(apisock, '/containers', ours);
    assert.equal(m.status, 204, m.text);
    const t0 = Date.now();
    r1 = await runGuest({ script: workload('/s/containers'), virtiofs: [{ socket: vsock, tag: 'share' }], ...guest });
    t.diagnostic(`ours: guest ran ${Date.now() - t0} ms`);
    const daemon = d;
    check(r1, 'ours', () => daemon.log());
    const del = await api(apisock, 'DELETE', '/api/v1/mount?mountpoint=/containers');
    assert.equal(del.status, 204, del.text);
  } finally {
    if (d) {
      const code = await d.stop();
      assert.equal(code, 0, d.log().slice(-3000));
    }
  }

  const v = await startVirtiofsd({ source: ref, socketPath: join(work, 'vfsd.sock'), cache: 'auto', extraArgs: ['-o', 'xattr'] });
  let r2: GuestResult;
  try {
    const t0 = Date.now();
    r2 = await runGuest({ script: workload('/s'), virtiofs: [{ socket: v.socket, tag: 'share' }], ...guest });
    t.diagnostic(`virtiofsd: guest ran ${Date.now() - t0} ms`);
    check(r2, 'virtiofsd', () => v.log());
  } finally {
    await v.stop();
  }

  const a = snapshotDir(ours);
  const b = snapshotDir(ref);
  // Times are those of each run, except the one the workload set.
  assert.deepEqual(diffTrees(b, a, { ignore: ['mtime'] }), []);
  assert.equal(a['/d/b']?.mtime, b['/d/b']?.mtime);
  assert.equal(statSync(join(ours, 'd', 'b')).mtime.getUTCFullYear(), 2020, 'touch -d reached the host');
  // The workload did what it says on the host (not just the same thing on both sides).
  assert.equal(a['/big']?.perm, 0o4755);
  assert.equal(a['/d/b']?.uid, 1000);
  assert.equal(a['/d/b']?.nlink, 2);
  assert.equal(a['/cdev']?.type, 'chr');
  assert.equal(a['/u/p/l']?.target, 'q/f');
  assert.equal(a['/z']?.size, 1000);
  // (trusted.* and security.* are in the POSIX suite: virtiofsd lacks CAP_SYS_ADMIN for them.)
  assert.deepEqual(Object.keys(a['/d/b']?.xattrs ?? {}).sort(), ['user.k', 'user.second']);
  assert.deepEqual(Object.keys(a['/d/e']?.xattrs ?? {}), ['user.dir']);
  assert.deepEqual(Object.keys(a['/big']?.xattrs ?? {}), ['user.big']);
  // The Debian tree arrived whole: the same entries as the staging tree it was made from, with
  // its owners, modes, links and mtimes.
  const staged = snapshotDir(join(work, 'debian-stage'));
  const unpacked = Object.fromEntries(Object.entries(a).filter(([p]) => p.startsWith('/deb/')).map(([p, n]) => [p.slice(4), n.link ? { ...n, link: n.link.slice(4) } : n]));
  assert.deepEqual(diffTrees(Object.fromEntries(Object.entries(staged).filter(([p]) => p !== '/')), unpacked, { ignore: ['mtime'] }), []);
  assert.ok(Object.keys(unpacked).length > 200, `only ${Object.keys(unpacked).length} Debian entries`);
  assert.equal(a['/deb/usr/share/zoneinfo/Europe/Berlin']?.perm, 0o4755);
  assert.equal(a['/deb/usr/share/zoneinfo/Europe/Paris']?.nlink, 3);
});
