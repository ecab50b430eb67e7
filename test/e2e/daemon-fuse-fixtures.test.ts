/**
 * nydusd serving the upstream fixture images on the host through /dev/fuse: the mounted tree
 * (types, modes, owners, sizes, nlink, mtimes, symlink targets, xattrs, sha256 of every file)
 * must equal what the RAFS reader says the image holds, for blobcache and dummycache; a warm
 * restart must serve everything without a single backend read.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { openBootstrap } from '../../src/rafs/index.js';
import { startDaemon } from '../helpers/daemon.js';
import { fixture, fixturesSkip } from '../helpers/paths.js';
import type { TreeSnapshot } from '../helpers/tree.js';
import { blobReader, diffTrees, snapshotDir, snapshotImage } from '../helpers/tree.js';

const kSkip = fixturesSkip() || (process.getuid?.() === 0 ? false : 'FUSE mounts need root');

interface Case {
  name: string;
  bootstrap: string;
  blobDir: string;
}

const kCases: Case[] = [
  { name: 'v6 2.2 (zstd, inlined chunk digests)', bootstrap: 'tests/texture/bootstrap/rafs-v6-2.2.boot', blobDir: 'tests/texture/blobs' },
  { name: 'v5 sha256, uncompressed', bootstrap: 'tests/texture/repeatable/sha256-nocompress-repeatable', blobDir: 'tests/texture/repeatable/blobs' },
  { name: 'v5 blake3', bootstrap: 'tests/texture/repeatable/blake3-lz4_block-non_repeatable', blobDir: 'tests/texture/repeatable/blobs' },
  {
    name: 'inline-meta blob as bootstrap',
    bootstrap: 'tests/texture/toc/2fa78cad554b75ac91a4a125ed148d0ddeb25efa4aaa8bd80e5dc292690a4dca',
    blobDir: 'tests/texture/toc',
  },
];

function config(dir: string, blobDir: string, cache: 'blobcache' | 'dummycache', extra: Record<string, unknown> = {}): string {
  const path = join(dir, `config-${cache}.json`);
  const c = {
    device: {
      backend: { type: 'localfs', config: { dir: blobDir } },
      cache: cache === 'blobcache' ? { type: 'blobcache', config: { work_dir: join(dir, 'cache') } } : { type: 'dummycache' },
    },
    mode: 'direct',
    enable_xattr: true,
    ...extra,
  };
  writeFileSync(path, JSON.stringify(c));
  return path;
}

/** What the reader says the image holds; the daemon shows the root as 0755. */
function imageSnapshot(bootstrap: string, blobDir: string): TreeSnapshot {
  const img = openBootstrap(bootstrap, { blobDir });
  try {
    const snap = snapshotImage(img, blobReader(blobDir));
    const root = snap['/'];
    if (root) root.perm = (root.perm & ~0o777) | 0o755;
    return snap;
  } finally {
    img.close();
  }
}

/** The root's mtime is the daemon's start time when the image has none (as upstream). */
const kDiff = { ignoreRootMtime: true };

function backendReads(log: string): number {
  const m = /storage closed: backend (\d+) reads/.exec(log);
  assert.ok(m, `no storage summary in the log:\n${log}`);
  return Number(m[1]);
}

describe('nydusd over /dev/fuse with upstream fixtures', { skip: kSkip }, () => {
  let work = '';
  before(() => {
    work = mkdtempSync(join(tmpdir(), 'nydusd-fuse-'));
  });
  after(() => rmSync(work, { recursive: true, force: true }));

  for (const [i, c] of kCases.entries()) {
    for (const cache of ['blobcache', 'dummycache'] as const) {
      test(`${c.name}, ${cache}: mounted tree equals the image`, { timeout: 60_000 }, async () => {
        const dir = join(work, `${i}-${cache}`);
        const mnt = join(dir, 'mnt');
        mkdirSync(mnt, { recursive: true });
        const blobDir = fixture(c.blobDir);
        const want = imageSnapshot(fixture(c.bootstrap), blobDir);
        const d = await startDaemon(['--config', config(dir, blobDir, cache), '--bootstrap', fixture(c.bootstrap), '--mountpoint', mnt]);
        try {
          assert.deepEqual(diffTrees(want, snapshotDir(mnt), kDiff), []);
        } finally {
          assert.equal(await d.stop(), 0, d.log());
        }
      });
    }
  }

  test('a warm restart serves every file with zero backend reads', { timeout: 60_000 }, async () => {
    const c = kCases[0] as Case;
    const dir = join(work, 'warm');
    const mnt = join(dir, 'mnt');
    mkdirSync(mnt, { recursive: true });
    const cfg = config(dir, fixture(c.blobDir), 'blobcache');
    const args = ['--config', cfg, '--bootstrap', fixture(c.bootstrap), '--mountpoint', mnt];
    const want = imageSnapshot(fixture(c.bootstrap), fixture(c.blobDir));
    const first = await startDaemon(args);
    let cold: TreeSnapshot;
    try {
      cold = snapshotDir(mnt);
    } finally {
      assert.equal(await first.stop(), 0, first.log());
    }
    assert.ok(backendReads(first.log()) > 0, 'the cold run must have fetched from the backend');

    const second = await startDaemon(args);
    let warm: TreeSnapshot;
    try {
      warm = snapshotDir(mnt);
    } finally {
      assert.equal(await second.stop(), 0, second.log());
    }
    assert.deepEqual(diffTrees(want, cold, kDiff), []);
    assert.deepEqual(diffTrees(want, warm, kDiff), []);
    assert.equal(backendReads(second.log()), 0, second.log());
    // Every READ of the warm run was a cache hit served natively: none reached JavaScript.
    const m = /fuse: \d+ requests; (\d+) READs served natively \(\d+ bytes\), (\d+) read misses filled, (\d+) READs through JavaScript/.exec(second.log());
    assert.ok(m, second.log());
    assert.ok(Number(m[1]) > 0);
    assert.deepEqual([m[2], m[3]], ['0', '0']);
  });

  // Upstream's v6 image through the compressed (.blob.raw) and encrypted caches (issue 13 item 5).
  const kKey = '0123456789abcdef0123456789abcdef' + 'fedcba9876543210fedcba9876543210';
  const kFormats: [string, Record<string, unknown>][] = [
    ['compressed', { compressed: true }],
    ['encrypted', { config: { enable_encryption: true, encryption_key: kKey } }],
  ];
  for (const [name, fmt] of kFormats) {
    test(`${(kCases[0] as Case).name}, ${name} cache: cold and warm trees equal the image, warm without the backend`, { timeout: 60_000 }, async () => {
      const c = kCases[0] as Case;
      const dir = join(work, `fmt-${name}`);
      const mnt = join(dir, 'mnt');
      mkdirSync(mnt, { recursive: true });
      const path = config(dir, fixture(c.blobDir), 'blobcache');
      const cfg = JSON.parse(readFileSync(path, 'utf8')) as { device: { cache: { config: Record<string, unknown> } & Record<string, unknown> } };
      const { config: more, ...top } = fmt as { config?: Record<string, unknown> };
      Object.assign(cfg.device.cache, top);
      Object.assign(cfg.device.cache.config, more ?? {});
      writeFileSync(path, JSON.stringify(cfg));
      const args = ['--config', path, '--bootstrap', fixture(c.bootstrap), '--mountpoint', mnt];
      const want = imageSnapshot(fixture(c.bootstrap), fixture(c.blobDir));
      for (const run of ['cold', 'warm']) {
        const d = await startDaemon(args);
        try {
          assert.deepEqual(diffTrees(want, snapshotDir(mnt), kDiff), [], run);
        } finally {
          assert.equal(await d.stop(), 0, d.log());
        }
        if (run === 'warm') assert.equal(backendReads(d.log()), 0, d.log());
        assert.doesNotMatch(d.log(), / ERROR /, d.log());
      }
    });
  }
});
