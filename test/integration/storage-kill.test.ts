/**
 * Crash consistency of the blob cache: a process filling the cache is killed with SIGKILL at
 * different points; afterwards no chunk-map bit may stand for data that is not in the data file
 * (every ready chunk is read back and checked against its digest), and filling resumes.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, test } from 'node:test';

import { blake3, openChunkMap } from '../../src/native/index.js';
import { StorageService } from '../../src/storage/index.js';
import { projectRoot } from '../helpers/paths.js';
import { buildBlob } from '../helpers/storage-fixtures.js';
import { readFileSync } from 'node:fs';

const tmpRoot = mkdtempSync(join(tmpdir(), 'nydus-kill-'));
after(() => rmSync(tmpRoot, { recursive: true, force: true }));

const kChunks = 240;
const sb = buildBlob({ sizes: Array.from({ length: kChunks }, (_, i) => 65536 - (i % 7) * 512), compressor: 'zstd' });
const blobsDir = join(tmpRoot, 'blobs');
mkdirSync(blobsDir);
writeFileSync(join(blobsDir, sb.info.blobId), sb.blob);
const child = join(projectRoot, 'dist', 'test', 'integration', 'storage-kill-child.js');

/** Runs the child and SIGKILLs it after it reported `after` more filled chunks. Returns how many it reported. */
function fillAndKill(specPath: string, after: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [child, specPath], { stdio: ['ignore', 'pipe', 'inherit'] });
    let seen = 0;
    let finished = false;
    createInterface({ input: p.stdout }).on('line', (line) => {
      if (line === 'done') finished = true;
      if (!line.startsWith('filled ')) return;
      seen++;
      if (seen === after) p.kill('SIGKILL');
    });
    p.on('error', reject);
    p.on('exit', (code, signal) => {
      if (signal !== 'SIGKILL' && !finished) reject(new Error(`child exited with ${code ?? signal}`));
      else resolve(seen);
    });
  });
}

/** Every chunk whose bit is set must have exactly its data in the data file. */
function verifyReadyChunks(workDir: string): number {
  const data = readFileSync(join(workDir, `${sb.info.blobId}.blob.data`));
  const map = openChunkMap(join(workDir, `${sb.info.blobId}.blob.data.chunk_map`), kChunks);
  let ready = 0;
  try {
    for (const c of sb.chunks) {
      if (!map.isReady(c.chunkIndex)) continue;
      ready++;
      const got = data.subarray(c.uncompressedOffset, c.uncompressedOffset + c.uncompressedSize);
      assert.ok(blake3(got).equals(c.digest), `chunk ${c.chunkIndex} is marked ready but its data is wrong`);
    }
  } finally {
    map.close();
  }
  return ready;
}

for (const validate of [true, false]) {
  // Both run the one native fill (decode, digest check when validating, write, bit) on the fill threads.
  test(`SIGKILL while filling never leaves a ready bit without its data; filling resumes (digest_validate ${String(validate)})`, { timeout: 120_000 }, async () => {
    const workDir = join(tmpRoot, `cache-${String(validate)}`);
    mkdirSync(workDir);
    const specPath = join(tmpRoot, `spec-${String(validate)}.json`);
    writeFileSync(
      specPath,
      JSON.stringify({ blobsDir, workDir, info: sb.info, validate, chunks: sb.chunks.map((c) => ({ ...c, digest: c.digest.toString('hex') })) }),
    );
    let previous = 0;
    for (const after of [20, 60, 30]) {
      const reported = await fillAndKill(specPath, after);
      assert.ok(reported >= after, 'the child was killed mid-fill');
      const ready = verifyReadyChunks(workDir);
      assert.ok(ready >= previous + after, `at least the ${after} reported chunks are ready (${ready})`);
      assert.ok(ready < kChunks, 'the kill landed before the end');
      previous = ready;
    }
    // A fresh process completes the cache, fetching only what is missing.
    const service = await StorageService.create({
      backend: { type: 'localfs', config: { dir: blobsDir, blob_file: '', alt_dirs: [] } },
      backendKey: 'backend.localfs',
      cache: { kind: 'blobcache', workDir, workDirKey: 'work_dir' },
      validate,
      batchSize: 0,
    });
    try {
      const image = await service.openImage([sb.info]);
      const file = await image.read(sb.chunks, 0, sb.file.length);
      assert.ok(file.equals(sb.file));
      assert.equal(service.stats().cache.hits, previous);
      assert.equal(service.stats().cache.chunksFilled, kChunks - previous);
    } finally {
      await service.close();
    }
    assert.equal(verifyReadyChunks(workDir), kChunks);
  });
}
