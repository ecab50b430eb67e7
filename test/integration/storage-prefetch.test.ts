/**
 * Prefetch end to end below the filesystem: images built by our nydus-image, opened from a
 * configuration as the daemon opens them, prefetched by ImagePrefetch over the localfs backend,
 * with every request the backend receives recorded (offset, length, priority, time).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';

import type { ChunkInfo } from '../../src/storage/index.js';
import type { ImagePrefetch } from '../../src/storage/prefetch/index.js';
import type { OpenedImage, TestImage } from '../helpers/prefetch-image.js';
import { fixture, fixturesSkip } from '../helpers/paths.js';
import { buildTestImage, localConfig, openImage, startPrefetch, tempDirs, warningLogger } from '../helpers/prefetch-image.js';

const fresh = tempDirs('nydus-prefetch-');

const kFiles = { '/a': 300_000, '/b': 200_000, '/c': 500_000, '/d': 100_000, '/dir/e': 150_000, '/dir/sub/f': 70_000 };

const images = new Map<string, Promise<TestImage>>();
function image(key: string, spec: Parameters<typeof buildTestImage>[1]): Promise<TestImage> {
  let p = images.get(key);
  if (!p) {
    p = buildTestImage(fresh(), spec);
    images.set(key, p);
  }
  return p;
}

const start = (o: OpenedImage, files?: string[]): ImagePrefetch => startPrefetch(o, files ? { files } : {});

function readyOf(o: OpenedImage, chunks: readonly ChunkInfo[]): boolean[] {
  return chunks.map((c) => o.storage.cachedBlobs()[c.blobIndex]?.isReady(c.chunkIndex) === true);
}
const allReady = (o: OpenedImage, path: string): boolean => readyOf(o, o.chunksOf(path)).every(Boolean);
const noneReady = (o: OpenedImage, path: string): boolean => !readyOf(o, o.chunksOf(path)).some(Boolean);

/** Bytes of the compressed ranges of `paths`' chunks (unique chunks). */
function chunkBytes(o: OpenedImage, paths: string[]): number {
  const seen = new Map<number, number>();
  for (const p of paths) for (const c of o.chunksOf(p)) seen.set(c.chunkIndex, c.compressedSize);
  return [...seen.values()].reduce((a, b) => a + b, 0);
}

test("the bootstrap's prefetch table is prefetched at start, table order first, merged, nothing else", async () => {
  const img = await image('table', { files: kFiles, prefetchTable: ['/c', '/a'] });
  const o = await openImage(img, localConfig(img, fresh(), { prefetch: { enable: true, prefetch_all: false, batch_size: 131072, threads: 1 } }));
  try {
    const p = start(o);
    await p.whenIdle();
    assert.ok(allReady(o, '/c') && allReady(o, '/a'), 'table files are in the cache');
    for (const f of ['/b', '/d', '/dir/e']) assert.ok(noneReady(o, f), `${f} is not prefetched`);
    assert.ok(o.requests.length > 1);
    assert.ok(o.requests.every((r) => r.priority === 'prefetch'));
    assert.ok(o.requests.every((r) => r.length <= 131072), 'requests stay within merging_size');
    // The first request carries the first listed file's first chunk.
    const c0 = o.chunksOf('/c')[0] as ChunkInfo;
    assert.equal(o.requests[0]?.offset, c0.compressedOffset);
    const bytes = chunkBytes(o, ['/c', '/a']);
    assert.equal(o.requests.reduce((n, r) => n + r.length, 0), bytes, 'exactly the chunks of the listed files');
    const s = p.stats();
    assert.equal(s.prefetch_data_amount, bytes);
    assert.equal(s.prefetch_requests_count, o.requests.length);
    assert.equal(s.prefetch_unmerged_chunks, o.chunksOf('/c').length + o.chunksOf('/a').length);
    assert.equal(s.prefetch_total_size, bytes);
    assert.equal(s.prefetch_pending_requests, 0);
    assert.ok(s.prefetch_workers > 0 && s.prefetch_workers <= 8);
    assert.ok(s.prefetch_begin_time_secs > 1.7e9 && s.prefetch_begin_time_millis < 1000);
    assert.ok(s.prefetch_end_time_secs * 1000 + s.prefetch_end_time_millis >= s.prefetch_begin_time_secs * 1000 + s.prefetch_begin_time_millis);
    assert.ok(s.prefetch_cumulative_time_millis >= 0);
    // Reading the prefetched files costs no backend request.
    const before = o.requests.length;
    const buf = await o.storage.read(o.chunksOf('/c'), 0, 500_000);
    assert.ok(buf.equals(img.files.get('/c') as Buffer));
    assert.equal(o.requests.length, before);
    await p.stop();
    assert.equal(p.stats().prefetch_workers, 0);
  } finally {
    await o.close();
  }
});

test('--prefetch-files overrides the table: directories expand, missing paths are skipped, "/" is the whole image', async () => {
  const img = await image('table', { files: kFiles, prefetchTable: ['/c', '/a'] });
  const o = await openImage(img, localConfig(img, fresh(), { prefetch: { enable: true, prefetch_all: false } }));
  try {
    assert.throws(() => start(o, ['/dir', 'relative']), { code: 'ERR_PREFETCH_LIST', message: /"relative" is not an absolute path/ });
    const p = start(o, ['/dir', '/missing', '/d']);
    await p.whenIdle();
    for (const f of ['/dir/e', '/dir/sub/f', '/d']) assert.ok(allReady(o, f), `${f} prefetched`);
    for (const f of ['/a', '/c']) assert.ok(noneReady(o, f), `${f} (table) not prefetched`);
    const more = p.prefetchFiles(['/b', '/nope']);
    assert.deepEqual({ files: more.files, wholeImage: more.wholeImage, missing: more.missing }, { files: 1, wholeImage: false, missing: ['/nope'] });
    assert.throws(() => p.prefetchFiles(['b']), { code: 'ERR_PREFETCH_LIST' });
    await p.whenIdle();
    assert.ok(allReady(o, '/b'));
    const whole = p.prefetchFiles(['/']);
    assert.equal(whole.wholeImage, true);
    await p.whenIdle();
    for (const f of Object.keys(kFiles)) assert.ok(allReady(o, f), `${f} prefetched with "/"`);
    // Only prefetch ran here: its metric counts every byte the backend sent, and "/" after the
    // files fetched each byte once (what was cached was left out, not fetched again).
    const s = p.stats();
    const sent = o.requests.reduce((n, r) => n + r.length, 0);
    assert.equal(s.prefetch_data_amount, sent);
    assert.equal(s.prefetch_requests_count, o.requests.length);
    assert.equal(sent, chunkBytes(o, Object.keys(kFiles)), 'each chunk fetched once');
    await p.stop();
    assert.equal(p.prefetchFiles(['/a']).ignored, 'prefetch stopped');
  } finally {
    await o.close();
  }
});

for (const fsVersion of [5, 6] as const) {
  test(`prefetch_all fetches the whole v${fsVersion} image after the table, each chunk once`, async () => {
    const img = await image(`all-v${fsVersion}`, { files: kFiles, fsVersion, prefetchTable: ['/d'] });
    const o = await openImage(img, localConfig(img, fresh(), { prefetch: { enable: true, prefetch_all: true, threads: 2 } }));
    try {
      const p = start(o);
      await p.whenIdle();
      for (const f of Object.keys(kFiles)) assert.ok(allReady(o, f), `${f} prefetched`);
      const d0 = o.chunksOf('/d')[0] as ChunkInfo;
      assert.ok(o.requests.slice(0, 2).some((r) => r.offset === d0.compressedOffset), 'the table goes first');
      // No chunk is fetched twice: requests never overlap.
      const sorted = [...o.requests].sort((a, b) => a.offset - b.offset);
      for (let i = 1; i < sorted.length; i++) {
        const prev = sorted[i - 1] as { offset: number; length: number };
        assert.ok((sorted[i]?.offset ?? 0) >= prev.offset + prev.length, 'overlapping prefetch requests');
      }
      assert.equal(p.stats().prefetch_data_amount, chunkBytes(o, Object.keys(kFiles)));
      await p.stop();
    } finally {
      await o.close();
    }
  });
}

test('prefetch honours the bandwidth limit (within 10%)', async () => {
  const img = await image('big', { files: { '/big': 4 * 1024 * 1024 } });
  const limit = 2 * 1024 * 1024;
  const o = await openImage(img, localConfig(img, fresh(), { prefetch: { enable: true, prefetch_all: true, threads: 4, batch_size: 131072, bandwidth_limit: limit } }));
  try {
    const p = start(o);
    await p.whenIdle();
    const reqs = o.requests;
    assert.ok(reqs.length >= 30, `${reqs.length} requests`);
    // Every request waits for its slot: bytes sent before it, at the limit, set its earliest start.
    let sent = 0;
    const t0 = (reqs[0] as { at: number }).at;
    for (const r of reqs) {
      assert.ok(r.at - t0 >= (sent * 1000) / limit - 15, `a request started ${((sent * 1000) / limit - (r.at - t0)).toFixed(0)} ms before its slot`);
      sent += r.length;
    }
    const last = reqs[reqs.length - 1] as { at: number; length: number };
    const rate = ((sent - last.length) * 1000) / (last.at - t0);
    assert.ok(Math.abs(rate / limit - 1) <= 0.1, `prefetch ran at ${(rate / 1048576).toFixed(2)} MiB/s for a ${(limit / 1048576).toFixed(2)} MiB/s limit`);
    const s = p.stats();
    const ms = s.prefetch_end_time_secs * 1000 + s.prefetch_end_time_millis - (s.prefetch_begin_time_secs * 1000 + s.prefetch_begin_time_millis);
    assert.ok((s.prefetch_data_amount * 1000) / ms <= limit * 1.1, 'the metrics show the same rate');
    await p.stop();
  } finally {
    await o.close();
  }
});

test('on-demand reads go first: never queued behind prefetch, which drops to one request while they run', async () => {
  const img = await image('big', { files: { '/big': 4 * 1024 * 1024 } });
  const o = await openImage(img, localConfig(img, fresh(), { prefetch: { enable: true, prefetch_all: true, threads: 4, batch_size: 131072 } }));
  const chunks = o.chunksOf('/big');
  // Separate gates for the two kinds of request; the concurrency of prefetch requests issued
  // after the prefetch gate opens (while the miss is still held).
  let openPrefetch!: () => void;
  let prefetchGate: Promise<void> | undefined = new Promise<void>((r) => (openPrefetch = r));
  let demandOpen!: () => void;
  const demandGate = new Promise<void>((r) => (demandOpen = r));
  let held = 0;
  let released = false;
  let late = 0;
  let lateInflight = 0;
  let maxLate = 0;
  let misses = 0;
  const raw = o.service.backend.raw;
  const spied = raw.tryRead.bind(raw);
  raw.tryRead = async (id, off, len, signal, opts) => {
    if (opts?.priority === 'prefetch') {
      const isLate = released;
      if (isLate) {
        late++;
        maxLate = Math.max(maxLate, ++lateInflight);
      } else {
        held++;
      }
      try {
        await prefetchGate;
        return await spied(id, off, len, signal, opts);
      } finally {
        if (isLate) lateInflight--;
      }
    }
    misses++;
    await demandGate;
    return spied(id, off, len, signal, opts);
  };
  // On-demand ranges of a local backend are read by the native fill from the blob file: the
  // request is "sent" when the cache asks where the range is.
  const ranged = raw.fileRange?.bind(raw);
  assert.ok(ranged);
  raw.fileRange = async (id, off, len) => {
    misses++;
    await demandGate;
    return ranged(id, off, len);
  };
  try {
    const p = start(o);
    const until = async (cond: () => boolean, what: string): Promise<void> => {
      for (let i = 0; i < 500 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
      assert.ok(cond(), `${what} (held ${held}, late ${late}, misses ${misses})`);
    };
    await until(() => held === 4, 'four prefetch requests');
    await new Promise((r) => setTimeout(r, 30));
    assert.equal(held, 4, 'threads = 4 prefetch requests in flight, no more');
    // A miss on the last chunk: its request goes out at once, beside the held prefetch requests.
    const last = chunks[chunks.length - 1] as ChunkInfo;
    const miss = o.storage.ensureReady([last]);
    miss.catch(() => undefined);
    await until(() => misses === 1, 'the miss was sent');
    assert.equal(o.service.demand.active, 1);
    // Prefetch resumes while the miss is still held: one request at a time.
    released = true;
    prefetchGate = undefined;
    openPrefetch();
    await until(() => late >= 5, 'prefetch resumed');
    assert.equal(maxLate, 1, 'one prefetch request at a time while an on-demand read runs');
    demandOpen();
    await miss;
    await p.whenIdle();
    assert.ok(allReady(o, '/big'));
    await p.stop();
  } finally {
    openPrefetch();
    demandOpen();
    await o.close();
  }
});

test('stop drops queued prefetch, aborts its requests, and leaves an on-demand read that joined one alone', async () => {
  const img = await image('big', { files: { '/big': 4 * 1024 * 1024 } });
  const o = await openImage(img, localConfig(img, fresh(), { prefetch: { enable: true, prefetch_all: true, threads: 2, batch_size: 131072 } }));
  const chunks = o.chunksOf('/big');
  try {
    o.hold();
    const p = start(o);
    for (let i = 0; i < 500 && o.requests.length < 2; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(o.requests.length, 2);
    // A read of a chunk inside the first prefetch request joins it (no new request).
    const first = o.requests[0] as { offset: number; length: number };
    const inside = chunks.find((c) => c.compressedOffset >= first.offset && c.compressedOffset < first.offset + first.length) as ChunkInfo;
    const joined = o.storage.ensureReady([inside]);
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(o.requests.length, 2, 'the read joined the in-flight prefetch request');
    const stopping = p.stop();
    o.release();
    await stopping;
    await joined;
    assert.equal(o.storage.cachedBlobs()[0]?.isReady(inside.chunkIndex), true);
    const s = p.stats();
    assert.equal(s.prefetch_pending_requests, 0);
    assert.equal(s.prefetch_workers, 0);
    assert.equal(s.prefetch_requests_count, 2);
    assert.equal(s.prefetch_data_amount, first.length, 'the other request was aborted');
    assert.equal(s.prefetch_failed_requests, 0, 'an aborted request is no failure');
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(o.requests.length, 2, 'nothing is sent after stop');
    assert.ok(chunks.some((c) => o.storage.cachedBlobs()[0]?.isReady(c.chunkIndex) !== true), 'the rest stays on demand');
  } finally {
    o.release();
    await o.close();
  }
});

test('a failed prefetch request is counted and leaves its chunks to on-demand reads', async () => {
  const img = await image('table', { files: kFiles, prefetchTable: ['/c', '/a'] });
  const o = await openImage(img, localConfig(img, fresh(), { prefetch: { enable: true, prefetch_all: false } }));
  const raw = o.service.backend.raw;
  const spied = raw.tryRead.bind(raw);
  let failed = 0;
  raw.tryRead = (id, off, len, signal, opts) => {
    if (opts?.priority === 'prefetch' && failed++ === 0) return Promise.reject(Object.assign(new Error('injected: connection reset'), { code: 'ECONNRESET' }));
    return spied(id, off, len, signal, opts);
  };
  try {
    const p = start(o);
    await p.whenIdle();
    const s = p.stats();
    assert.equal(s.prefetch_failed_requests, 1);
    const buf = await o.storage.read(o.chunksOf('/c'), 0, 500_000);
    assert.ok(buf.equals(img.files.get('/c') as Buffer));
    await p.stop();
  } finally {
    await o.close();
  }
});

test('prefetch with dummycache is off with a warning; a disabled prefetch ignores prefetch files', async () => {
  const img = await image('table', { files: kFiles, prefetchTable: ['/c', '/a'] });
  const cfg = localConfig(img, fresh(), { prefetch: { enable: true } });
  cfg['cache'] = { type: 'dummycache' };
  const o = await openImage(img, cfg);
  const { log, warnings } = warningLogger();
  try {
    const p = startPrefetch(o, { log, demand: false });
    await p.whenIdle();
    assert.equal(o.requests.length, 0);
    assert.match(warnings.join('\n'), /prefetch needs a blob cache/);
    assert.equal(p.prefetchFiles(['/a']).ignored, 'prefetch needs a blob cache');
    await p.stop();
  } finally {
    await o.close();
  }
  const off = await openImage(img, localConfig(img, fresh()));
  try {
    const p = startPrefetch(off, { files: ['/a'], log });
    await p.whenIdle();
    assert.equal(off.requests.length, 0);
    assert.match(warnings.join('\n'), /prefetch files given but prefetch is disabled/);
    await p.stop();
  } finally {
    await off.close();
  }
});

test('upstream images: prefetch_all fills every chunk of the v6 fixture and the v5 repeatable image, digests validated', { skip: fixturesSkip() }, async () => {
  const cases = [
    { boot: fixture('tests/texture/bootstrap/rafs-v6-2.2.boot'), blobDir: fixture('tests/texture/blobs'), file: '/lib.rs' },
    { boot: fixture('tests/texture/repeatable/sha256-nocompress-repeatable'), blobDir: fixture('tests/texture/repeatable/blobs'), file: undefined },
  ];
  for (const c of cases) {
    const img: TestImage = { boot: c.boot, blobDir: c.blobDir, src: '', files: new Map() };
    const cfg = localConfig(img, fresh(), { prefetch: { enable: true, prefetch_all: true } });
    (cfg['cache'] as Record<string, unknown>)['validate'] = true;
    const o = await openImage(img, cfg);
    try {
      const p = start(o);
      await p.whenIdle();
      const blobs = o.storage.cachedBlobs();
      assert.equal(blobs.length, 1, c.boot);
      const blob = blobs[0] as NonNullable<(typeof blobs)[0]>;
      const ready = Array.from({ length: blob.info.chunkCount }, (_, i) => blob.isReady(i));
      assert.ok(ready.every(Boolean), `${c.boot}: every chunk prefetched (${ready.filter(Boolean).length}/${ready.length})`);
      assert.ok(o.requests.every((r) => r.priority === 'prefetch'));
      assert.equal(p.stats().prefetch_failed_requests, 0);
      if (c.file) {
        const before = o.requests.length;
        const chunks = o.chunksOf(c.file);
        const size = chunks.reduce((n, ch) => n + ch.uncompressedSize, 0);
        assert.equal((await o.storage.read(chunks, 0, size)).length, size);
        assert.equal(o.requests.length, before, 'read from the prefetched cache');
      }
      await p.stop();
    } finally {
      await o.close();
    }
  }
});
