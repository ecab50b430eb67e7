/**
 * Prefetch and the readahead log through the whole product on the host: `nydus-image create
 * --prefetch-policy fs` reading the list from stdin (as upstream), nydusd with `fs_prefetch` or a
 * backend `readahead`, a /dev/fuse mount, and plain reads. Success is counted by the daemon
 * itself: READs of prefetched files are served natively from the cache ("0 read misses filled"
 * in its stop summary).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import type { RunningDaemon } from '../helpers/daemon.js';
import { startDaemon } from '../helpers/daemon.js';
import { binDir } from '../helpers/paths.js';
import { chunkBytes } from '../helpers/storage-fixtures.js';

const kSkip = process.getuid?.() === 0 && existsSync('/dev/fuse') ? false : 'FUSE mounts need root and /dev/fuse';
const work = mkdtempSync(join(tmpdir(), 'nydusd-prefetch-e2e-'));
after(() => rmSync(work, { recursive: true, force: true }));

const kFiles: Record<string, number> = { 'bin/tool': 700_000, 'lib/libx.so': 900_000, 'etc/conf': 5_000, 'data/big': 1_500_000, 'data/other': 300_000 };

function misses(log: string): number {
  const m = /(\d+) read misses filled/.exec(log);
  assert.ok(m, `no stop summary in:\n${log.slice(-2000)}`);
  return Number(m[1]);
}

async function untilLogged(d: RunningDaemon, re: RegExp): Promise<void> {
  for (let i = 0; i < 1000 && !re.test(d.log()); i++) await new Promise((r) => setTimeout(r, 20));
  assert.match(d.log(), re);
}

describe('prefetch through a FUSE mount', { skip: kSkip }, () => {
  const src = join(work, 'src');
  const blobs = join(work, 'blobs');
  const boot = join(work, 'image.boot');
  before(() => {
    let seed = 11;
    for (const [path, size] of Object.entries(kFiles)) {
      mkdirSync(join(src, path, '..'), { recursive: true });
      writeFileSync(join(src, path), chunkBytes(seed++ * 104729, size, false));
    }
    mkdirSync(blobs);
    // The prefetch list on stdin, as upstream's nydus-image reads it.
    const r = spawnSync(process.execPath, [join(binDir, 'nydus-image'), 'create', '--prefetch-policy', 'fs', '--chunk-size', '0x10000', '-B', boot, '-D', blobs, src], {
      input: '/bin\n/lib/libx.so\n',
      encoding: 'utf8',
    });
    assert.equal(r.status, 0, r.stderr);
  });

  function config(cacheDir: string, extra: Record<string, unknown>): string {
    const p = join(cacheDir, '..', `config-${readdirSync(work).length}.json`);
    writeFileSync(p, JSON.stringify({
      device: { backend: { type: 'localfs', config: { dir: blobs, ...(extra['backend'] as object) } }, cache: { type: 'blobcache', config: { work_dir: cacheDir } } },
      mode: 'direct',
      amplify_io: 131072,
      ...(extra['fs_prefetch'] ? { fs_prefetch: extra['fs_prefetch'] } : {}),
    }));
    return p;
  }

  const read = (mnt: string, path: string): Buffer => readFileSync(join(mnt, path));

  async function run(args: string[], body: (mnt: string, d: RunningDaemon) => Promise<void>): Promise<string> {
    const mnt = mkdtempSync(join(work, 'mnt-'));
    const d = await startDaemon([...args, '--bootstrap', boot, '--mountpoint', mnt]);
    try {
      await body(mnt, d);
    } finally {
      assert.equal(await d.stop(), 0, d.log());
    }
    return d.log();
  }

  test("the bootstrap's prefetch table is in the cache before anyone reads it", { timeout: 60_000 }, async () => {
    const cache = mkdtempSync(join(work, 'cache-'));
    const cfg = config(cache, { fs_prefetch: { enable: true, prefetch_all: false, threads_count: 4, merging_size: 262144 } });
    const log = await run(['--config', cfg], async (mnt, d) => {
      await untilLogged(d, /prefetch done: \d+ request/);
      assert.ok(read(mnt, 'bin/tool').equals(readFileSync(join(src, 'bin/tool'))));
      assert.ok(read(mnt, 'lib/libx.so').equals(readFileSync(join(src, 'lib/libx.so'))));
    });
    assert.match(log, /prefetch: 2 file\(s\) from the bootstrap's prefetch table, 1600\d{3} bytes planned/);
    assert.equal(misses(log), 0, 'the table files were served from the prefetched cache');
  });

  test('--prefetch-files overrides the table; "/" with prefetch_all fetches everything', { timeout: 60_000 }, async () => {
    const list = join(work, 'prefetch.list');
    writeFileSync(list, '\n  /data/other  \n/missing\n');
    const cache = mkdtempSync(join(work, 'cache-'));
    const cfg = config(cache, { fs_prefetch: { enable: true, prefetch_all: false } });
    let log = await run(['--config', cfg, '--prefetch-files', list], async (mnt, d) => {
      await untilLogged(d, /prefetch done/);
      assert.ok(read(mnt, 'data/other').equals(readFileSync(join(src, 'data/other'))));
      read(mnt, 'bin/tool');
    });
    assert.match(log, /prefetch: not in the image, skipped: \/missing/);
    assert.match(log, /prefetch: 1 file\(s\) from the prefetch list/);
    assert.ok(misses(log) > 0, 'bin/tool (only in the table) was read on demand');
    writeFileSync(list, '/\n');
    const cache2 = mkdtempSync(join(work, 'cache-'));
    log = await run(['--config', config(cache2, { fs_prefetch: { enable: true } }), '--prefetch-files', list], async (mnt, d) => {
      await untilLogged(d, /prefetch done/);
      for (const p of Object.keys(kFiles)) assert.ok(read(mnt, p).equals(readFileSync(join(src, p))), p);
    });
    assert.equal(misses(log), 0);
  });

  test('readahead: the second start prefetches what the first one read', { timeout: 60_000 }, async () => {
    const cache = mkdtempSync(join(work, 'cache-'));
    const cfg = config(cache, { backend: { readahead: true, readahead_sec: 0 } });
    let log = await run(['--config', cfg], (mnt) => {
      read(mnt, 'etc/conf');
      read(mnt, 'data/big');
      return Promise.resolve();
    });
    assert.ok(misses(log) > 0);
    assert.match(log, /readahead: recorded \d+ range\(s\) of blob [0-9a-f]{64}/);
    for (const f of readdirSync(cache)) if (/\.blob\.data/.test(f)) rmSync(join(cache, f));
    log = await run(['--config', cfg], async (mnt, d) => {
      await untilLogged(d, /prefetch done/);
      assert.ok(read(mnt, 'etc/conf').equals(readFileSync(join(src, 'etc/conf'))));
      assert.ok(read(mnt, 'data/big').equals(readFileSync(join(src, 'data/big'))));
    });
    assert.match(log, /readahead: \d+ range\(s\) \(\d+ bytes\) of blob/);
    assert.equal(misses(log), 0, 'everything the first start read was prefetched');
  });
});
