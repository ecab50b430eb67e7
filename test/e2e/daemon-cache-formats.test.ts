/**
 * The compressed (`cache.compressed`, `<blob_id>.blob.raw`) and encrypted (`enable_encryption`,
 * convergent or not) blob caches through FUSE mounts of real nydusd processes (issue 13 item 5).
 * Each mode: a cold start reads the whole tree from an empty cache (sha256 of every file), then a
 * warm start with the backend's blobs moved away reads it again, so every byte came from the
 * compressed or encrypted cache file, all of it decoded natively (no READ went to TypeScript).
 * The files themselves are checked against upstream's layout:
 * `.blob.raw` holds the blob's bytes at each chunk's compressed offset; `.blob.data` holds each
 * chunk as AES-128-XTS units (zero tweak) that Node's own OpenSSL decrypts, and no plaintext.
 * A cache written with another key, or cut short, is fetched again, never served.
 */
import assert from 'node:assert/strict';
import { createDecipheriv, createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';

import { createImage, defaultBuildOptions } from '../../src/rafs/builder/index.js';
import type { ChunkInfo } from '../../src/rafs/index.js';
import { openBootstrap } from '../../src/rafs/index.js';
import { startDaemon } from '../helpers/daemon.js';

const kSkip = process.getuid?.() === 0 ? false : 'FUSE mounts need root';
const kChunk = 0x10000;
const kKey = 'a1b2c3d4e5f60718293a4b5c6d7e8f90' + '0f1e2d3c4b5a69788796a5b4c3d2e1f0';
const kOtherKey = '00112233445566778899aabbccddeeff' + 'ffeeddccbbaa99887766554433221100';
const work = mkdtempSync(join(tmpdir(), 'nydusd-cache-formats-'));
const files = new Map<string, Buffer>();
const chunksOf = new Map<string, ChunkInfo[]>();
let boot = '';
let blobs = '';
let blobId = '';

function sha(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

/** Half random (incompressible), half text-like (compressible), so chunks are both kinds. */
function content(n: number, seed: number): Buffer {
  const data = Buffer.alloc(n);
  for (let i = 0, x = seed; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    data[i] = i % 200_000 < 100_000 ? x >>> 24 : 0x61 + ((i >> 6) % 26);
  }
  return data;
}

before(async () => {
  if (kSkip) return;
  const src = join(work, 'src');
  blobs = join(work, 'blobs');
  mkdirSync(join(src, 'dir'), { recursive: true });
  mkdirSync(blobs);
  const sizes: [string, number][] = [['big', 700_000], ['dir/mid', 150_001], ['small', 3000], ['empty', 0], ['dir/tail', 65_536 + 17]];
  for (const [i, [name, n]] of sizes.entries()) {
    const data = content(n, 99 + i);
    writeFileSync(join(src, name), data);
    files.set(name, data);
  }
  boot = join(work, 'image.boot');
  await createImage({ ...defaultBuildOptions(src), compressor: 'lz4_block', chunkSize: kChunk, blobDir: blobs, bootstrapPath: boot });
  const img = openBootstrap(boot, { blobDir: blobs });
  try {
    for (const name of files.keys()) {
      let ref = img.super.rootRef;
      for (const part of name.split('/')) ref = img.lookup(ref, Buffer.from(part)) ?? assert.fail(name);
      chunksOf.set(name, img.chunks(ref));
    }
    blobId = img.blobs[0]?.blobId ?? '';
  } finally {
    img.close();
  }
  assert.ok([...chunksOf.values()].flat().some((c) => c.compressed) && [...chunksOf.values()].flat().some((c) => !c.compressed), 'the image has compressed and stored chunks');
});
after(() => rmSync(work, { recursive: true, force: true }));

function config(name: string, cache: string, extra: Record<string, unknown>, compressed = false): string {
  const cfg = join(work, `${name}.json`);
  writeFileSync(cfg, JSON.stringify({ device: { backend: { type: 'localfs', config: { dir: blobs } }, cache: { type: 'blobcache', compressed, config: { work_dir: cache, ...extra } } }, amplify_io: 0 }));
  return cfg;
}

async function readAll(mnt: string): Promise<void> {
  for (const [name, want] of files) assert.equal(sha(await readFile(join(mnt, name))), sha(want), `${mnt}/${name}`);
}

/** Mounts, reads the whole tree (twice), unmounts; returns the daemon's log. */
async function mountAndRead(name: string, cfg: string): Promise<string> {
  const mnt = join(work, `mnt-${name}`);
  mkdirSync(mnt, { recursive: true });
  const d = await startDaemon(['--config', cfg, '--bootstrap', boot, '--mountpoint', mnt]);
  try {
    await readAll(mnt);
    await readAll(mnt);
  } catch (err) {
    throw new Error(`${(err as Error).message}\n${d.log()}`, { cause: err });
  } finally {
    assert.equal(await d.stop(), 0, d.log());
  }
  assert.doesNotMatch(d.log(), / ERROR |READ fails with EIO/, d.log());
  return d.log();
}

/** The backend loses the blob (localfs needs its directory to exist at start). */
function hideBlob(): void {
  renameSync(join(blobs, blobId), join(work, 'blob.away'));
}
function restoreBlob(): void {
  renameSync(join(work, 'blob.away'), join(blobs, blobId));
}

/** Reads the tree cold, then warm with the blobs gone (every byte from the cache file). */
async function coldThenWarm(name: string, cfg: string): Promise<void> {
  await mountAndRead(`${name}-cold`, cfg);
  hideBlob();
  try {
    const log = await mountAndRead(`${name}-warm`, cfg);
    // The chunks' places reach the native side at OPEN: no warm READ waits for TypeScript.
    assert.match(log, / 0 read misses filled, 0 READs through JavaScript/, log);
  } finally {
    restoreBlob();
  }
}

function allChunks(): ChunkInfo[] {
  return [...chunksOf.values()].flat();
}

test('compressed cache: cold and warm reads match the source; .blob.raw holds the blob bytes at compressed offsets', { skip: kSkip, timeout: 90_000 }, async () => {
  const cache = join(work, 'cache-raw');
  await coldThenWarm('raw', config('raw', cache, {}, true));
  const raw = readFileSync(join(cache, `${blobId}.blob.raw`));
  const blob = readFileSync(join(blobs, blobId));
  assert.ok(!existsSync(join(cache, `${blobId}.blob.data`)), 'no uncompressed cache file');
  assert.ok(existsSync(join(cache, `${blobId}.blob.data.chunk_map`)), 'the chunk map keeps upstream name');
  for (const c of allChunks()) {
    const at = [c.compressedOffset, c.compressedOffset + c.compressedSize] as const;
    assert.ok(raw.subarray(...at).equals(blob.subarray(...at)), `chunk ${c.chunkIndex} at ${c.compressedOffset}`);
  }

  // Cut short: the chunks past the cut are fetched again (and the rest still served).
  truncateSync(join(cache, `${blobId}.blob.raw`), Math.floor(raw.length / 2));
  const log = await mountAndRead('raw-cut', config('raw', cache, {}, true));
  assert.match(log, /have no data in .*\.blob\.raw .*fetched again/);
});

for (const convergent of [false, true]) {
  const mode = convergent ? 'convergent encrypted' : 'encrypted';
  test(`${mode} cache: cold and warm reads match the source; units are AES-128-XTS, no plaintext on disk`, { skip: kSkip, timeout: 90_000 }, async () => {
    const cache = join(work, `cache-enc-${String(convergent)}`);
    const enc = { enable_encryption: true, enable_convergent_encryption: convergent, encryption_key: kKey };
    await coldThenWarm(`enc-${String(convergent)}`, config(`enc-${String(convergent)}`, cache, enc));
    const disk = readFileSync(join(cache, `${blobId}.blob.data`));
    for (const [name, data] of files) {
      for (let at = 0; at + 256 <= data.length; at += 50_000) {
        assert.equal(disk.indexOf(data.subarray(at, at + 256)), -1, `plaintext of ${name} at ${at} is in the cache file`);
      }
    }
    // Node's OpenSSL decrypts each unit of each chunk with the key upstream would use.
    for (const [name, cs] of chunksOf) {
      const plain = files.get(name) as Buffer;
      for (const c of cs) {
        const key = convergent ? c.digest : Buffer.from(kKey, 'hex');
        for (let u = 0; u * 4096 < c.uncompressedSize; u++) {
          const d = createDecipheriv('aes-128-xts', key, Buffer.alloc(16));
          const unit = Buffer.concat([d.update(disk.subarray(c.uncompressedOffset + u * 4096, c.uncompressedOffset + (u + 1) * 4096)), d.final()]);
          const want = plain.subarray(c.fileOffset + u * 4096, Math.min(c.fileOffset + c.uncompressedSize, c.fileOffset + (u + 1) * 4096));
          assert.ok(unit.subarray(0, want.length).equals(want), `${name} chunk ${c.chunkIndex} unit ${u}`);
        }
      }
    }
    if (convergent) return;
    // Another key: the cache is not served (it would decrypt to garbage) but fetched again.
    const other = config('enc-other', cache, { ...enc, encryption_key: kOtherKey });
    const log = await mountAndRead('enc-other', other);
    assert.match(log, /was encrypted with another key; its \d+ cached chunk\(s\) are fetched again/);
    // And a plain cache on the same work_dir does not serve ciphertext either.
    const plainLog = await mountAndRead('enc-plain', config('enc-plain', cache, {}));
    assert.match(plainLog, /is encrypted; its \d+ cached chunk\(s\) are fetched again/);
  });
}

test('a damaged encrypted cache file is EIO for the damaged chunk, never other bytes', { skip: kSkip, timeout: 60_000 }, async () => {
  const cache = join(work, 'cache-enc-damage');
  const cfg = config('enc-damage', cache, { enable_encryption: true, encryption_key: kKey });
  await mountAndRead('enc-damage-cold', cfg);
  const path = join(cache, `${blobId}.blob.data`);
  const disk = readFileSync(path);
  const victim = (chunksOf.get('dir/mid') as ChunkInfo[])[1] as ChunkInfo;
  disk[victim.uncompressedOffset + 100] = (disk[victim.uncompressedOffset + 100] as number) ^ 0x20;
  writeFileSync(path, disk);
  hideBlob();
  const mnt = join(work, 'mnt-enc-damage');
  mkdirSync(mnt, { recursive: true });
  const d = await startDaemon(['--config', cfg, '--bootstrap', boot, '--mountpoint', mnt]);
  try {
    assert.throws(() => readFileSync(join(mnt, 'dir/mid')), { code: 'EIO' });
    assert.ok(readFileSync(join(mnt, 'big')).equals(files.get('big') as Buffer), 'other files still read');
  } finally {
    restoreBlob();
    assert.equal(await d.stop(), 0, d.log());
  }
  assert.match(d.log(), /decoding the chunk from the cache file failed|cannot decode it from/);
});
