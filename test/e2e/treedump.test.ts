/**
 * The tree-dump tool that the image tests compare with: the same static binary must describe a
 * directory identically on the host and, through virtio-fs (virtiofsd as the known-good
 * backend), inside the guest. Otherwise a tree mismatch in a daemon test could be the tool's.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';

import { guestAvailable, runGuest } from '../../qemu/guest.js';
import { dumpHostTree, parseTreeDump, toolBinary } from '../../qemu/tools.js';
import { startVirtiofsd, virtiofsdAvailable } from '../../qemu/virtiofsd.js';

test('treedump reports names byte-exact and hashes contents', () => {
  const dir = mkdtempSync(join(tmpdir(), 'treedump-'));
  try {
    writeFileSync(join(dir, 'abc'), 'abc');
    writeFileSync(Buffer.from(`${dir}/caf\xe9`, 'latin1'), '');
    symlinkSync('../nowhere', join(dir, 'dangling'));
    const tree = dumpHostTree(dir);
    assert.deepEqual(tree.map((e) => e.path), ['/', '/abc', '/caf\xe9', '/dangling']);
    assert.equal(tree[1]?.sha256, 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    assert.equal(tree[3]?.type, 'symlink');
    assert.equal(tree[3]?.target, '../nowhere');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('treedump sees the same tree on the host and in the guest', { skip: guestAvailable() || virtiofsdAvailable() }, async () => {
  const work = mkdtempSync(join(tmpdir(), 'treedump-guest-'));
  const share = join(work, 'share');
  mkdirSync(join(share, 'd', 'e'), { recursive: true });
  writeFileSync(join(share, 'd', 'e', 'r.bin'), randomBytes(200_000));
  writeFileSync(join(share, 'empty'), '');
  symlinkSync('d/e/r.bin', join(share, 'link'));
  utimesSync(join(share, 'empty'), new Date(1_600_000_000_123), new Date(1_600_000_000_456));
  const vfsd = await startVirtiofsd({ source: share });
  try {
    const r = await runGuest({
      script: 'set -e\nmount -t virtiofs t /mnt\nchmod +x /treedump\n/treedump /mnt',
      virtiofs: [{ socket: vfsd.socket, tag: 't' }],
      files: { '/treedump': readFileSync(toolBinary('treedump')) },
    });
    assert.equal(r.exitCode, 0, r.output + r.consoleLog);
    const strip = (t: ReturnType<typeof dumpHostTree>): unknown[] => t.map(({ ino: _ino, ...rest }) => rest);
    assert.deepEqual(strip(parseTreeDump(r.output)), strip(dumpHostTree(share)));
  } finally {
    await vfsd.stop();
    rmSync(work, { recursive: true, force: true });
  }
});
