/**
 * The read-buffer pool (src/storage/read-buffers.ts) and the backend side of it: size classes,
 * reuse only after release, never two lenders of one buffer, bounded and idle-trimmed retention;
 * local backends read into the caller's memory, and the retry wrapper withholds it whenever an
 * attempt could outlive the read.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';

import type { RawBackend, ReadOptions } from '../../src/storage/index.js';
import { BlobBackend, LocalFsBackend, remotePolicy } from '../../src/storage/index.js';
import { capacityFor, kMinPooledRead, ReadBufferPool } from '../../src/storage/read-buffers.js';

const root = mkdtempSync(join(tmpdir(), 'nydus-read-buffers-'));
after(() => rmSync(root, { recursive: true, force: true }));
const MiB = 1 << 20;

test('capacities round up to a quarter of the power of two, never below the length', () => {
  assert.equal(capacityFor(MiB), MiB);
  assert.equal(capacityFor(MiB + 1), MiB + MiB / 4);
  assert.equal(capacityFor(8 * MiB + 123), 10 * MiB);
  assert.equal(capacityFor(15 * MiB), 16 * MiB);
  for (const n of [1, 3, 4095, 300_000, 9_999_999, 256 * MiB]) {
    const cap = capacityFor(n);
    assert.ok(cap >= n && cap <= n * 1.25 + 1, `${n} -> ${cap}`);
  }
});

test('a released buffer is lent again for a read of its class, and only after release', () => {
  const pool = new ReadBufferPool();
  const a = pool.acquire(8 * MiB + 5);
  assert.equal(a.length, 8 * MiB + 5);
  const b = pool.acquire(8 * MiB + 5);
  assert.notEqual(a.buffer, b.buffer, 'a lent buffer is not lent twice');
  pool.release(a);
  const c = pool.acquire(9 * MiB);
  assert.equal(c.buffer, a.buffer, 'same class (10 MiB): reused');
  assert.equal(c.length, 9 * MiB);
  // A second release of the same memory is ignored: it must not come back to two readers.
  pool.release(c);
  pool.release(c);
  const d = pool.acquire(9 * MiB);
  const e = pool.acquire(9 * MiB);
  assert.equal(d.buffer, a.buffer);
  assert.notEqual(e.buffer, a.buffer);
  assert.deepEqual(pool.stats(), { allocated: 3, reused: 2, retainedBytes: 0 });
  pool.release(b);
  // Other classes do not take it.
  assert.notEqual(pool.acquire(2 * MiB).buffer, b.buffer);
  pool.trim();
});

test('small reads are not pooled, foreign buffers are not taken, retention is bounded', () => {
  const pool = new ReadBufferPool({ maxRetained: 10 * MiB });
  const small = pool.acquire(kMinPooledRead - 1);
  pool.release(small);
  pool.release(Buffer.allocUnsafeSlow(MiB));
  assert.deepEqual(pool.stats(), { allocated: 0, reused: 0, retainedBytes: 0 });
  const x = pool.acquire(4 * MiB);
  const y = pool.acquire(4 * MiB);
  const z = pool.acquire(4 * MiB);
  for (const b of [x, y, z]) pool.release(b);
  // 10 MiB bound: two 4 MiB buffers are kept, the third goes to the collector.
  assert.equal(pool.stats().retainedBytes, 8 * MiB);
  assert.equal(pool.acquire(4 * MiB).buffer, y.buffer);
  assert.equal(pool.acquire(4 * MiB).buffer, x.buffer);
  assert.notEqual(pool.acquire(4 * MiB).buffer, z.buffer);
  pool.trim();
  assert.equal(pool.stats().retainedBytes, 0);
});

test('free buffers are dropped once the pool has been idle', async () => {
  const pool = new ReadBufferPool({ idleMs: 20 });
  pool.release(pool.acquire(MiB));
  assert.equal(pool.stats().retainedBytes, MiB);
  await new Promise((r) => setTimeout(r, 120));
  assert.equal(pool.stats().retainedBytes, 0);
});

test('localfs reads into the memory it is given and returns it', async () => {
  const dir = join(root, 'blobs');
  mkdirSync(dir);
  const bytes = Buffer.from(Array.from({ length: 4096 }, (_, i) => i & 0xff));
  writeFileSync(join(dir, 'b1'), bytes);
  const be = new BlobBackend(await LocalFsBackend.create({ dir, blob_file: '', alt_dirs: [] }));
  const into = Buffer.alloc(1000, 0xee);
  const got = await be.read('b1', 100, 1000, undefined, { into });
  assert.equal(got, into);
  assert.ok(got.equals(bytes.subarray(100, 1100)));
  // Memory of another length is not used.
  const other = Buffer.alloc(10);
  const got2 = await be.read('b1', 0, 20, undefined, { into: other });
  assert.notEqual(got2, other);
  assert.ok(got2.equals(bytes.subarray(0, 20)));
  await be.close();
});

test('the wrapper withholds caller memory from backends whose attempts can time out', async () => {
  const seen: (Buffer | undefined)[] = [];
  const raw: RawBackend = {
    type: 'spy',
    size: () => Promise.resolve(100),
    tryRead: (_id: string, _o: number, length: number, _s?: AbortSignal, opts?: ReadOptions) => {
      seen.push(opts?.into);
      return Promise.resolve(opts?.into ?? Buffer.alloc(length));
    },
    close: () => Promise.resolve(),
  };
  const into = Buffer.alloc(10);
  await new BlobBackend(raw).read('b', 0, 10, undefined, { into });
  await new BlobBackend(raw, { ...remotePolicy(0), timeoutMs: 1000 }).read('b', 0, 10, undefined, { into });
  assert.deepEqual(seen, [into, undefined]);
});
