/**
 * Result rows, the verdict of each against its target, the printed table, the JSON file of a
 * run and the comparison of two runs.
 *
 * A row holds the raw samples of "ours" and of a reference: virtiofsd measured in the same run,
 * or a machine bound measured in the same run (then `ref.name` says which). The table shows the
 * medians, their spread, the ratio of the medians and the range of the per-repetition ratios,
 * then the target and PASS/MISS. A verdict gets a "~" when the per-repetition ratios fall on
 * both sides of the target: the median decided, but the run was too noisy to be sure.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import type { Summary } from './stats.js';
import { pairedRatios, summarize } from './stats.js';

/**
 * What a row must reach:
 *  - ratio-min / ratio-max: ours/ref ≥ value or ≤ value,
 *  - abs-max: ours' median < value (in the row's unit), no reference needed.
 */
export type Target =
  | { kind: 'ratio-min'; value: number }
  | { kind: 'ratio-max'; value: number }
  | { kind: 'abs-max'; value: number };

export interface Side {
  name: string;
  values: number[];
}

export interface Row {
  /** Stable id used by --compare, e.g. "seq-1m-qd16.mbps". */
  id: string;
  group: string;
  label: string;
  unit: string;
  ours: Side;
  ref?: Side;
  target?: Target;
  /** Free text shown after the verdict (driver CPU, what the reference is, ...). */
  note?: string;
}

export type Verdict = 'PASS' | 'MISS' | 'INFO' | 'n/a';

export interface Evaluated {
  row: Row;
  ours: Summary;
  ref?: Summary;
  ratio?: number;
  ratioMin?: number;
  ratioMax?: number;
  verdict: Verdict;
  /** The per-repetition ratios straddle the target. */
  unsure: boolean;
}

export function evaluate(row: Row): Evaluated {
  const ours = summarize(row.ours.values);
  const e: Evaluated = { row, ours, verdict: 'INFO', unsure: false };
  if (row.ref) {
    e.ref = summarize(row.ref.values);
    if (e.ref.n > 0 && ours.n > 0 && e.ref.median !== 0) e.ratio = ours.median / e.ref.median;
    const pr = pairedRatios(row.ours.values, row.ref.values);
    if (pr.length > 0) {
      e.ratioMin = Math.min(...pr);
      e.ratioMax = Math.max(...pr);
    }
  }
  const t = row.target;
  if (!t) return e;
  if (t.kind === 'abs-max') {
    if (ours.n === 0) return { ...e, verdict: 'n/a' };
    e.verdict = ours.median < t.value ? 'PASS' : 'MISS';
    e.unsure = ours.min < t.value && ours.max >= t.value;
    return e;
  }
  if (e.ratio === undefined) return { ...e, verdict: 'n/a' };
  const ok = t.kind === 'ratio-min' ? e.ratio >= t.value : e.ratio <= t.value;
  e.verdict = ok ? 'PASS' : 'MISS';
  if (e.ratioMin !== undefined && e.ratioMax !== undefined) e.unsure = e.ratioMin < t.value && e.ratioMax > t.value;
  return e;
}

export function targetText(t: Target | undefined, unit: string): string {
  if (!t) return '';
  switch (t.kind) {
    case 'ratio-min':
      return `>= ${t.value.toFixed(2)}x`;
    case 'ratio-max':
      return `<= ${t.value.toFixed(2)}x`;
    case 'abs-max':
      return `< ${fmtNum(t.value)} ${unit}`;
  }
}

/** Numbers with about three significant digits, no exponent. */
export function fmtNum(x: number | undefined): string {
  if (x === undefined || !Number.isFinite(x)) return '-';
  const a = Math.abs(x);
  if (a >= 1000) return Math.round(x).toString();
  if (a >= 100) return x.toFixed(0);
  if (a >= 10) return x.toFixed(1);
  if (a >= 1) return x.toFixed(2);
  return x.toFixed(3);
}

function fmtSide(s: Summary | undefined): string {
  if (!s) return '';
  if (s.n === 0) return '-';
  return s.n > 1 ? `${fmtNum(s.median)} ±${Math.round(s.spread * 100)}%` : fmtNum(s.median);
}

function pad(s: string, n: number, right = false): string {
  return right ? s.padStart(n) : s.padEnd(n);
}

/** The table of a run: one line per row, grouped, with a legend. */
export function renderTable(rows: readonly Row[], title: string): string {
  const ev = rows.map(evaluate);
  const head = ['workload', 'unit', 'ours', 'reference', 'ref', 'ratio', 'per-rep', 'target', 'verdict', 'note'];
  const lines: string[][] = [];
  let group = '';
  const groupLines = new Set<number>();
  for (const e of ev) {
    if (e.row.group !== group) {
      group = e.row.group;
      groupLines.add(lines.length);
      lines.push([`[${group}]`]);
    }
    const range = e.ratioMin !== undefined && e.ratioMax !== undefined && e.ours.n > 1
      ? `${e.ratioMin.toFixed(2)}..${e.ratioMax.toFixed(2)}` : '';
    lines.push([
      e.row.label, e.row.unit, fmtSide(e.ours), e.row.ref?.name ?? '', fmtSide(e.ref),
      e.ratio !== undefined ? `${e.ratio.toFixed(2)}x` : '', range, targetText(e.row.target, e.row.unit),
      e.verdict === 'INFO' ? '' : `${e.verdict}${e.unsure ? '~' : ''}`, e.row.note ?? '',
    ]);
  }
  const widths = head.map((h, i) => Math.max(h.length, ...lines.filter((_l, k) => !groupLines.has(k)).map((l) => (l[i] ?? '').length)));
  const numeric = new Set([2, 4, 5, 6]);
  const fmt = (cells: string[]): string =>
    cells.map((c, i) => (i === cells.length - 1 ? c : pad(c, widths[i] ?? 0, numeric.has(i)))).join('  ').trimEnd();
  const out = [title, fmt(head), widths.map((w) => '-'.repeat(w)).join('  ').slice(0, 160)];
  lines.forEach((l, k) => out.push(groupLines.has(k) ? (l[0] ?? '') : fmt(l)));
  const pass = ev.filter((e) => e.verdict === 'PASS').length;
  const miss = ev.filter((e) => e.verdict === 'MISS').length;
  out.push('', `${pass} PASS, ${miss} MISS (of ${pass + miss} rows with a target). ratio = ours / reference (medians); ` +
    'per-rep = range of the paired per-repetition ratios; ±x% = half the range of the repetitions; ' +
    '~ = the per-rep ratios fall on both sides of the target.');
  return out.join('\n');
}

export interface RunFile {
  schema: 1;
  kind: 'driver' | 'guest';
  started: string;
  finished: string;
  commit: string;
  host: Record<string, string | number>;
  options: Record<string, unknown>;
  bounds: Record<string, unknown>;
  rows: Row[];
  /** Everything the tools printed, per run (driver JSON and the like). */
  raw: unknown[];
  notes: string[];
}

/** Writes `<dir>/<timestamp>[-guest].json`; returns its path. */
export function writeRunFile(dir: string, run: RunFile): string {
  mkdirSync(dir, { recursive: true });
  const stamp = run.started.replace(/[:.]/g, '-');
  const path = join(dir, `${stamp}${run.kind === 'guest' ? '-guest' : ''}.json`);
  writeFileSync(path, `${JSON.stringify(run, null, 1)}\n`);
  return path;
}

export function readRunFile(path: string): RunFile {
  const data = JSON.parse(readFileSync(path, 'utf8')) as Partial<RunFile>;
  if (data.schema !== 1 || !Array.isArray(data.rows)) throw new Error(`${path} is not a benchmark result file (schema 1)`);
  return data as RunFile;
}

function delta(a: number | undefined, b: number | undefined): string {
  if (a === undefined || b === undefined || !Number.isFinite(a) || !Number.isFinite(b) || a === 0) return '-';
  const d = (b / a - 1) * 100;
  return `${d >= 0 ? '+' : ''}${d.toFixed(1)}%`;
}

/** Old vs new for every row id both runs have: ours' median, the ratio and the verdict. */
export function renderCompare(oldRun: RunFile, newRun: RunFile): string {
  const oldById = new Map(oldRun.rows.map((r) => [r.id, evaluate(r)]));
  const out = [`compare: ${oldRun.started} (${oldRun.commit}) -> ${newRun.started} (${newRun.commit})`];
  const head = ['row', 'unit', 'ours old', 'ours new', 'delta', 'ratio old', 'ratio new', 'verdict'];
  const lines: string[][] = [];
  for (const row of newRun.rows) {
    const n = evaluate(row);
    const o = oldById.get(row.id);
    if (!o) continue;
    lines.push([
      row.id, row.unit, fmtNum(o.ours.median), fmtNum(n.ours.median), delta(o.ours.median, n.ours.median),
      o.ratio !== undefined ? `${o.ratio.toFixed(2)}x` : '-', n.ratio !== undefined ? `${n.ratio.toFixed(2)}x` : '-',
      o.verdict === n.verdict ? n.verdict : `${o.verdict} -> ${n.verdict}`,
    ]);
  }
  const widths = head.map((h, i) => Math.max(h.length, ...lines.map((l) => (l[i] ?? '').length)));
  const fmt = (cells: string[]): string => cells.map((c, i) => (i === 0 || i === 7 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join('  ').trimEnd();
  out.push(fmt(head), ...lines.map(fmt));
  const missing = oldRun.rows.filter((r) => !newRun.rows.some((x) => x.id === r.id)).map((r) => r.id);
  if (missing.length > 0) out.push(`(not in the new run: ${missing.join(', ')})`);
  return out.join('\n');
}
