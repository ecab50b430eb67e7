/**
 * The demand-path readahead planner (src/storage/readahead.ts), on a model blob: when a stream
 * starts, how far ahead it reads, how requests are cut, what ends it, and that random readers
 * never trigger it; with a cap on requests in flight (maxInflight, what local backends use) the
 * window goes out a request at a time as each is delivered, a failure frees its slot.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';

import type { FetchRange } from '../../src/storage/fetch-plan.js';
import type { ReadaheadView } from '../../src/storage/readahead.js';
import { kLocalReadaheadDefaults, SequentialReadahead } from '../../src/storage/readahead.js';
import type { ChunkInfo } from '../../src/storage/types.js';

const KiB = 1024;
const kChunk = 64 * KiB;
const kOpts = { initialWindow: 512 * KiB, maxWindow: 1024 * KiB, requestBytes: 256 * KiB };

/** n chunks of 64 KiB, stored back to back; `busy` holds indexes cached or in flight. */
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
  const view: ReadaheadView = {
    chunkCount: n,
    batchSize: 128 * KiB,
    chunkAt: (i) => chunks[i],
    candidate: (i) => (busy.has(i) ? undefined : chunks[i]),
  };
  return { view, busy };
}

const indexes = (rs: FetchRange[]): number[] => rs.flatMap((r) => r.chunks.map((c) => c.chunkIndex));

/** A demand miss of chunk i whose own (amplified) fetch covers [i, i + amplified). */
function miss(ra: SequentialReadahead, m: ReturnType<typeof model>, i: number, amplified = 2): FetchRange[] {
  for (let k = i; k < i + amplified; k++) m.busy.add(k);
  const out = ra.touched([i], i + amplified, m.view);
  for (const k of indexes(out)) m.busy.add(k);
  return out;
}

test('a stream starts after two forward misses and reads one window ahead in requests of at most requestBytes', () => {
  const m = model(200);
  const ra = new SequentialReadahead(kOpts);
  assert.deepEqual(miss(ra, m, 0), []);
  assert.deepEqual(miss(ra, m, 2), [], 'one forward step is not a stream yet');
  const out = miss(ra, m, 4);
  assert.ok(ra.streaming);
  // The window (512 KiB = 8 chunks) is measured from the chunk after the last one touched; the
  // chunks the miss itself fetched (4, 5) are skipped.
  assert.deepEqual(indexes(out), [6, 7, 8, 9, 10, 11, 12]);
  for (const r of out) assert.ok(r.length <= kOpts.requestBytes, `request of ${r.length} bytes`);
  assert.equal(out.length, 2);
  assert.equal(out[0]?.offset, 6 * kChunk);
});

test('delivered() tops the window up ahead of the last chunk touched, never a trickle, never past the window', () => {
  const m = model(200);
  const ra = new SequentialReadahead(kOpts);
  miss(ra, m, 0);
  miss(ra, m, 2);
  const first = miss(ra, m, 4);
  assert.deepEqual(indexes(first), [6, 7, 8, 9, 10, 11, 12]);
  // The reader has not touched anything new: the window ahead of chunk 4 is full.
  assert.deepEqual(ra.delivered(m.view), []);
  // The reader joins chunk 7 (in flight): it reached the top-up, the window doubles (1 MiB =
  // 16 chunks ahead of chunk 7: up to 23).
  const more = ra.touched([7], 0, m.view);
  for (const k of indexes(more)) m.busy.add(k);
  assert.deepEqual(indexes(more), [13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23]);
  // Reader at 8: only one chunk is missing from the window, less than a request: no trickle.
  assert.deepEqual(ra.touched([8], 0, m.view), []);
  // Max window reached: it stays at 16 chunks ahead.
  const later = ra.touched([12], 0, m.view);
  assert.deepEqual(indexes(later), [24, 25, 26, 27, 28]);
});

test('random misses never start a stream', () => {
  const m = model(512);
  const ra = new SequentialReadahead(kOpts);
  for (let k = 0; k < 512; k++) {
    const i = (k * 197) % 512;
    if (m.busy.has(i)) continue;
    assert.deepEqual(miss(ra, m, i), [], `miss ${k} at chunk ${i}`);
  }
  assert.equal(ra.streaming, false);
});

test('concurrent READs of one sequential reader (out of order, nearby) keep the stream', () => {
  const m = model(200);
  const ra = new SequentialReadahead(kOpts);
  miss(ra, m, 0, 1);
  miss(ra, m, 1, 1);
  const out = miss(ra, m, 2, 1);
  assert.ok(ra.streaming);
  assert.ok(out.length > 0);
  // A READ that was issued earlier arrives late: it is behind, but near; the stream stays.
  ra.touched([1], 0, m.view);
  assert.ok(ra.streaming);
  // A jump far away ends it.
  ra.touched([150], 151, m.view);
  assert.equal(ra.streaming, false);
});

test('stop() (a failed readahead) ends the stream; the walk skips busy chunks and stops at the blob end', () => {
  const m = model(12);
  const ra = new SequentialReadahead(kOpts);
  miss(ra, m, 0);
  miss(ra, m, 2);
  m.busy.add(8);
  const out = miss(ra, m, 4);
  assert.deepEqual(indexes(out), [6, 7, 9, 10, 11], 'chunk 8 is busy; chunk 11 is the last');
  ra.stop();
  assert.equal(ra.streaming, false);
  assert.deepEqual(ra.delivered(m.view), []);
});

/** Requests of two chunks, one in flight. */
const kCapped = { ...kOpts, requestBytes: 128 * KiB, maxInflight: 1 };

/** Forward misses at `from`, `from` + 2 and `from` + 4: what the third (the stream's start) hands out. */
function startStream(ra: SequentialReadahead, m: ReturnType<typeof model>, from = 0): FetchRange[] {
  miss(ra, m, from);
  miss(ra, m, from + 2);
  return miss(ra, m, from + 4);
}

test('local defaults: a bounded number of requests in flight, each smaller than the window and at most one chunk of work', () => {
  // Three: two decode on the fill threads while the third waits queued behind on-demand fills.
  assert.equal(kLocalReadaheadDefaults.maxInflight, 3);
  assert.ok(kLocalReadaheadDefaults.requestBytes < kLocalReadaheadDefaults.initialWindow);
  assert.equal(kLocalReadaheadDefaults.requestUncompressed, 1024 * KiB);
});

/** n chunks of 64 KiB that compress to 16 KiB each, stored back to back. */
function compressible(n: number): ReadaheadView {
  const chunks: ChunkInfo[] = Array.from({ length: n }, (_, i) => ({
    chunkIndex: i,
    compressedOffset: i * 16 * KiB,
    compressedSize: 16 * KiB,
    uncompressedOffset: i * kChunk,
    uncompressedSize: kChunk,
    compressed: true,
    fileOffset: i * kChunk,
    blobIndex: 0,
    digest: Buffer.alloc(32, 1),
  }));
  return { chunkCount: n, batchSize: 128 * KiB, chunkAt: (i) => chunks[i], candidate: (i) => chunks[i] };
}

test('requestUncompressed cuts a well compressed stretch into requests of that much decoding each', () => {
  const start = (ra: SequentialReadahead, view: ReadaheadView): FetchRange[] => {
    ra.touched([0], 1, view);
    ra.touched([1], 2, view);
    return ra.touched([2], 3, view);
  };
  const view = compressible(400);
  // Without the cap: 256 KiB of compressed bytes per request, 16 chunks (1 MiB to decode).
  const plain = start(new SequentialReadahead(kOpts), view);
  assert.equal(plain[0]?.chunks.length, 16);
  const capped = start(new SequentialReadahead({ ...kOpts, requestUncompressed: 128 * KiB }), view);
  // The same chunks, in the same order, two per request, each request one contiguous range.
  assert.deepEqual(indexes(capped), indexes(plain));
  for (const r of capped) {
    assert.equal(r.chunks.length, 2);
    const [a, b] = r.chunks as [ChunkInfo, ChunkInfo];
    assert.equal(r.offset, a.compressedOffset);
    assert.equal(r.length, b.compressedOffset + b.compressedSize - a.compressedOffset);
  }
  // A chunk larger than the cap still goes out, alone.
  const big = start(new SequentialReadahead({ ...kOpts, requestUncompressed: 16 * KiB }), view);
  assert.deepEqual(big.map((r) => r.chunks.length), indexes(plain).map(() => 1));
});

test('with maxInflight 2 two requests go out, and one more per delivery', () => {
  const m = model(200);
  const ra = new SequentialReadahead({ ...kCapped, maxInflight: 2 });
  const first = startStream(ra, m);
  assert.deepEqual(first.map((r) => indexes([r])), [[6, 7], [8, 9]]);
  assert.equal(ra.running, 2);
  assert.deepEqual(miss(ra, m, 6, 0), [], 'both slots busy');
  const next = ra.delivered(m.view);
  assert.deepEqual(next.map((r) => indexes([r])), [[10, 11]]);
  assert.equal(ra.running, 2);
});

test('with maxInflight 1 the window goes out one request at a time, contiguous, as each is delivered', () => {
  const m = model(200);
  const ra = new SequentialReadahead(kCapped);
  const first = startStream(ra, m);
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
  const ra = new SequentialReadahead(kCapped);
  assert.equal(startStream(ra, m).length, 1);
  ra.failed();
  assert.equal(ra.running, 0);
  assert.equal(ra.streaming, false);
  // A new stream starts from scratch and gets its slot.
  assert.equal(startStream(ra, m, 20).length, 1);
  // The reader jumps away (stop) while that request runs; its delivery frees the slot and,
  // without a stream, reads nothing ahead.
  ra.touched([150], 152, m.view);
  assert.equal(ra.streaming, false);
  assert.deepEqual(ra.delivered(m.view), []);
  assert.equal(ra.running, 0);
});

test('at the blob end the last request is short and nothing goes past it', () => {
  const m = model(9);
  const ra = new SequentialReadahead(kCapped);
  assert.deepEqual(indexes(startStream(ra, m)), [6, 7]);
  const last = ra.delivered(m.view);
  assert.deepEqual(indexes(last), [8]);
  for (const k of indexes(last)) m.busy.add(k);
  assert.deepEqual(ra.delivered(m.view), []);
  assert.equal(ra.running, 0);
});

test('readahead stops at the end of the file being read (aheadEnd), not at the next file in the blob', () => {
  const m = model(200);
  const ra = new SequentialReadahead(kOpts);
  // The file holds chunks 0..9; the blob goes on with other files' chunks.
  ra.touched([0], 2, m.view, 10);
  ra.touched([2], 4, m.view, 10);
  const out = ra.touched([4], 6, m.view, 10);
  assert.deepEqual(indexes(out), [6, 7, 8, 9]);
  for (const k of indexes(out)) m.busy.add(k);
  assert.deepEqual(ra.delivered(m.view), []);
});
