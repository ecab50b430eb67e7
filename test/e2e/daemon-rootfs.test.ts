/**
 * A container-style start from a real Debian root filesystem (debootstrap minbase, cached per
 * machine): `nydus-image create` of the rootfs, served by nydusd, then `chroot` into the mount
 * and run Debian's own programs (bash, coreutils, dpkg, apt) from it.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { guestAvailable, runGuest } from '../../qemu/guest.js';
import { createImage, defaultBuildOptions } from '../../src/rafs/builder/index.js';
import { startDaemon } from '../helpers/daemon.js';
import { debianRootfs } from '../helpers/rootfs.js';

const rootfs = process.getuid?.() === 0 ? debianRootfs() : { unavailable: 'needs root' };
const kSkip = 'unavailable' in rootfs ? rootfs.unavailable : false;

describe('a Debian rootfs image', { skip: kSkip }, () => {
  const work = mkdtempSync(join(tmpdir(), 'nydusd-rootfs-'));
  const blobs = join(work, 'blobs');
  const boot = join(work, 'rootfs.boot');
  let src = '';
  before(async () => {
    if (!('dir' in rootfs)) return;
    src = rootfs.dir;
    mkdirSync(blobs);
    await createImage({ ...defaultBuildOptions(src), blobDir: blobs, bootstrapPath: boot });
  });
  after(() => rmSync(work, { recursive: true, force: true }));

  test('runs programs from the image through a /dev/fuse mount (chroot on the host)', { timeout: 120_000 }, async () => {
    const mnt = join(work, 'mnt');
    mkdirSync(mnt);
    const d = await startDaemon(['-D', blobs, '--bootstrap', boot, '--mountpoint', mnt]);
    try {
      const out = execFileSync('chroot', [mnt, '/bin/bash', '-c', 'cat /etc/debian_version; dpkg-query -W -f "${Package}\\n" | wc -l; sha256sum /usr/bin/apt'], { encoding: 'utf8' });
      const [version, packages, sum] = out.trim().split('\n');
      assert.equal(version, readFileSync(join(src, 'etc', 'debian_version'), 'utf8').trim());
      assert.ok(Number(packages) > 50, `dpkg sees ${packages} packages`);
      const hostSum = execFileSync('sha256sum', [join(src, 'usr', 'bin', 'apt')], { encoding: 'utf8' }).split(' ')[0];
      assert.equal(sum?.split(' ')[0], hostSum);
    } finally {
      assert.equal(await d.stop(), 0, d.log());
    }
  });

  test('a guest chroots into it over virtio-fs and runs its programs', { skip: guestAvailable(), timeout: 180_000 }, async () => {
    const socket = join(work, 'vhost.sock');
    const d = await startDaemon(['virtiofs', '-D', blobs, '--bootstrap', boot, '--sock', socket]);
    try {
      const r = await runGuest({
        script: [
          'set -e',
          'mount -t virtiofs nydus /mnt',
          "chroot /mnt /bin/bash -c 'cat /etc/debian_version; dpkg-query -W -f \"\\${Package}\\n\" | wc -l; sha256sum /usr/bin/apt; ls --version | head -1'",
        ].join('\n'),
        virtiofs: [{ socket, tag: 'nydus' }],
        timeoutMs: 150_000,
      });
      assert.equal(r.exitCode, 0, `${r.output}\n${r.consoleLog.slice(-2000)}\n${d.log().slice(-2000)}`);
      const [version, packages, sum, ls] = r.output.trim().split('\n');
      assert.equal(version, readFileSync(join(src, 'etc', 'debian_version'), 'utf8').trim());
      assert.ok(Number(packages) > 50, `dpkg sees ${packages} packages`);
      const hostSum = execFileSync('sha256sum', [join(src, 'usr', 'bin', 'apt')], { encoding: 'utf8' }).split(' ')[0];
      assert.equal(sum?.split(' ')[0], hostSum);
      assert.match(ls ?? '', /GNU coreutils/);
    } finally {
      assert.equal(await d.stop(), 0, d.log());
    }
  });
});
