/**
 * The readahead planner with a cap on requests in flight (src/storage/readahead.ts maxInflight,
 * what local backends use): with a cap of one the window goes out one request at a time, the next one when the
 * previous is delivered, in order and without gaps or overlaps; a failure ends the stream and
 * frees its slot; a stop with a request in flight does not leak the slot.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';

import type { FetchRange } from '../../src/storage/fetch-plan.js';
import type { ReadaheadView } from '../../src/storage/readahead.js';
import { kLocalReadaheadDefaults, SequentialReadahead } from '../../src/storage/readahead.js';
import type { ChunkInfo } from '../../src/storage/types.js';

const KiB = 1024;
const kChunk = 64 * KiB;
const kOpts = { initialWindow: 512 * KiB, maxWindow: 1024 * KiB, requestBytes: 128 * KiB, maxInflight: 1 };

function model(n: number): { view: ReadaheadView; busy: Set<number> } {
  const chunks: ChunkInfo[] = Array.from({ length: n }, (_, i) => ({
    chunkIndex: i,
    compressedOffset: i * kChunk,
    compressedSize: kChunk,
    uncompressedOffset: i * kChunk,
    uncompressedSize: kChunk,
    compressed: false,
    fileOffset: i * kChunk,
    blobIndex: 0,
    digest: Buffer.alloc(32, 1),
  }));
  const busy = new Set<number>();
  return { view: { chunkCount: n, batchSize: 128 * KiB, chunkAt: (i) => chunks[i], candidate: (i) => (busy.has(i) ? undefined : chunks[i]) }, busy };
}

const indexes = (rs: FetchRange[]): number[] => rs.flatMap((r) => r.chunks.map((c) => c.chunkIndex));

function miss(ra: SequentialReadahead, m: ReturnType<typeof model>, i: number, amplified = 2): FetchRange[] {
  for (let k = i; k < i + amplified; k++) m.busy.add(k);
  const out = ra.touched([i], i + amplified, m.view);
  for (const k of indexes(out)) m.busy.add(k);
  return out;
}

test('local defaults: a bounded number of requests in flight, each smaller than the window', () => {
  assert.equal(kLocalReadaheadDefaults.maxInflight, 2);
  assert.ok(kLocalReadaheadDefaults.requestBytes < kLocalReadaheadDefaults.initialWindow);
});

test('with maxInflight 2 two requests go out, and one more per delivery', () => {
  const m = model(200);
  const ra = new SequentialReadahead({ ...kOpts, maxInflight: 2 });
  miss(ra, m, 0);
  miss(ra, m, 2);
  const first = miss(ra, m, 4);
  assert.deepEqual(first.map((r) => indexes([r])), [[6, 7], [8, 9]]);
  assert.equal(ra.running, 2);
  assert.deepEqual(miss(ra, m, 6, 0), [], 'both slots busy');
  const next = ra.delivered(m.view);
  assert.deepEqual(next.map((r) => indexes([r])), [[10, 11]]);
  assert.equal(ra.running, 2);
});

test('with maxInflight 1 the window goes out one request at a time, contiguous, as each is delivered', () => {
  const m = model(200);
  const ra = new SequentialReadahead(kOpts);
  miss(ra, m, 0);
  miss(ra, m, 2);
  const first = miss(ra, m, 4);
  assert.equal(first.length, 1, 'one request');
  assert.deepEqual(indexes(first), [6, 7]);
  assert.equal(ra.running, 1);
  // The reader moves on while the request runs: nothing more goes out.
  assert.deepEqual(miss(ra, m, 6, 0), []);
  assert.equal(ra.running, 1);
  // Delivered: the next request of the window, right after the previous one.
  const second = ra.delivered(m.view);
  for (const k of indexes(second)) m.busy.add(k);
  assert.deepEqual(indexes(second), [8, 9]);
  assert.equal(ra.running, 1);
  const third = ra.delivered(m.view);
  for (const k of indexes(third)) m.busy.add(k);
  assert.deepEqual(indexes(third), [10, 11]);
  // Every chunk read ahead was handed out once.
  const all = [...indexes(first), ...indexes(second), ...indexes(third)];
  assert.equal(new Set(all).size, all.length);
});

test('a failed request frees its slot and ends the stream; a stop with a request in flight keeps the count right', () => {
  const m = model(200);
  const ra = new SequentialReadahead(kOpts);
  miss(ra, m, 0);
  miss(ra, m, 2);
  assert.equal(miss(ra, m, 4).length, 1);
  ra.failed();
  assert.equal(ra.running, 0);
  assert.equal(ra.streaming, false);
  // A new stream starts from scratch and gets its slot.
  miss(ra, m, 20);
  miss(ra, m, 22);
  assert.equal(miss(ra, m, 24).length, 1);
  // The reader jumps away (stop) while that request runs; its delivery frees the slot and,
  // without a stream, reads nothing ahead.
  ra.touched([150], 152, m.view);
  assert.equal(ra.streaming, false);
  assert.deepEqual(ra.delivered(m.view), []);
  assert.equal(ra.running, 0);
});

test('at the blob end the last request is short and nothing goes past it', () => {
  const m = model(9);
  const ra = new SequentialReadahead(kOpts);
  miss(ra, m, 0);
  miss(ra, m, 2);
  assert.deepEqual(indexes(miss(ra, m, 4)), [6, 7]);
  const last = ra.delivered(m.view);
  assert.deepEqual(indexes(last), [8]);
  for (const k of indexes(last)) m.busy.add(k);
  assert.deepEqual(ra.delivered(m.view), []);
  assert.equal(ra.running, 0);
});
