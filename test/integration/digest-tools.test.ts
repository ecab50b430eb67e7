/**
 * Our digests against independent implementations run as separate tools: b3sum (Rust BLAKE3)
 * and sha256sum (coreutils). Random files of RAFS chunk sizes and the sizes around them are hashed
 * through chunkDigest (what digest validation calls) from unaligned memory and through the
 * incremental hasher in random pieces; and `nydus-image create` (the builder) must record, for
 * each chunk, the digest the tools compute of that chunk's bytes, and name the blob by
 * sha256sum of the file.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';

import { chunkDigest, createDigestHasher, type DigesterName } from '../../src/rafs/blob/codec.js';
import { createImage, defaultBuildOptions, type BuildOptions } from '../../src/rafs/builder/index.js';
import { V6Peek } from '../helpers/v6-peek.js';

const work = mkdtempSync(join(tmpdir(), 'digest-tools-'));
after(() => rmSync(work, { recursive: true, force: true }));

const kTools: Record<DigesterName, string[]> = { blake3: ['b3sum'], sha256: ['sha256sum'] };
const toolSkip = spawnSync('b3sum', ['--version'], { stdio: 'ignore' }).status === 0 ? false : 'b3sum is not installed (apt-get install b3sum)';

/** `tool FILE...` -> one hex digest per file, in order. */
function toolDigests(digester: DigesterName, files: readonly string[]): string[] {
  const [cmd, ...args] = kTools[digester];
  const r = spawnSync(cmd as string, [...args, ...files], { encoding: 'utf8', maxBuffer: 16 << 20 });
  assert.equal(r.status, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  assert.equal(lines.length, files.length);
  return lines.map((l) => l.split(' ')[0] as string);
}

/** `data` copied to `offset` bytes past an allocation's start (Buffer memory is 8-aligned). */
function unaligned(data: Buffer, offset: number): Buffer {
  const b = Buffer.alloc(data.length + 64);
  data.copy(b, offset);
  return b.subarray(offset, offset + data.length);
}

test('chunkDigest and the incremental hasher equal b3sum and sha256sum on random files', { skip: toolSkip }, () => {
  const K = 1024;
  const M = 1024 * K;
  const sizes = [0, 1, 55, 56, 63, 64, 65, 1023, 1024, 1025, 4 * K, 16 * K + 1, 64 * K - 1, M, M + 3, 4 * M - 1, 16 * M, 16 * M + 4097];
  const dir = join(work, 'random');
  mkdirSync(dir);
  const files = sizes.map((n, i) => {
    const data = randomBytes(n);
    const path = join(dir, `f${i}`);
    writeFileSync(path, data);
    return { n, path, data };
  });
  for (const digester of ['blake3', 'sha256'] as const) {
    const want = toolDigests(digester, files.map((f) => f.path));
    files.forEach((f, i) => {
      const offset = randomInt(64);
      const what = `${digester} of ${f.n} bytes at offset ${offset}`;
      assert.equal(chunkDigest(digester, unaligned(f.data, offset)).toString('hex'), want[i], what);
      const h = createDigestHasher(digester);
      let pieces = 0;
      for (let off = 0; off < f.n; pieces++) {
        const len = Math.min(f.n - off, 1 + randomInt(pieces % 2 === 0 ? 300 : 3 * M));
        h.update(f.data.subarray(off, off + len));
        off += len;
      }
      assert.equal(h.digest().toString('hex'), want[i], `${digester} of ${f.n} bytes in ${pieces} random pieces`);
    });
  }
});

for (const digester of ['blake3', 'sha256'] as const) {
  test(`nydus-image create (${digester}): chunk digests equal ${kTools[digester][0]} of each chunk; the blob is named by sha256sum`, { skip: toolSkip }, async () => {
    const src = join(work, `tree-${digester}`);
    const out = join(work, `out-${digester}`);
    mkdirSync(src);
    mkdirSync(out);
    // One file of distinct random 1 MiB chunks and a short tail: blob order is file order.
    const chunk = 1 << 20;
    const data = randomBytes(3 * chunk + 12345);
    writeFileSync(join(src, 'data'), data);
    const opts: BuildOptions = { ...defaultBuildOptions(src), chunkSize: chunk, blobDir: out, bootstrapPath: join(out, 'boot'), blobToc: true, digester, compressor: 'zstd' };
    const result = await createImage(opts);
    // The INLINED_CHUNK_DIGEST section (the TOC's blob.digest entry) holds every chunk's digest.
    const blob = readFileSync(result.blobPath!);
    const tocSize = new V6Peek(readFileSync(join(out, 'boot'))).blob(0)['tocSize'] as number;
    const toc = blob.subarray(blob.length - tocSize);
    const entry = toc.subarray(3 * 128, 4 * 128);
    assert.equal(entry.subarray(8, 19).toString(), 'blob.digest');
    const off = Number(entry.readBigUInt64LE(56));
    const recorded = blob.subarray(off, off + Number(entry.readBigUInt64LE(64)));
    const pieces: string[] = [];
    for (let i = 0; i * chunk < data.length; i++) {
      const p = join(out, `chunk${i}`);
      writeFileSync(p, data.subarray(i * chunk, (i + 1) * chunk));
      pieces.push(p);
    }
    const want = toolDigests(digester, pieces);
    assert.equal(recorded.length, 32 * want.length);
    want.forEach((hex, i) => assert.equal(recorded.subarray(i * 32, i * 32 + 32).toString('hex'), hex, `chunk ${i}`));
    const [blobSha] = toolDigests('sha256', [result.blobPath!]);
    assert.ok(readdirSync(out).includes(blobSha!), `blob file named by its sha256 (${blobSha})`);
  });
}
