/**
 * The benchmark suite's arithmetic and verdicts (bench/lib): medians and spreads, paired ratios,
 * PASS/MISS against each kind of target, the "~" mark for runs whose repetitions straddle the
 * target, the saved run file and the comparison of two runs, the command line.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';

import { guestSteps } from '../../bench/guest-suite.js';
import { parseOptions } from '../../bench/lib/options.js';
import type { Row, RunFile } from '../../bench/lib/report.js';
import { evaluate, readRunFile, renderCompare, renderTable, writeRunFile } from '../../bench/lib/report.js';
import { median, pairedRatios, summarize } from '../../bench/lib/stats.js';
import type { DriverResult, WarmSamples } from '../../bench/warm.js';
import { kWarmWorkloads, warmRows } from '../../bench/warm.js';

test('median, spread and paired ratios', () => {
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([4, 1, 3, 2]), 2.5);
  assert.ok(Number.isNaN(median([])));
  const s = summarize([90, 100, 110, Number.NaN]);
  assert.deepEqual(s, { n: 3, median: 100, min: 90, max: 110, spread: 0.1 });
  assert.deepEqual(pairedRatios([2, 6], [1, 3]), [2, 2]);
  assert.deepEqual(pairedRatios([2, 6], [1]), [], 'unpaired samples give no per-rep ratios');
});

const row = (ours: number[], ref: number[] | undefined, target: Row['target']): Row => {
  const r: Row = { id: 'x', group: 'g', label: 'x', unit: 'ops/s', ours: { name: 'ours', values: ours } };
  if (ref) r.ref = { name: 'virtiofsd', values: ref };
  if (target) r.target = target;
  return r;
};

test('verdicts for higher-is-better, lower-is-better and absolute targets', () => {
  const hi = evaluate(row([120, 130, 125], [100, 100, 100], { kind: 'ratio-min', value: 1.2 }));
  assert.equal(hi.verdict, 'PASS');
  assert.equal(hi.ratio, 1.25);
  assert.equal(hi.unsure, false);
  assert.equal(evaluate(row([110, 111, 112], [100, 100, 100], { kind: 'ratio-min', value: 1.2 })).verdict, 'MISS');

  const lo = evaluate(row([7, 8, 9], [10, 10, 10], { kind: 'ratio-max', value: 0.8 }));
  assert.equal(lo.verdict, 'PASS');
  assert.equal(lo.unsure, true, 'per-rep ratios 0.7..0.9 straddle 0.8');
  assert.equal(evaluate(row([9, 9, 9], [10, 10, 10], { kind: 'ratio-max', value: 0.8 })).verdict, 'MISS');

  assert.equal(evaluate(row([150, 180, 190], undefined, { kind: 'abs-max', value: 200 })).verdict, 'PASS');
  const abs = evaluate(row([150, 250, 260], undefined, { kind: 'abs-max', value: 200 }));
  assert.equal(abs.verdict, 'MISS');
  assert.equal(abs.unsure, true);

  assert.equal(evaluate(row([1], undefined, { kind: 'ratio-min', value: 1 })).verdict, 'n/a', 'no reference, no ratio');
  assert.equal(evaluate(row([1], [2], undefined)).verdict, 'INFO');
});

test('the table shows every row with its target and verdict', () => {
  const rows = [
    row([120, 130, 125], [100, 100, 100], { kind: 'ratio-min', value: 1.2 }),
    { ...row([300], undefined, { kind: 'abs-max', value: 200 }), id: 'y', label: 'start-to-ready', unit: 'ms' },
  ];
  const t = renderTable(rows, 'title');
  assert.match(t, /^title/);
  assert.match(t, /\[g\]/);
  assert.match(t, /1\.25x\s+1\.20\.\.1\.30\s+>= 1\.20x\s+PASS/);
  assert.match(t, /start-to-ready\s+ms\s+300\s+< 200 ms\s+MISS/);
  assert.match(t, /1 PASS, 1 MISS/);
});

function runFile(rows: Row[], started: string): RunFile {
  return {
    schema: 1, kind: 'driver', started, finished: started, commit: 'abc', host: {}, options: {}, bounds: {}, rows, raw: [], notes: [],
  };
}

test('a run file round-trips and two runs compare row by row', () => {
  const dir = mkdtempSync(join(tmpdir(), 'bench-report-'));
  try {
    const old = runFile([{ ...row([100, 100, 100], [100, 100, 100], { kind: 'ratio-min', value: 1.2 }), id: 'a.ops' }], '2026-01-01T00:00:00.000Z');
    const neu = runFile([
      { ...row([150, 150, 150], [100, 100, 100], { kind: 'ratio-min', value: 1.2 }), id: 'a.ops' },
      { ...row([1], undefined, undefined), id: 'b.new' },
    ], '2026-01-02T00:00:00.000Z');
    const path = writeRunFile(dir, neu);
    assert.match(path, /2026-01-02T00-00-00-000Z\.json$/);
    assert.deepEqual(readRunFile(path), neu);
    const c = renderCompare(old, readRunFile(path));
    assert.match(c, /a\.ops\s+ops\/s\s+100\s+150\s+\+50\.0%\s+1\.00x\s+1\.50x\s+MISS -> PASS/);
    assert.doesNotMatch(c, /b\.new/, 'rows only in one run are not compared');
    writeFileSync(join(dir, 'bad.json'), '{"rows": 3}');
    assert.throws(() => readRunFile(join(dir, 'bad.json')), /not a benchmark result file/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('warm rows carry the issue targets', () => {
  const r = (o: Partial<DriverResult>): DriverResult => ({
    bench: 'read', qd: 1, seconds: 1, ops: 10, ops_per_s: 10, mb_per_s: 100, server_cpu_s: 1, server_cpu_us_per_op: 2,
    driver_cpu_s: 0.1, driver_cpu_us_per_op: 1, errors: 0, ...o,
  });
  const samples: WarmSamples[] = kWarmWorkloads.map((w) => ({ workload: w, ours: [r({}), r({})], peer: [r({ mb_per_s: 200 }), r({ mb_per_s: 200 })] }));
  const rows = warmRows(samples, [1000, 1000]);
  const byId = new Map(rows.map((x) => [x.id, x]));
  assert.deepEqual(byId.get('seq-1m-qd16.mbps')?.target, { kind: 'ratio-min', value: 0.95 });
  assert.equal(evaluate(byId.get('seq-1m-qd16.mbps') as Row).ratio, 0.5);
  assert.deepEqual(byId.get('seq-1m-qd1.bound')?.ref?.values, [1000, 1000]);
  assert.deepEqual(byId.get('seq-1m-qd1.bound')?.target, { kind: 'ratio-min', value: 0.8 });
  assert.deepEqual(byId.get('rand-4k-qd16.iops')?.target, { kind: 'ratio-min', value: 1.2 });
  assert.equal(byId.get('rand-4k-qd1.iops')?.target, undefined);
  assert.deepEqual(byId.get('seq-128k-qd1.cpu')?.target, { kind: 'ratio-max', value: 0.8 });
  for (const id of ['lookup-getattr-qd1.ops', 'lookup-getattr-qd16.ops', 'readdirplus.ops', 'smallfile-qd1.ops', 'smallfile-qd16.ops']) {
    assert.deepEqual(byId.get(id)?.target, { kind: 'ratio-min', value: 1.0 }, id);
  }
});

test('command line: defaults, --quick, bad values', () => {
  const d = parseOptions([]);
  assert.equal(d.reps, 7);
  assert.equal(d.seconds, 2);
  assert.equal(d.guest, false);
  const q = parseOptions(['--quick', '--only', 'seq', '--compare', 'old.json']);
  assert.equal(q.reps, 3);
  assert.equal(q.seconds, 1);
  assert.equal(q.only?.test('seq-1m-qd1'), true);
  assert.equal(q.compare, 'old.json');
  assert.throws(() => parseOptions(['--reps', '0']), /--reps must be a number/);
  assert.throws(() => parseOptions(['--seconds']), /needs a value/);
  assert.throws(() => parseOptions(['--fast']), /unknown option --fast/);
});

test('guest --only selects guest steps by row id or bare id, and refuses a pattern matching none', () => {
  assert.deepEqual(guestSteps(undefined).map((s) => s.id), ['seq', 'small', 'ls', 'chroot']);
  assert.deepEqual(guestSteps(/^guest\.seq$/).map((s) => s.id), ['seq']);
  assert.deepEqual(guestSteps(/seq|chroot/).map((s) => s.id), ['seq', 'chroot']);
  assert.deepEqual(guestSteps(/^ls$/).map((s) => s.id), ['ls']);
  assert.throws(() => guestSteps(/^nothing$/), /matches no guest row \(ids: guest\.seq guest\.small guest\.ls guest\.chroot\)/);
});
