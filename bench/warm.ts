/**
 * The warm workloads: the frontend driver against our nydusd (one daemon for the whole phase,
 * blob cache filled beforehand by reading every file once through it) and against virtiofsd
 * (a fresh one per run, serving the same tree from the host page cache), alternating ours and
 * the peer, repetitions outermost so slow drifts of a shared machine hit every workload alike.
 *
 * What "warm" means on each side: virtiofsd preads the source files, which are in the host page
 * cache; ours preads `<blob>.blob.data`, the blob cache file, which is also in the page cache
 * (it was just written). Neither side touches a disk or decompresses.
 */
import type { Row, Target } from './lib/report.js';
import { driverJson, progress } from './lib/proc.js';
import type { Server } from './lib/servers.js';
import { startPeer } from './lib/servers.js';
import { kBigFile, kManyDir, kSmallFileSize } from './lib/fixture.js';

export interface DriverResult {
  bench: string;
  qd: number;
  seconds: number;
  ops: number;
  ops_per_s: number;
  mb_per_s?: number;
  requests?: number;
  requests_per_s?: number;
  server_cpu_s?: number;
  server_cpu_us_per_op?: number;
  server_cpu_us_per_request?: number;
  driver_cpu_s: number;
  driver_cpu_us_per_op: number;
  /** Busy CPU of the whole machine minus server and driver: other work sharing the cores. */
  other_cpu_s?: number;
  errors: number;
}

export interface Workload {
  id: string;
  label: string;
  kind: 'read' | 'cycle' | 'readdir';
  args: string[];
}

const read = (id: string, label: string, size: string, qd: number, random = false): Workload => ({
  id, label, kind: 'read',
  args: ['bench', 'read', '--path', kBigFile, '--size', size, '--qd', String(qd), ...(random ? ['--random'] : [])],
});
const cycle = (id: string, label: string, what: string, qd: number): Workload => ({
  id, label, kind: 'cycle',
  args: ['bench', what, '--path', kManyDir, '--qd', String(qd), ...(what === 'smallfile' ? ['--size', String(kSmallFileSize)] : [])],
});

export const kWarmWorkloads: readonly Workload[] = [
  read('seq-1m-qd1', 'seq READ 1M qd1', '1M', 1),
  read('seq-1m-qd16', 'seq READ 1M qd16', '1M', 16),
  read('seq-128k-qd1', 'seq READ 128K qd1', '128K', 1),
  read('seq-128k-qd16', 'seq READ 128K qd16', '128K', 16),
  read('rand-4k-qd1', 'random READ 4K qd1', '4K', 1, true),
  read('rand-4k-qd16', 'random READ 4K qd16', '4K', 16, true),
  cycle('lookup-getattr-qd1', 'LOOKUP+GETATTR qd1', 'lookup-getattr', 1),
  cycle('lookup-getattr-qd16', 'LOOKUP+GETATTR qd16', 'lookup-getattr', 16),
  { id: 'readdirplus', label: 'READDIRPLUS 10k dir', kind: 'readdir', args: ['bench', 'readdir', '--path', kManyDir] },
  cycle('smallfile-qd1', 'small-file cycle qd1', 'smallfile', 1),
  cycle('smallfile-qd16', 'small-file cycle qd16', 'smallfile', 16),
];

export interface WarmSamples {
  workload: Workload;
  ours: DriverResult[];
  peer: DriverResult[];
}

export interface RawRecord {
  phase: string;
  id: string;
  side: string;
  rep: number;
  result: unknown;
}

export async function runWarm(opts: {
  workDir: string;
  src: string;
  ours: Server;
  workloads: readonly Workload[];
  reps: number;
  seconds: number;
  raw: RawRecord[];
  /** Runs at the start of every repetition (the suite measures the pread bounds there). */
  beforeRep?: (rep: number) => Promise<void>;
}): Promise<WarmSamples[]> {
  const samples = opts.workloads.map((w) => ({ workload: w, ours: [] as DriverResult[], peer: [] as DriverResult[] }));
  for (let rep = 0; rep < opts.reps; rep++) {
    await opts.beforeRep?.(rep);
    // Alternate who goes first, so neither side always runs right after the other's load.
    const order: ('ours' | 'peer')[] = rep % 2 === 0 ? ['ours', 'peer'] : ['peer', 'ours'];
    for (const s of samples) {
      for (const side of order) {
        const args = [...s.workload.args, '--seconds', String(opts.seconds)];
        let r: DriverResult;
        if (side === 'ours') {
          r = await driverJson<DriverResult>(opts.ours.socket, args);
        } else {
          const peer = await startPeer(opts.workDir, opts.src);
          try {
            r = await driverJson<DriverResult>(peer.socket, args);
          } finally {
            await peer.stop();
          }
        }
        if (r.errors !== 0) throw new Error(`${s.workload.id} on ${side}: ${r.errors} failed requests`);
        (side === 'ours' ? s.ours : s.peer).push(r);
        opts.raw.push({ phase: 'warm', id: s.workload.id, side: side === 'ours' ? 'ours' : 'virtiofsd', rep, result: r });
        progress(`warm ${rep + 1}/${opts.reps} ${s.workload.id.padEnd(20)} ${(side === 'ours' ? 'ours' : 'virtiofsd').padEnd(9)} ` +
          `${Math.round(r.ops_per_s)} ops/s${r.mb_per_s !== undefined && r.bench === 'read' ? `, ${Math.round(r.mb_per_s)} MB/s` : ''}`);
      }
    }
  }
  return samples;
}

/** Server CPU per FUSE request (a cycle or a listing is several requests). */
export function cpuPerRequest(r: DriverResult): number {
  return r.server_cpu_us_per_request ?? r.server_cpu_us_per_op ?? Number.NaN;
}

export function requestsPerSecond(r: DriverResult): number {
  return r.requests_per_s ?? r.ops_per_s;
}

/** Share of one core the driver itself used during the run. */
export function driverCore(r: DriverResult): number {
  return r.seconds > 0 ? r.driver_cpu_s / r.seconds : Number.NaN;
}

/** Cores other processes used during the run (0 on an idle machine). */
export function otherCores(r: DriverResult): number {
  return r.seconds > 0 && r.other_cpu_s !== undefined ? Math.max(0, r.other_cpu_s / r.seconds) : Number.NaN;
}

const pct = (x: number): string => (Number.isFinite(x) ? `${Math.round(x * 100)}%` : '-');

function cpuNote(s: WarmSamples): string {
  const med = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;
  const f = (x: number): string => (Number.isFinite(x) ? x.toFixed(2) : '-');
  return `driver ${pct(med(s.ours.map(driverCore)))}/${pct(med(s.peer.map(driverCore)))} of a core; ` +
    `others ${f(med(s.ours.map(otherCores)))}/${f(med(s.peer.map(otherCores)))} cores`;
}

/**
 * The table rows of the warm phase. `boundMBps`: the one-copy bound of the file our daemon reads
 * (pread of the blob cache file), measured at the start of every repetition of this run.
 */
export function warmRows(samples: readonly WarmSamples[], boundMBps: number[]): Row[] {
  const rows: Row[] = [];
  const by = new Map(samples.map((s) => [s.workload.id, s]));
  const peer = (values: number[]): { name: string; values: number[] } => ({ name: 'virtiofsd', values });
  const add = (id: string, group: string, metric: string, unit: string, pick: (r: DriverResult) => number, target?: Target, note?: string): void => {
    const s = by.get(id);
    if (!s) return;
    const row: Row = { id: `${id}.${metric}`, group, label: s.workload.label, unit, ours: { name: 'ours', values: s.ours.map(pick) }, ref: peer(s.peer.map(pick)) };
    if (target) row.target = target;
    row.note = note ?? cpuNote(s);
    rows.push(row);
  };
  const kSeq = 'large sequential READ, warm cache';
  for (const id of ['seq-1m-qd1', 'seq-1m-qd16']) {
    add(id, kSeq, 'mbps', 'MB/s', (r) => r.mb_per_s ?? Number.NaN, { kind: 'ratio-min', value: 0.95 });
    const s = by.get(id);
    if (s && boundMBps.length > 0) {
      rows.push({
        id: `${id}.bound`, group: kSeq, label: `${s.workload.label} vs bound`, unit: 'MB/s',
        ours: { name: 'ours', values: s.ours.map((r) => r.mb_per_s ?? Number.NaN) },
        ref: { name: 'pread bound', values: boundMBps },
        target: { kind: 'ratio-min', value: 0.8 },
        note: 'bound: one-copy pread of our blob cache file, 1 MiB, one thread',
      });
    }
  }
  for (const id of ['seq-128k-qd1', 'seq-128k-qd16']) add(id, kSeq, 'mbps', 'MB/s', (r) => r.mb_per_s ?? Number.NaN);

  const kCost = 'per-request cost, warm cache';
  for (const id of ['rand-4k-qd1', 'rand-4k-qd16', 'seq-128k-qd1', 'seq-128k-qd16']) {
    const qd16 = id.endsWith('qd16');
    add(id, kCost, 'iops', 'req/s', requestsPerSecond, qd16 ? { kind: 'ratio-min', value: 1.2 } : undefined);
    add(id, kCost, 'cpu', 'us/req', cpuPerRequest, { kind: 'ratio-max', value: 0.8 }, 'server CPU time per request (process + children)');
  }

  const kMeta = 'metadata and small files, warm';
  add('lookup-getattr-qd1', kMeta, 'ops', 'entries/s', (r) => r.ops_per_s, { kind: 'ratio-min', value: 1.0 });
  add('lookup-getattr-qd16', kMeta, 'ops', 'entries/s', (r) => r.ops_per_s, { kind: 'ratio-min', value: 1.0 });
  add('readdirplus', kMeta, 'ops', 'entries/s', (r) => r.ops_per_s, { kind: 'ratio-min', value: 1.0 });
  add('smallfile-qd1', kMeta, 'ops', 'files/s', (r) => r.ops_per_s, { kind: 'ratio-min', value: 1.0 });
  add('smallfile-qd16', kMeta, 'ops', 'files/s', (r) => r.ops_per_s, { kind: 'ratio-min', value: 1.0 });
  return rows;
}

/** A detail table: rates, server and driver CPU per request and per core, medians per side. */
export function renderCpuDetail(samples: readonly WarmSamples[]): string {
  const med = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;
  const f = (x: number, d = 1): string => (Number.isFinite(x) ? x.toFixed(d) : '-');
  const head = ['workload', 'side', 'req/s', 'srv us/req', 'srv cores', 'drv us/req', 'drv core', 'others'];
  const lines: string[][] = [];
  for (const s of samples) {
    for (const [side, rs] of [['ours', s.ours], ['virtiofsd', s.peer]] as const) {
      if (rs.length === 0) continue;
      const reqs = (r: DriverResult): number => r.requests ?? r.ops;
      lines.push([
        s.workload.id, side, f(med(rs.map(requestsPerSecond)), 0), f(med(rs.map(cpuPerRequest)), 2),
        f(med(rs.map((r) => (r.server_cpu_s ?? Number.NaN) / r.seconds)), 2),
        f(med(rs.map((r) => (r.driver_cpu_s * 1e6) / Math.max(1, reqs(r)))), 2), pct(med(rs.map(driverCore))),
        f(med(rs.map(otherCores)), 2),
      ]);
    }
  }
  const widths = head.map((h, i) => Math.max(h.length, ...lines.map((l) => (l[i] ?? '').length)));
  const fmt = (c: string[]): string => c.map((x, i) => (i < 2 ? x.padEnd(widths[i] ?? 0) : x.padStart(widths[i] ?? 0))).join('  ');
  return ['CPU per request (medians; "cores" = CPU seconds per wall second; the driver is one thread, ' +
    'so "drv core" near 100% would mean the driver limits the rate; "others" = cores used by other processes ' +
    'during the run (machine busy time minus server and driver), 0 on an idle machine)', fmt(head), ...lines.map(fmt)].join('\n');
}
