/**
 * The product as a VM user runs it: `nydus-image create`, `nydusd --sock`, and a QEMU guest
 * (vhost-user-fs-pci, TCG) that runs `mount -t virtiofs nydus /mnt`. The guest's view — dumped
 * inside the guest by the static treedump tool — must equal the source tree (types, modes,
 * owners, sizes, mtimes, nlink, rdev, symlink targets, xattrs, sha256 of every file); the same
 * for the upstream fixture images. A guest reboot (second FUSE INIT on the same connection) and
 * a second QEMU attaching to the same daemon must both keep working.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import type { GuestResult } from '../../qemu/guest.js';
import { guestAvailable, runGuest } from '../../qemu/guest.js';
import { parseTreeDump, toolBinary } from '../../qemu/tools.js';
import type { BuildOptions } from '../../src/rafs/builder/index.js';
import { createImage, defaultBuildOptions } from '../../src/rafs/builder/index.js';
import { openBootstrap } from '../../src/rafs/index.js';
import type { RunningDaemon } from '../helpers/daemon.js';
import { startDaemon } from '../helpers/daemon.js';
import { fixture, fixturesSkip } from '../helpers/paths.js';
import { makeRichTree } from '../helpers/rich-tree.js';
import type { TreeSnapshot } from '../helpers/tree.js';
import { blobReader, diffTrees, snapshotDir, snapshotFromTreeDump, snapshotImage } from '../helpers/tree.js';

const kSkip = process.getuid?.() !== 0 ? 'needs root' : guestAvailable();
const kChunk = 0x10000;
const kDiff = { ignoreRootMtime: true };

function why(r: GuestResult, d: RunningDaemon): string {
  return `exit ${r.exitCode} timedOut ${r.timedOut}\n--- output ---\n${r.output.slice(-3000)}\n--- console ---\n${r.consoleLog.slice(-3000)}\n--- daemon ---\n${d.log().slice(-3000)}`;
}

/** Root shown as 0755 (upstream nydusd's rule). */
function rootAs0755(s: TreeSnapshot): TreeSnapshot {
  const root = s['/'];
  if (root) root.perm = (root.perm & ~0o777) | 0o755;
  return s;
}

async function serve(dir: string, boot: string, blobDir: string, extra: string[] = []): Promise<{ daemon: RunningDaemon; socket: string }> {
  const socket = join(dir, 'vhost.sock');
  const cfg = join(dir, 'config.json');
  writeFileSync(
    cfg,
    JSON.stringify({
      device: { backend: { type: 'localfs', config: { dir: blobDir } }, cache: { type: 'blobcache', config: { work_dir: join(dir, 'cache') } } },
      enable_xattr: true,
    }),
  );
  const daemon = await startDaemon(['virtiofs', '--config', cfg, '--bootstrap', boot, '--sock', socket, ...extra]);
  return { daemon, socket };
}

const kDumpScript = 'set -e\nmount -t virtiofs nydus /mnt\nchmod +x /treedump\n/treedump /mnt';

async function guestTree(socket: string, d: RunningDaemon): Promise<TreeSnapshot> {
  const r = await runGuest({
    script: kDumpScript,
    virtiofs: [{ socket, tag: 'nydus' }],
    files: { '/treedump': readFileSync(toolBinary('treedump')) },
    timeoutMs: 180_000,
  });
  assert.equal(r.exitCode, 0, why(r, d));
  return snapshotFromTreeDump(parseTreeDump(r.output));
}

describe('nydusd over vhost-user virtio-fs, seen from a QEMU guest', { skip: kSkip }, () => {
  const work = mkdtempSync(join(tmpdir(), 'nydusd-virtio-'));
  const src = join(work, 'src');
  let want: TreeSnapshot = {};
  before(() => {
    makeRichTree(src, { chunkSize: kChunk, manyEntries: 1200, depth: 40 });
    want = rootAs0755(snapshotDir(src));
  });
  after(() => rmSync(work, { recursive: true, force: true }));

  const variants: Partial<BuildOptions>[] = [
    { fsVersion: 6, compressor: 'zstd', digester: 'blake3' },
    { fsVersion: 5, compressor: 'lz4_block', digester: 'sha256' },
  ];
  for (const v of variants) {
    test(`the guest sees the source tree exactly (v${v.fsVersion} ${v.compressor}/${v.digester})`, { timeout: 300_000 }, async () => {
      const dir = mkdtempSync(join(work, 'case-'));
      const blobs = join(dir, 'blobs');
      mkdirSync(blobs);
      const boot = join(dir, 'image.boot');
      await createImage({ ...defaultBuildOptions(src), ...v, chunkSize: kChunk, blobDir: blobs, bootstrapPath: boot });
      const { daemon, socket } = await serve(dir, boot, blobs);
      try {
        assert.deepEqual(diffTrees(want, await guestTree(socket, daemon), kDiff), []);
      } finally {
        assert.equal(await daemon.stop(), 0, daemon.log());
      }
    });
  }

  const fixtures = [
    ['v6 2.2', 'tests/texture/bootstrap/rafs-v6-2.2.boot', 'tests/texture/blobs'],
    ['v5 sha256', 'tests/texture/repeatable/sha256-nocompress-repeatable', 'tests/texture/repeatable/blobs'],
    ['inline-meta blob', 'tests/texture/toc/2fa78cad554b75ac91a4a125ed148d0ddeb25efa4aaa8bd80e5dc292690a4dca', 'tests/texture/toc'],
  ] as const;
  for (const [name, bootRel, blobRel] of fixtures) {
    test(`the guest sees the upstream ${name} fixture as the reader does`, { skip: fixturesSkip(), timeout: 300_000 }, async () => {
      const dir = mkdtempSync(join(work, 'fixture-'));
      const boot = fixture(bootRel);
      const blobs = fixture(blobRel);
      const img = openBootstrap(boot, { blobDir: blobs });
      const expected = rootAs0755(snapshotImage(img, blobReader(blobs)));
      img.close();
      const { daemon, socket } = await serve(dir, boot, blobs);
      try {
        assert.deepEqual(diffTrees(expected, await guestTree(socket, daemon), kDiff), []);
      } finally {
        assert.equal(await daemon.stop(), 0, daemon.log());
      }
    });
  }

  test('a guest reboot and a second QEMU on the same daemon keep being served', { timeout: 300_000 }, async () => {
    const dir = mkdtempSync(join(work, 'reboot-'));
    const blobs = join(dir, 'blobs');
    mkdirSync(blobs);
    const boot = join(dir, 'image.boot');
    await createImage({ ...defaultBuildOptions(src), chunkSize: kChunk, blobDir: blobs, bootstrapPath: boot });
    const { daemon, socket } = await serve(dir, boot, blobs);
    try {
      // Boot 1 reads and leaves the mount in place (no DESTROY); boot 2 gets a fresh INIT.
      const script = [
        'set -e',
        'mount -t virtiofs nydus /mnt',
        'ls /mnt > /dev/null',
        'find /mnt -type f | head -50 | xargs cat > /dev/null',
        'echo "boot $BOOT ok"',
      ].join('\n');
      const r = await runGuest({ script, virtiofs: [{ socket, tag: 'nydus' }], reboots: 1, timeoutMs: 180_000 });
      assert.equal(r.exitCode, 0, why(r, daemon));
      assert.equal(r.boots, 2);
      assert.match(r.output, /boot 1 ok[\s\S]*boot 2 ok/);
      // QEMU exited; the daemon listens again and a new VM gets the same tree.
      const again = await guestTree(socket, daemon);
      assert.deepEqual(diffTrees(want, again, kDiff), []);
    } finally {
      assert.equal(await daemon.stop(), 0, daemon.log());
    }
  });
});
