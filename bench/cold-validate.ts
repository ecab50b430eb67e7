/**
 * The event loop during a validated cold read: 256 MiB (zstd, 1 MiB chunks) read through an
 * empty blob cache with digest validation, 4 reads of 16 MiB in flight, in this process, while
 * monitorEventLoopDelay samples the loop every millisecond. Decoding and hashing belong on the
 * native fill threads; the loop only fetches and books outcomes, so its worst delay stays small.
 * On a shared machine the worst delay is mostly the scheduler's: the row's reference is an idle
 * loop in another process sampled over the same window (lib/loop-probe.ts), and each line says how
 * long the loop ran and how long it waited for a CPU.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { constants as perfConstants, monitorEventLoopDelay, PerformanceObserver } from 'node:perf_hooks';
import type { NodeGCPerformanceDetail, PerformanceEntry } from 'node:perf_hooks';

import { StorageService } from '../src/storage/index.js';
import { buildBlob } from '../test/helpers/storage-fixtures.js';
import { LoopProbe, threadSchedMs } from './lib/loop-probe.js';
import { progress } from './lib/proc.js';
import type { Row } from './lib/report.js';
import type { RawRecord } from './warm.js';

const kChunks = 256;
/** Reads in flight, each of kGroup adjacent chunks (one merged 16 MiB backend read and fill). */
const kDepth = 4;
const kGroup = 16;

/**
 * NYDUS_BENCH_LOOP_TICKS=DIR: also writes, per rep, the CLOCK_MONOTONIC time (ns) of every turn of
 * a 1 ms interval timer during the window, to line each late turn up with a scheduler trace
 * (`perf record -k CLOCK_MONOTONIC`). Off by default: the timer is one more callback per ms.
 */
const kTickDir = process.env['NYDUS_BENCH_LOOP_TICKS'];

class LoopTicks {
  private readonly _t: bigint[] = [process.hrtime.bigint()];
  private readonly _timer = setInterval(() => this._t.push(process.hrtime.bigint()), 1);

  save(path: string): void {
    clearInterval(this._timer);
    writeFileSync(path, JSON.stringify({ pid: process.pid, ticks_ns: this._t.map(String) }));
  }
}

/** The worst delay of an idle event loop over `ms` on this machine right now (scheduling noise). */
async function idleLoopMaxMs(ms: number): Promise<number> {
  const h = monitorEventLoopDelay({ resolution: 1 });
  h.enable();
  await new Promise((r) => setTimeout(r, ms));
  h.disable();
  return h.max / 1e6;
}

/**
 * A validated cold read of the first kDepth x kGroup chunks into a cache of its own, before the
 * measured reps. The daemon starts from a V8 code cache trained on a cold read (scripts/
 * build-start.mjs); this process loads the modules from dist and compiles the read path on first
 * use: traced, 4-6 ms of bytecode generation and baseline compilation on the loop inside the
 * first rep's window, a one-time cost of the bench's process that this row does not measure.
 */
async function warmUp(blobsDir: string, sb: ReturnType<typeof buildBlob>, service: (cacheDir: string) => Promise<StorageService>): Promise<void> {
  const cacheDir = join(blobsDir, 'cache-warm-up');
  mkdirSync(cacheDir);
  const s = await service(cacheDir);
  try {
    const image = await s.openImage([sb.info]);
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < kDepth * kGroup) {
        const group = sb.chunks.slice(next, next + kGroup);
        next += kGroup;
        await image.ensureReady(group);
      }
    };
    await Promise.all(Array.from({ length: kDepth }, worker));
  } finally {
    await s.close();
  }
}

export async function measureValidatedColdLoop(workDir: string, reps: number, raw: RawRecord[]): Promise<Row[]> {
  progress(`validated cold read: building a ${kChunks} MiB zstd blob`);
  const sb = buildBlob({ sizes: Array.from({ length: kChunks }, () => 1 << 20), compressor: 'zstd' });
  const blobsDir = mkdtempSync(join(workDir, 'validated-blobs-'));
  writeFileSync(join(blobsDir, sb.info.blobId), sb.blob);
  const maxMs: number[] = [];
  const idleMs: number[] = [];
  const probeMs: number[] = [];
  const p99Ms: number[] = [];
  const probeP99Ms: number[] = [];
  const mbps: number[] = [];
  const create = (cacheDir: string): Promise<StorageService> =>
    StorageService.create({
      backend: { type: 'localfs', config: { dir: blobsDir, blob_file: '', alt_dirs: [] } },
      backendKey: 'backend.localfs',
      cache: { kind: 'blobcache', workDir: cacheDir, workDirKey: 'work_dir' },
      validate: true,
      batchSize: 0,
    });
  const probe = await LoopProbe.start();
  try {
    await warmUp(blobsDir, sb, create);
    for (let rep = 0; rep < reps; rep++) {
      const cacheDir = join(blobsDir, `cache-${rep}`);
      mkdirSync(cacheDir);
      const service = await create(cacheDir);
      try {
        const image = await service.openImage([sb.info]);
        idleMs.push(await idleLoopMaxMs(1000));
        const h = monitorEventLoopDelay({ resolution: 1 });
        let next = 0;
        const worker = async (): Promise<void> => {
          while (next < sb.chunks.length) {
            const group = sb.chunks.slice(next, next + kGroup);
            next += kGroup;
            await image.ensureReady(group);
          }
        };
        await probe.begin();
        // Collections during the read: a full one is the loop's own pause, not the scheduler's.
        const gcs: { major: boolean; ms: number }[] = [];
        const gcObserver = new PerformanceObserver((list) => {
          for (const e of list.getEntries()) gcs.push({ major: (e as PerformanceEntry & { detail?: NodeGCPerformanceDetail }).detail?.kind === perfConstants.NODE_PERFORMANCE_GC_MAJOR, ms: e.duration });
        });
        gcObserver.observe({ entryTypes: ['gc'] });
        const s0 = threadSchedMs();
        const ticks = kTickDir === undefined ? undefined : new LoopTicks();
        h.enable();
        const t0 = performance.now();
        // CLOCK_MONOTONIC, for lining the window up with a trace (`perf record -k mono`).
        const mono0 = process.hrtime.bigint();
        await Promise.all(Array.from({ length: kDepth }, worker));
        const mono1 = process.hrtime.bigint();
        const ms = performance.now() - t0;
        h.disable();
        if (ticks && kTickDir !== undefined) ticks.save(join(kTickDir, `cold-validated-${process.pid}-${rep}.json`));
        const s1 = threadSchedMs();
        const peer = await probe.end();
        gcObserver.disconnect();
        const gcMajor = gcs.filter((x) => x.major).length;
        const gcMaxMs = Math.max(0, ...gcs.map((x) => x.ms));
        const stats = service.stats().cache;
        if (stats.chunksFilled !== kChunks || stats.digestErrors !== 0) throw new Error(`validated cold read filled ${stats.chunksFilled}/${kChunks} chunks, ${stats.digestErrors} digest errors`);
        const max = h.max / 1e6;
        const p99 = h.percentile(99) / 1e6;
        maxMs.push(max);
        probeMs.push(peer.maxMs);
        p99Ms.push(p99);
        probeP99Ms.push(peer.p99Ms);
        mbps.push((kChunks * (1 << 20)) / 1e3 / ms);
        const cpu = s0 && s1 ? { loop_cpu_ms: s1.runMs - s0.runMs, loop_runq_wait_ms: s1.waitMs - s0.waitMs } : {};
        const pool = service.readBuffers.stats();
        raw.push({
          phase: 'cold-validated', id: 'eventloop', side: 'ours', rep,
          result: { max_ms: max, p99_ms: p99, probe_max_ms: peer.maxMs, probe_p99_ms: peer.p99Ms, idle_max_ms: idleMs[rep], mb_per_s: mbps[rep], window_ms: ms, window_mono_ns: [Number(mono0), Number(mono1)], ...cpu, gc_major: gcMajor, gc_max_ms: gcMaxMs, read_buffers_allocated: pool.allocated, read_buffers_reused: pool.reused },
        });
        const sched = s0 && s1 ? `; the loop ran ${(s1.runMs - s0.runMs).toFixed(0)} ms and waited for a CPU ${(s1.waitMs - s0.waitMs).toFixed(0)} ms of ${ms.toFixed(0)} ms` : '';
        progress(
          `validated cold read ${rep + 1}/${reps}: ${Math.round(mbps[rep] ?? 0)} MB/s, event-loop delay max ${max.toFixed(2)} ms p99 ${p99.toFixed(2)} ms ` +
            `(idle loop in another process, same window: max ${peer.maxMs.toFixed(2)} ms p99 ${peer.p99Ms.toFixed(2)} ms; this loop idle before: max ${(idleMs[rep] ?? 0).toFixed(2)} ms${sched}; ${gcMajor} full GC(s), longest GC pause ${gcMaxMs.toFixed(2)} ms)`,
        );
      } finally {
        await service.close();
      }
    }
  } finally {
    await probe.close();
    rmSync(blobsDir, { recursive: true, force: true });
  }
  const g = 'validated cold read (digest_validate, 256 MiB zstd, 4 x 16 MiB in flight, in-process localfs)';
  return [
    { id: 'cold-validated.loop-max-ms', group: g, label: 'max event-loop delay', unit: 'ms', ours: { name: 'ours', values: maxMs },
      ref: { name: 'idle loop', values: probeMs }, target: { kind: 'abs-max', value: 5 },
      note: 'idle loop = another Node process doing nothing, sampled over the same window (scheduling noise: other processes and our fill threads); raw has p99, CPU and run-queue wait' },
    { id: 'cold-validated.loop-p99-ms', group: g, label: 'event-loop delay p99', unit: 'ms', ours: { name: 'ours', values: p99Ms },
      ref: { name: 'idle loop', values: probeP99Ms } },
    { id: 'cold-validated.mbps', group: g, label: 'validated cold read', unit: 'MB/s', ours: { name: 'ours', values: mbps } },
  ];
}
