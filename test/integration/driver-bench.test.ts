/**
 * The frontend driver's benchmark commands that `npm run bench` builds on (smoke runs, not
 * measurements): the request counts they report must add up to what each cycle sends, the work
 * must be what was asked (entries, bytes), and the bounds must describe the data they ran on.
 * Against our backend with the test responder (nydus_vu_testd) and, where it runs, virtiofsd.
 */
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import type { Backend } from './driver-harness.js';
import { driverJson, runDriver, startTestd, startVirtiofsd, tempDir, virtiofsdSkip } from './driver-harness.js';

interface BenchJson {
  entries: number;
  ops: number;
  requests: number;
  bytes: number;
  errors: number;
  listings: number;
  ops_per_s: number;
  server_cpu_s?: number;
  driver_cpu_s: number;
  machine_cpu_s?: number;
  other_cpu_s?: number;
}

const kFiles = 120;

describe('nydus_vu_driver benchmark commands', () => {
  const work = tempDir('nydus-driver-bench-');
  const src = join(work.path, 'src');
  let testd: Backend | undefined;
  before(async () => {
    mkdirSync(join(src, 'many', 'sub'), { recursive: true });
    for (let i = 0; i < kFiles; i++) writeFileSync(join(src, 'many', `f${String(i).padStart(3, '0')}`), Buffer.alloc(4096 + i, i));
    // 4 MiB of text-like (compressible) bytes: a file for --passes and a corpus for the codec bound.
    const line = Buffer.from('the quick brown fox jumps over the lazy dog 0123456789\n');
    writeFileSync(join(src, 'big.bin'), Buffer.concat(Array.from({ length: Math.ceil((4 << 20) / line.length) }, () => line)).subarray(0, 4 << 20));
    testd = await startTestd(work.path, src);
  });
  after(async () => {
    await testd?.stop();
    work.remove();
  });

  test('lookup-getattr: two requests per entry, every entry of the folder', async () => {
    const r = await driverJson<BenchJson>(testd?.socket ?? '', ['bench', 'lookup-getattr', '--path', '/many', '--qd', '4', '--seconds', '0.3']);
    assert.equal(r.entries, kFiles + 1, 'the files and the subfolder');
    assert.equal(r.errors, 0);
    assert.ok(r.ops > 0);
    assert.equal(r.requests, 2 * r.ops);
    // The machine's busy time covers at least what the driver itself used (10 ms ticks apart).
    assert.ok((r.machine_cpu_s ?? -1) >= r.driver_cpu_s - 0.05, `machine ${String(r.machine_cpu_s)} s, driver ${r.driver_cpu_s} s`);
    assert.equal(typeof r.other_cpu_s, 'number');
  });

  test('smallfile: LOOKUP, OPEN, READ, RELEASE of regular files only, 4 KiB each', async () => {
    const r = await driverJson<BenchJson>(testd?.socket ?? '', ['bench', 'smallfile', '--path', '/many', '--qd', '3', '--size', '4K', '--seconds', '0.3']);
    assert.equal(r.entries, kFiles, 'the subfolder is not a file');
    assert.equal(r.errors, 0);
    assert.ok(r.ops > 0);
    assert.equal(r.requests, 4 * r.ops);
    assert.equal(r.bytes, 4096 * r.ops, 'every file is larger than 4 KiB');
  });

  test('readdir: whole listings, every entry counted', async () => {
    const r = await driverJson<BenchJson>(testd?.socket ?? '', ['bench', 'readdir', '--path', '/many', '--seconds', '0.3']);
    assert.equal(r.entries, kFiles + 1);
    assert.ok(r.listings >= 1);
    assert.equal(r.ops, r.listings * r.entries);
    assert.ok(r.requests >= 3 * r.listings, 'OPENDIR, READDIRPLUS until empty, RELEASEDIR');
  });

  test('read --passes 1 reads the file exactly once', async () => {
    const r = await driverJson<BenchJson>(testd?.socket ?? '', ['bench', 'read', '--path', '/big.bin', '--size', '1M', '--qd', '2', '--passes', '1']);
    assert.equal(r.ops, 4);
    assert.equal(r.bytes, 4 << 20);
  });

  test('refuses a file where a folder is needed', async () => {
    const r = await runDriver(testd?.socket ?? '', ['bench', 'smallfile', '--path', '/big.bin', '--seconds', '0.1']);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /not a directory/);
  });

  test('bounds: pread and memcpy move bytes, codecs round-trip real chunks, digests hash whole pieces', async () => {
    const none = await runDriver('/nonexistent', ['bounds']);
    assert.equal(none.status, 1);
    assert.match(none.stderr, /bounds needs pread, memcpy, codec or digest/);
    const run = async (args: string[]): Promise<Record<string, number | string>> => {
      const r = await runDriver('/nonexistent', ['bounds', ...args, '--seconds', '0.2']);
      assert.equal(r.status, 0, r.stderr);
      return JSON.parse(r.stdout.toString('utf8')) as Record<string, number | string>;
    };
    const p = await run(['pread', '--file', join(src, 'big.bin')]);
    assert.equal(p['file_bytes'], 4 << 20);
    assert.ok(Number(p['bytes']) >= 4 << 20 && Number(p['mb_per_s']) > 0);
    const m = await run(['memcpy', '--span', '8M']);
    assert.ok(Number(m['mb_per_s']) > 0);
    for (const algo of ['none', 'lz4_block', 'zstd']) {
      const c = await run(['codec', '--file', join(src, 'big.bin'), '--algo', algo, '--chunk', '1M']);
      assert.equal(c['input_bytes'], 4 << 20);
      if (algo === 'none') assert.equal(c['ratio'], 1);
      else assert.ok(Number(c['ratio']) > 5, `${algo} compresses repeated text (ratio ${String(c['ratio'])})`);
    }
    for (const algo of ['blake3', 'sha256']) {
      // Whole 1 MiB pieces walking a 4 MiB span: the bytes counted are whole digests.
      const d = await run(['digest', '--algo', algo, '--size', '1M', '--span', '4M']);
      assert.equal(d['algo'], algo);
      assert.ok(Number(d['bytes']) >= 1 << 20 && Number(d['bytes']) % (1 << 20) === 0, `${algo}: ${String(d['bytes'])} bytes`);
      assert.ok(Number(d['cpu_s']) > 0);
      if (algo === 'blake3') assert.ok(Number(d['simd_degree']) >= 1);
    }
    const badDigest = await runDriver('/nonexistent', ['bounds', 'digest', '--algo', 'md5']);
    assert.equal(badDigest.status, 1);
    assert.match(badDigest.stderr, /--algo must be blake3 or sha256/);
    const badSpan = await runDriver('/nonexistent', ['bounds', 'digest', '--algo', 'sha256', '--size', '8M', '--span', '4M']);
    assert.equal(badSpan.status, 1);
    assert.match(badSpan.stderr, /need 0 < --size <= --span/);
    const bad = await runDriver('/nonexistent', ['bounds', 'codec', '--file', join(src, 'big.bin'), '--algo', 'gzip']);
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /--algo must be/);
  });

  test('the cycles run against virtiofsd too', { skip: virtiofsdSkip() }, async () => {
    for (const args of [['smallfile', '--qd', '4'], ['lookup-getattr', '--qd', '1'], ['readdir']]) {
      const v = await startVirtiofsd(work.path, src);
      try {
        const r = await driverJson<BenchJson>(v.socket, ['bench', ...args, '--path', '/many', '--seconds', '0.2']);
        assert.equal(r.errors, 0);
        assert.ok(r.ops > 0, args.join(' '));
        assert.ok((r.server_cpu_s ?? -1) >= 0, 'virtiofsd CPU is readable (process and its sandbox child)');
      } finally {
        await v.stop();
      }
    }
  });
});
