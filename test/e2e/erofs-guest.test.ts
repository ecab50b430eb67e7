// The deployment case: a Linux guest mounts the exported RAFS v6 disk with the in-kernel EROFS
// driver and sees the source tree. Kernels with flat multi-device support (6.7+) take the disk
// alone (`mount -t erofs /dev/vda`); older ones (Debian 12's 6.1) need the blob's data as an
// extra device (`-o device=/dev/vdb`), which the test attaches too.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';

import { guestAvailable, runGuest, type GuestResult } from '../../qemu/guest.js';
import { cachedKernels } from '../../qemu/kernel.js';
import { parseTreeDump, toolBinary } from '../../qemu/tools.js';
import { createImage, defaultBuildOptions } from '../../src/rafs/builder/index.js';
import { exportDisk } from '../helpers/erofs.js';
import { fixture, fixturesSkip } from '../helpers/paths.js';
import { makeRichTree } from '../helpers/rich-tree.js';
import { diffTrees, snapshotDir, snapshotFromTreeDump } from '../helpers/tree.js';

const work = mkdtempSync(join(tmpdir(), 'erofs-guest-'));
after(() => rmSync(work, { recursive: true, force: true }));

function why(r: GuestResult): string {
  return `exit ${r.exitCode}, timedOut ${r.timedOut}\n--- output ---\n${r.output.slice(-4000)}\n--- console ---\n${r.consoleLog.slice(-4000)}`;
}

/** Flat multi-device EROFS (device slots' mapped_blkaddr) arrived in Linux 6.7. */
function kernelHasFlatDev(release: string): boolean {
  const [maj = 0, min = 0] = release.split(/[.-]/).map(Number);
  return maj > 6 || (maj === 6 && min >= 7);
}

const kMount = (disk: string, dev: string, mnt: string): string =>
  [
    `mkdir -p ${mnt}`,
    `if mount -t erofs -o ro ${disk} ${mnt} 2>/dev/null; then echo "MODE ${mnt} flat";`,
    `else mount -t erofs -o ro,device=${dev} ${disk} ${mnt} && echo "MODE ${mnt} device"; fi`,
  ].join('\n');

test('a Linux guest mounts the exported v6 disk and sees the source tree', { skip: guestAvailable() || fixturesSkip(), timeout: 600_000 }, async () => {
  const src = join(work, 'src');
  makeRichTree(src, { chunkSize: 0x10000 });
  const out = join(work, 'out');
  mkdirSync(out);
  const boot = join(out, 'bootstrap');
  await createImage({ ...defaultBuildOptions(src), chunkSize: 0x10000, blobDir: out, bootstrapPath: boot });
  const ours = exportDisk(boot, out, out);
  const fxDir = join(work, 'fixture');
  mkdirSync(fxDir);
  const theirs = exportDisk(fixture('tests/texture/bootstrap/rafs-v6-2.2.boot'), fixture('tests/texture/blobs'), fxDir);

  const r = await runGuest({
    script: [
      'set -e',
      kMount('/dev/vda', '/dev/vdb', '/mnt'),
      kMount('/dev/vdc', '/dev/vdd', '/mnt2'),
      'sha256sum /mnt2/lib.rs /mnt2/sync_io.rs',
      'chmod +x /treedump',
      '/treedump /mnt',
    ].join('\n'),
    files: { '/treedump': readFileSync(toolBinary('treedump')) },
    disks: [
      { path: ours.disk, readonly: true },
      { path: ours.devices[0]!, readonly: true },
      { path: theirs.disk, readonly: true },
      { path: theirs.devices[0]!, readonly: true },
    ],
    memoryMiB: 512,
    timeoutMs: 540_000,
  });
  assert.equal(r.exitCode, 0, why(r));
  const release = cachedKernels()[0]?.release ?? '';
  const mode = kernelHasFlatDev(release) ? 'flat' : 'device';
  assert.match(r.output, new RegExp(`MODE /mnt ${mode}`), `kernel ${release}: ${why(r)}`);
  assert.match(r.output, new RegExp(`MODE /mnt2 ${mode}`), why(r));

  const want = snapshotDir(src);
  const got = snapshotFromTreeDump(parseTreeDump(r.output));
  assert.deepEqual(diffTrees(want, got, { ignoreRootMtime: true }), [], why(r));
  assert.ok(got['/xattrs']?.xattrs?.['system.posix_acl_access'], 'xattrs came through the guest kernel');
  // The upstream fixture's files, as hashed on the host through our export and a loop mount.
  assert.match(r.output, /1810eba864521293bb0d6b55a3c82318d4d89f294ed761c456d9088a17de0c69 {2}\/mnt2\/lib\.rs/);
  assert.match(r.output, /e629ab260ff0dc02a24648a3e0dd8c13a5daf233d535c330e3201925f5eeff96 {2}\/mnt2\/sync_io\.rs/);
});
