/**
 * The guest harness itself, against QEMU's C virtiofsd as the known-good backend: virtio-fs
 * mounts, virtio-blk disks, exit status, timeouts, reboots and extra files must come back exactly,
 * because every other end-to-end test trusts them.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import type { GuestResult } from '../../qemu/guest.js';
import { guestAvailable, runGuest } from '../../qemu/guest.js';
import { startVirtiofsd, virtiofsdAvailable } from '../../qemu/virtiofsd.js';

const skip = guestAvailable() || virtiofsdAvailable();

function sha256(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

/** Assertion message with everything needed to debug a failed guest run. */
function why(r: GuestResult): string {
  return `exit ${r.exitCode}, timedOut ${r.timedOut}, boots ${r.boots}\n--- output ---\n${r.output}\n` +
    `--- console ---\n${r.consoleLog}\n--- qemu stderr ---\n${r.qemuStderr}`;
}

function processGone(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

describe('qemu guest harness', { skip }, () => {
  let work = '';
  before(() => {
    work = mkdtempSync(join(tmpdir(), 'qemu-harness-test-'));
  });
  after(() => {
    rmSync(work, { recursive: true, force: true });
  });

  test('a virtio-fs share served by virtiofsd reads back byte-exact, with its listing', async () => {
    const share = join(work, 'share');
    mkdirSync(join(share, 'subdir'), { recursive: true });
    const data = randomBytes(3 * 1024 * 1024 + 123);
    writeFileSync(join(share, 'data.bin'), data);
    writeFileSync(join(share, 'subdir', 'note.txt'), 'inside the subdirectory\n');
    symlinkSync('data.bin', join(share, 'link'));
    const vfsd = await startVirtiofsd({ source: share });
    try {
      const r = await runGuest({
        script: [
          'set -e',
          'mount -t virtiofs hostshare /mnt',
          'sha256sum /mnt/data.bin',
          'ls -la /mnt',
          'cat /mnt/subdir/note.txt',
          'readlink /mnt/link',
        ].join('\n'),
        virtiofs: [{ socket: vfsd.socket, tag: 'hostshare' }],
      });
      assert.equal(r.exitCode, 0, why(r));
      assert.equal(r.timedOut, false);
      assert.match(r.output, new RegExp(`^${sha256(data)}  /mnt/data\\.bin$`, 'm'), why(r));
      assert.match(r.output, new RegExp(`^-\\S+\\s+1 root\\s+root\\s+${data.length} .* data\\.bin$`, 'm'), why(r));
      assert.match(r.output, /^l\S+ .* link -> data\.bin$/m, why(r));
      assert.match(r.output, /^d\S+ .* subdir$/m, why(r));
      assert.match(r.output, /^inside the subdirectory$/m, why(r));
      assert.match(r.output, /^data\.bin$/m, why(r));
    } finally {
      await vfsd.stop();
    }
  });

  test("the script's exit status and exact output come back", async () => {
    const r = await runGuest({ script: 'echo to-stdout\necho to-stderr >&2\nprintf "no newline"\nexit 3\n' });
    assert.equal(r.exitCode, 3, why(r));
    assert.equal(r.output, 'to-stdout\nto-stderr\nno newline');
    assert.equal(r.boots, 1);
    assert.equal(r.timedOut, false);
    // The console has /init's progress lines, the script channel does not.
    assert.match(r.consoleLog, /nydus-init: boot 1: script exited with 3/);
  });

  test('a script that never ends is killed at the timeout and reported', async () => {
    const r = await runGuest({ script: 'echo started\nsleep 1000\necho never', timeoutMs: 8000 });
    assert.equal(r.timedOut, true, why(r));
    assert.equal(r.exitCode, -1);
    assert.ok(processGone(r.qemuPid), `qemu ${r.qemuPid} still running`);
    assert.ok(!r.output.includes('never'), why(r));
  });

  test('virtio-blk disks appear as /dev/vda, /dev/vdb in order; read-only stays read-only', async () => {
    const roPath = join(work, 'ro.img');
    const rwPath = join(work, 'rw.img');
    const ro = randomBytes(2 * 1024 * 1024);
    writeFileSync(roPath, ro);
    writeFileSync(rwPath, Buffer.alloc(1024 * 1024));
    const r = await runGuest({
      script: [
        'dd if=/dev/vda bs=65536 2>/dev/null | sha256sum',
        'if echo x | dd of=/dev/vda conv=fsync 2>/dev/null; then echo ro-write-succeeded; else echo ro-write-refused; fi',
        'printf "written by the guest" | dd of=/dev/vdb conv=notrunc,fsync 2>/dev/null',
        'echo done',
      ].join('\n'),
      disks: [{ path: roPath, readonly: true }, { path: rwPath }],
    });
    assert.equal(r.exitCode, 0, why(r));
    assert.match(r.output, new RegExp(`^${sha256(ro)}  -$`, 'm'), why(r));
    assert.match(r.output, /^ro-write-refused$/m, why(r));
    assert.deepEqual(readFileSync(roPath), ro);
    assert.equal(readFileSync(rwPath).subarray(0, 20).toString(), 'written by the guest');
  });

  test('reboots keep the same QEMU and vhost-user connection; $BOOT counts the boots', async () => {
    const share = join(work, 'reboot-share');
    mkdirSync(share);
    const vfsd = await startVirtiofsd({ source: share });
    try {
      const r = await runGuest({
        script: 'mount -t virtiofs rb /mnt || exit 9\necho "boot $BOOT saw: $(cat /mnt/log 2>/dev/null | tr "\\n" " ")"\necho $BOOT >> /mnt/log\n',
        virtiofs: [{ socket: vfsd.socket, tag: 'rb' }],
        reboots: 2,
      });
      assert.equal(r.exitCode, 0, why(r));
      assert.equal(r.boots, 3);
      assert.equal(r.output, 'boot 1 saw: \nboot 2 saw: 1 \nboot 3 saw: 1 2 \n');
      assert.equal(readFileSync(join(share, 'log'), 'utf8'), '1\n2\n3\n');
      // virtiofsd serves one connection: had QEMU reconnected, boot 2 could not have mounted.
    } finally {
      await vfsd.stop();
    }
  });

  test('a failing boot ends a reboot run early with its status', async () => {
    const r = await runGuest({ script: 'echo "boot $BOOT"\n[ "$BOOT" -lt 2 ] || exit 4\n', reboots: 5 });
    assert.equal(r.exitCode, 4, why(r));
    assert.equal(r.boots, 2);
    assert.equal(r.output, 'boot 1\nboot 2\n');
  });

  test('extra files land in the guest byte-exact', async () => {
    const blob = randomBytes(1024 * 1024 + 7);
    const r = await runGuest({
      script: 'sha256sum /opt/data/blob.bin\ncat /etc/greeting',
      files: { '/opt/data/blob.bin': blob, 'etc/greeting': 'hello from the host\n' },
    });
    assert.equal(r.exitCode, 0, why(r));
    assert.equal(r.output, `${sha256(blob)}  /opt/data/blob.bin\nhello from the host\n`);
  });

  test('an aborted run kills QEMU and rejects with the reason', async () => {
    const ac = new AbortController();
    const reason = new Error('test abort');
    const run = runGuest({ script: 'sleep 1000', signal: ac.signal, timeoutMs: 60_000 });
    setTimeout(() => ac.abort(reason), 1000);
    await assert.rejects(run, (err) => err === reason);
  });

  test('bad options are refused before QEMU starts', async () => {
    await assert.rejects(runGuest({ script: 'true', virtiofs: [{ socket: join(work, 'nope.sock'), tag: 't' }] }),
      { code: 'ERR_GUEST_OPTIONS' });
    await assert.rejects(runGuest({ script: 'true', disks: [{ path: join(work, 'missing.img') }] }),
      { code: 'ERR_GUEST_OPTIONS' });
    await assert.rejects(runGuest({ script: 'true', cpus: 0 }), { code: 'ERR_GUEST_OPTIONS' });
  });
});
