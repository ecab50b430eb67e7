/**
 * `npm run bench`: our nydusd against QEMU's virtiofsd through the compiled frontend driver,
 * with the machine's bounds measured in the same run, one table of ratios with each target and
 * PASS/MISS, and a JSON file per run in bench/results/ (see README "Benchmarks").
 *
 *   npm run bench [-- --quick] [--reps N] [--seconds S] [--only REGEX] [--keep]
 *                 [--compare OLD.json] [--report RUN.json] [--guest [--rounds N]]
 *
 * scripts/bench.mjs sets everything up (packages, addon, TypeScript) and runs this.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';

import { measureColdRegistry, registrySkip } from './cold-remote.js';
import { measureValidatedColdLoop } from './cold-validate.js';
import { containerStartSkip, measureContainerStart } from './container-start.js';
import { digestSkip, measureDigests } from './digests.js';
import { runGuestSuite } from './guest-suite.js';
import { measureWritableGuest, writableGuestSkip } from './writable-guest.js';
import { makeFixture, readTree } from './lib/fixture.js';
import type { SuiteOptions } from './lib/options.js';
import { hostInfo, kUsage, loadNote, parseOptions } from './lib/options.js';
import { driverJson, progress } from './lib/proc.js';
import type { Row, RunFile } from './lib/report.js';
import { readRunFile, renderCompare, renderTable, writeRunFile } from './lib/report.js';
import { peerSkip, startOurs } from './lib/servers.js';
import { blobDataFile, measureBounds, measureCold, measureHundredK, measurePreadBounds, measureStartup, renderBounds } from './phases.js';
import type { RawRecord } from './warm.js';
import { kWarmWorkloads, renderCpuDetail, runWarm, warmRows } from './warm.js';

async function runDriverSuite(o: SuiteOptions): Promise<RunFile> {
  const want = (id: string): boolean => o.only === undefined || o.only.test(id);
  // Phases that need the generated trees, virtiofsd and the machine bounds (all but container-start).
  const fixturePhases = [...kWarmWorkloads.map((w) => w.id), 'startup', 'cold', 'cold-registry', '100k'];
  const why = fixturePhases.some(want) ? peerSkip() : false;
  if (why) throw new Error(`cannot run the comparison: ${why}`);
  const started = new Date().toISOString();
  const busy = loadNote(loadavg()[0] ?? 0);
  if (busy) progress(`note: ${busy}`);
  const work = mkdtempSync(join(tmpdir(), 'nydus-bench-'));
  const cleanup = (): void => {
    if (!o.keep) rmSync(work, { recursive: true, force: true });
  };
  process.once('SIGINT', () => {
    cleanup();
    process.exit(130);
  });
  const raw: RawRecord[] = [];
  const rows: Row[] = [];
  const notes: string[] = [];
  try {
    // First, while nothing of ours runs: digests need no fixture and clean up after themselves.
    if (want('digests')) {
      const skip = digestSkip();
      if (skip) notes.push(`digest rows skipped: ${skip}`);
      else rows.push(...(await measureDigests(work, Math.min(o.reps, 5), o.seconds, raw)));
    }
    if (want('cold-validated')) rows.push(...(await measureValidatedColdLoop(work, o.quick ? 2 : 3, raw)));
    if (want('container-start')) {
      const skip = containerStartSkip();
      if (skip) notes.push(`container start over a shaped link skipped: ${skip}`);
      else rows.push(...(await measureContainerStart(work, o.quick ? 3 : 5, raw)));
    }
    if (want('writable')) {
      const skip = writableGuestSkip();
      if (skip) notes.push(`writable guest rows skipped: ${skip}`);
      else rows.push(...(await measureWritableGuest(work, o.quick ? 1 : 2, o.quick ? 2 : 3, raw)));
    }
    if (!fixturePhases.some(want)) {
      return {
        schema: 1, kind: 'driver', started, finished: new Date().toISOString(), ...hostInfo(),
        options: { quick: o.quick, reps: o.reps, seconds: o.seconds, only: o.only?.source ?? null },
        bounds: {}, rows, raw, notes: busy ? [...notes, busy] : notes,
      };
    }
    const fx = await makeFixture(work, { bigMiB: o.quick ? 128 : 256, coldMiB: o.quick ? 32 : 64 });
    progress('starting our nydusd on the warm image and filling its blob cache (driver `tree /` reads every file)');
    const ours = await startOurs(work, fx.warm);
    let bounds;
    let detail = '';
    try {
      await driverJson(ours.socket, ['tree', '/']);
      readTree(fx.src); // virtiofsd's side: the source files in the host page cache
      const cacheFile = blobDataFile(fx.warm.cacheDir);
      if (!cacheFile) throw new Error('our blob cache has no data file after reading the whole tree');
      const b = await measureBounds(fx, o.quick ? 1 : 2);
      bounds = b;
      const preadSeconds = Math.min(1, o.seconds / 2);
      const workloads = kWarmWorkloads.filter((w) => want(w.id));
      if (workloads.length > 0) {
        const samples = await runWarm({
          workDir: work, src: fx.src, ours, workloads, reps: o.reps, seconds: o.seconds, raw,
          beforeRep: () => measurePreadBounds(b, join(fx.src, 'big.bin'), cacheFile, preadSeconds),
        });
        rows.push(...warmRows(samples, b.preadCacheMBps));
        detail = renderCpuDetail(samples);
      } else {
        await measurePreadBounds(b, join(fx.src, 'big.bin'), cacheFile, preadSeconds);
      }
    } finally {
      await ours.stop();
    }
    if (want('startup')) rows.push(...(await measureStartup(work, fx.warm, fx.src, o.quick ? 3 : 5, raw)));
    if (want('cold')) rows.push(...(await measureCold(work, fx.cold, bounds, o.quick ? 2 : 3, raw)));
    if (want('cold-registry')) {
      const skip = registrySkip();
      if (skip) notes.push(`cold reads through the registry skipped: ${skip}`);
      else rows.push(...(await measureColdRegistry(work, fx.cold, o.quick ? 2 : 3, raw)));
    }
    if (want('100k')) {
      if (o.quick && o.only === undefined) notes.push('100k-file image skipped in --quick (run with --only 100k)');
      else rows.push(...(await measureHundredK(work, o.quick ? 2 : 3, raw)));
    }
    if (busy) notes.push(busy);
    notes.push(
      `tree: ${fx.bigBytes >> 20} MiB big.bin, 10000 x 4 KiB files in /many; corpus for cold reads and codecs: ` +
        `${fx.corpusBytes >> 20} MiB from ${fx.corpusFiles} files under /usr`,
      'warm = ours reads its blob cache file, virtiofsd the source files; both files are in the host page cache',
      `${o.reps} repetitions x ${o.seconds} s per workload and side, ours and virtiofsd alternating; a fresh virtiofsd per run, ` +
        'one nydusd for the warm phase; metadata/small-file runs do one untimed warm-up pass first',
    );
    const file: RunFile = {
      schema: 1, kind: 'driver', started, finished: new Date().toISOString(), ...hostInfo(),
      options: { quick: o.quick, reps: o.reps, seconds: o.seconds, only: o.only?.source ?? null },
      bounds: { ...bounds, raw: undefined, rawRuns: bounds.raw }, rows, raw, notes,
    };
    process.stdout.write(`\n${renderBounds(bounds)}\n\n`);
    if (detail) process.stdout.write(`${detail}\n\n`);
    return file;
  } finally {
    if (o.keep) progress(`kept ${work}`);
    cleanup();
  }
}

function printRun(run: RunFile): void {
  const title = `nydusd vs virtiofsd${run.kind === 'guest' ? ' (inside QEMU guests)' : ' (frontend driver)'}, ${run.started}, commit ${run.commit}, ` +
    `${String(run.host['cores'])} cores ${String(run.host['cpu'])}, kernel ${String(run.host['kernel'])}`;
  process.stdout.write(`${renderTable(run.rows, title)}\n`);
  for (const n of run.notes) process.stdout.write(`note: ${n}\n`);
}

async function main(): Promise<void> {
  let o: SuiteOptions;
  try {
    o = parseOptions(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`);
    process.exit(2);
  }
  if (process.argv.includes('--help')) {
    process.stdout.write(`${kUsage}\n`);
    return;
  }
  if (o.report !== undefined) {
    const run = readRunFile(o.report);
    printRun(run);
    if (o.compare !== undefined) process.stdout.write(`\n${renderCompare(readRunFile(o.compare), run)}\n`);
    return;
  }
  const run = o.guest ? await runGuestSuite(o) : await runDriverSuite(o);
  printRun(run);
  const path = writeRunFile(o.out, run);
  process.stdout.write(`results: ${path}\n`);
  if (o.compare !== undefined) process.stdout.write(`\n${renderCompare(readRunFile(o.compare), run)}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
