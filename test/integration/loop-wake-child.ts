/**
 * Child process (and Worker) side of loop-wake.test.ts: each mode exercises the path native
 * results take back to the event loop (native/binding/loop_wake.h) and prints one JSON line when
 * the process exits on its own (the test fails if it never does).
 */
import { openSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';

import { loadAddon } from '../../src/native/binding.js';
import { CompressAlgo, DigestAlgo, fill, kFillCached, openChunkMap } from '../../src/native/index.js';
import { buildBlob } from '../helpers/storage-fixtures.js';

interface Seen {
  items: number[];
  /** Items whose microtask had run before the next item was delivered. */
  microtasksBeforeNext: number;
  errors: string[];
}

function probe(count: number, onItem?: (seq: number) => void): Seen {
  const seen: Seen = { items: [], microtasksBeforeNext: 0, errors: [] };
  let lastMicro = -1;
  loadAddon().loopWakeProbe(count, (seq) => {
    if (seen.items.length > 0 && lastMicro === seen.items[seen.items.length - 1]) seen.microtasksBeforeNext++;
    seen.items.push(seq);
    queueMicrotask(() => {
      lastMicro = seq;
    });
    onItem?.(seq);
  });
  return seen;
}

/** What the test checks of a stream, small enough for one line. */
function summary(s: Seen): { count: number; firstOutOfOrder: number; microtasksBeforeNext: number } {
  return { count: s.items.length, firstOutOfOrder: s.items.findIndex((v, i) => v !== i), microtasksBeforeNext: s.microtasksBeforeNext };
}

function fillPlan(sb: ReturnType<typeof buildBlob>, from: number, to: number): Parameters<typeof fill>[0]['chunks'] {
  return sb.chunks.slice(from, to).map((c) => ({
    srcOffset: c.compressedOffset, storedSize: c.compressedSize, fileOffset: c.uncompressedOffset,
    size: c.uncompressedSize, compressed: c.compressed, index: c.chunkIndex, digest: c.digest, compressedOffset: c.compressedOffset,
  }));
}

const kFillChunks = 32;

async function main(mode: string, dir: string): Promise<void> {
  if (mode === 'order') {
    // Two producers at once: each stream arrives whole and in order.
    const a = probe(100_000);
    const b = probe(30_000);
    process.on('exit', () => console.log(JSON.stringify({ a: summary(a), b: summary(b) })));
  } else if (mode === 'throw') {
    const errors: string[] = [];
    process.on('uncaughtException', (e) => errors.push(e.message));
    const s = probe(50, (seq) => {
      if (seq === 5 || seq === 17) throw new Error(`boom ${seq}`);
    });
    process.on('exit', () => console.log(JSON.stringify({ ...summary(s), errors })));
  } else if (mode === 'fill') {
    const sb = buildBlob({ sizes: Array.from({ length: 8 }, () => 1 << 20), compressor: 'zstd' });
    const map = openChunkMap(join(dir, 'fill.chunk_map'), sb.info.chunkCount);
    const fd = openSync(join(dir, 'fill.data'), 'w+');
    // Nothing else keeps this process alive while the fill runs.
    const out = await fill({ algo: CompressAlgo.Zstd, digester: DigestAlgo.Blake3, validate: true, src: sb.blob, chunks: fillPlan(sb, 0, 8), fd, map, allowSpill: false });
    const ready = map.readyCount();
    map.close();
    closeSync(fd);
    process.on('exit', () => console.log(JSON.stringify({ cached: out.status.filter((s) => s === kFillCached).length, ready })));
  } else if (mode === 'worker-probe' || mode === 'worker-fill') {
    const sb = mode === 'worker-fill' ? buildBlob({ sizes: Array.from({ length: kFillChunks }, () => 1 << 20), compressor: 'zstd' }) : undefined;
    const w = new Worker(new URL(import.meta.url), { workerData: { mode, dir, blob: sb?.blob, chunks: sb ? fillPlan(sb, 0, kFillChunks) : undefined } });
    let started = false;
    w.on('message', (m) => {
      if (m === 'started') started = true;
    });
    const code = await new Promise<number>((resolve) => w.once('exit', resolve));
    // The worker is gone: what did it leave behind, and does this thread still work?
    let ready = -1;
    if (sb) {
      const map = openChunkMap(join(dir, 'worker.chunk_map'), sb.info.chunkCount);
      ready = map.readyCount();
      map.close();
    }
    const after = probe(1000);
    process.on('exit', () => console.log(JSON.stringify({ code, started, ready, after: after.items.length })));
  } else {
    throw new Error(`unknown mode ${mode}`);
  }
}

function workerMain(d: { mode: string; dir: string; blob?: Uint8Array; chunks?: Parameters<typeof fill>[0]['chunks'] }): void {
  if (d.mode === 'worker-probe') {
    // The worker exits from inside a delivery, with most of the stream still to come.
    probe(1_000_000, (seq) => {
      if (seq === 1000) process.exit(0);
    });
    parentPort?.postMessage('started');
    return;
  }
  // Structured clone turned the digests into plain Uint8Arrays.
  const chunks = (d.chunks ?? []).map((c) => ({ ...c, digest: c.digest ? Buffer.from(c.digest) : undefined }));
  const src = Buffer.from(d.blob ?? new Uint8Array(0));
  const map = openChunkMap(join(d.dir, 'worker.chunk_map'), chunks.length);
  const fd = openSync(join(d.dir, 'worker.data'), 'w+');
  // Four fills in flight over this worker's own Buffer, then the worker exits at once: its
  // environment must wait for them (they read that Buffer) before it goes.
  const quarter = chunks.length / 4;
  for (let i = 0; i < 4; i++) {
    void fill({ algo: CompressAlgo.Zstd, digester: DigestAlgo.Blake3, validate: true, src, chunks: chunks.slice(i * quarter, (i + 1) * quarter), fd, map, allowSpill: false });
  }
  parentPort?.postMessage('started');
  process.exit(0);
}

if (isMainThread) {
  await main(process.argv[2] ?? '', process.argv[3] ?? '');
} else {
  workerMain(workerData as Parameters<typeof workerMain>[0]);
}
