/**
 * Cache robustness through FUSE mounts of real nydusd processes (issue 13 item 6): a work_dir
 * on a tiny tmpfs (ENOSPC) still serves every byte through the native READ path (chunks kept in
 * the in-memory spill), logging the failure once; two daemons on one work_dir read one image
 * at the same time and both see exactly the source bytes, as does a third, warm, start.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';

import { createImage, defaultBuildOptions } from '../../src/rafs/builder/index.js';
import { startDaemon } from '../helpers/daemon.js';

const kSkip = process.getuid?.() === 0 ? false : 'FUSE and tmpfs mounts need root';
const kChunk = 0x10000;
const work = mkdtempSync(join(tmpdir(), 'nydusd-cache-robust-'));
const files = new Map<string, string>();
let boot = '';
let blobs = '';
const mounted: string[] = [];

function sha(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

before(async () => {
  if (kSkip) return;
  const src = join(work, 'src');
  blobs = join(work, 'blobs');
  mkdirSync(src);
  mkdirSync(blobs);
  for (let f = 0; f < 6; f++) {
    const data = Buffer.alloc((f + 1) * 300_000 + f);
    for (let i = 0, x = 777 + f; i < data.length; i++) {
      x = (x * 1103515245 + 12345) >>> 0;
      data[i] = x >>> 24;
    }
    writeFileSync(join(src, `f${f}`), data);
    files.set(`f${f}`, sha(data));
  }
  boot = join(work, 'image.boot');
  await createImage({ ...defaultBuildOptions(src), chunkSize: kChunk, blobDir: blobs, bootstrapPath: boot });
});
after(() => {
  for (const m of mounted) execFileSync('umount', ['-l', m]);
  rmSync(work, { recursive: true, force: true });
});

function config(name: string, cacheDir: string): string {
  const cfg = join(work, `${name}.json`);
  writeFileSync(cfg, JSON.stringify({ device: { backend: { type: 'localfs', config: { dir: blobs } }, cache: { type: 'blobcache', config: { work_dir: cacheDir } } }, amplify_io: 0 }));
  return cfg;
}

async function readAll(mnt: string): Promise<void> {
  await Promise.all(
    [...files].map(async ([name, want]) => {
      assert.equal(sha(await readFile(join(mnt, name))), want, `${mnt}/${name}`);
    }),
  );
}

test('ENOSPC on the cache directory: every byte still reaches the reader, the failure is logged once', { skip: kSkip, timeout: 60_000 }, async () => {
  const cache = join(work, 'tiny');
  mkdirSync(cache);
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=192k', 'nydus-enospc', cache]);
  mounted.push(cache);
  const mnt = join(work, 'mnt-enospc');
  mkdirSync(mnt);
  const d = await startDaemon(['--config', config('enospc', cache), '--bootstrap', boot, '--mountpoint', mnt]);
  try {
    await readAll(mnt);
    await readAll(mnt);
  } finally {
    assert.equal(await d.stop(), 0, d.log());
  }
  const failures = d.log().split('\n').filter((l) => l.includes('serving data from the backend without caching'));
  assert.equal(failures.length, 1, d.log());
  assert.match(failures[0] ?? '', /ENOSPC/);
  assert.doesNotMatch(d.log(), /READ fails with EIO/);
});

test('two daemons on one work_dir read one image concurrently and never corrupt each other', { skip: kSkip, timeout: 60_000 }, async () => {
  const cache = join(work, 'shared');
  const mnts = ['mnt-a', 'mnt-b', 'mnt-c'].map((m) => join(work, m));
  for (const m of mnts) mkdirSync(m);
  const cfg = config('shared', cache);
  const a = await startDaemon(['--config', cfg, '--bootstrap', boot, '--mountpoint', mnts[0] as string]);
  const b = await startDaemon(['--config', cfg, '--bootstrap', boot, '--mountpoint', mnts[1] as string]);
  try {
    await Promise.all([readAll(mnts[0] as string), readAll(mnts[1] as string), readAll(mnts[0] as string), readAll(mnts[1] as string)]);
  } finally {
    assert.equal(await a.stop(), 0, a.log());
    assert.equal(await b.stop(), 0, b.log());
  }
  // A warm start after both: the shared cache is whole and right.
  const c = await startDaemon(['--config', cfg, '--bootstrap', boot, '--mountpoint', mnts[2] as string]);
  try {
    await readAll(mnts[2] as string);
  } finally {
    assert.equal(await c.stop(), 0, c.log());
  }
  for (const d of [a, b, c]) {
    assert.doesNotMatch(d.log(), / ERROR |damaged|without a cache/, d.log());
  }
  const m = /(\d+) read misses filled/.exec(c.log());
  assert.ok(m, c.log());
  assert.equal(Number(m[1]), 0, `the warm start fetched nothing:\n${c.log()}`);
});
