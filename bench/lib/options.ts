/**
 * Command line of the benchmark suite, and where a run happened (commit, machine).
 */
import { execFileSync } from 'node:child_process';
import { cpus, loadavg, release, totalmem } from 'node:os';
import { join } from 'node:path';

import { projectRoot } from '../../test/helpers/paths.js';
import { kWarmWorkloads } from '../warm.js';

export interface SuiteOptions {
  quick: boolean;
  guest: boolean;
  reps: number;
  seconds: number;
  only: RegExp | undefined;
  keep: boolean;
  compare: string | undefined;
  report: string | undefined;
  rounds: number;
  out: string;
}

export const kUsage = `usage: npm run bench -- [options]
  --quick            ~2 minute subset (3 repetitions of 1 s, smaller files, no 100k-file image)
  --reps N           repetitions per workload and side (default 7, quick 3)
  --seconds S        seconds per driver run (default 2, quick 1)
  --only REGEX       only workloads/phases whose id matches (ids: ${kWarmWorkloads.map((w) => w.id).join(' ')} startup cold cold-validated cold-registry 100k container-start digests writable;
                     with --guest: guest.seq guest.small guest.ls guest.chroot)
  --keep             keep the temp folder with trees, images and logs
  --compare OLD.json print the change of every row against an earlier run
  --report RUN.json  print a saved run (with --compare: compare two saved runs) without measuring
  --guest            guest mode: boot QEMU guests (ours, virtiofsd) and time workloads inside
  --rounds N         guest mode: boots per side, alternating (default 1)
  --out DIR          where result files go (default bench/results)
The digest rows (BLAKE3 vs b3sum --num-threads 1, SHA-256 vs openssl speed; at most 5 repetitions)
also run alone, without the fixture and servers: node dist/bench/digests.js [--reps N] [--seconds S]`;

export function parseOptions(argv: readonly string[]): SuiteOptions {
  const quick = argv.includes('--quick');
  const value = (name: string): string | undefined => {
    const i = argv.indexOf(name);
    if (i < 0) return undefined;
    const v = argv[i + 1];
    if (v === undefined || v.startsWith('--')) throw new Error(`${name} needs a value`);
    return v;
  };
  const num = (name: string, def: number, min: number, max: number): number => {
    const v = value(name);
    if (v === undefined) return def;
    const n = Number(v);
    if (!Number.isFinite(n) || n < min || n > max) throw new Error(`${name} must be a number in [${min}, ${max}], got ${v}`);
    return n;
  };
  const known = new Set(['--quick', '--guest', '--keep', '--reps', '--seconds', '--only', '--compare', '--report', '--rounds', '--out', '--help']);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (!known.has(a)) throw new Error(`unknown option ${a}\n${kUsage}`);
    if (['--reps', '--seconds', '--only', '--compare', '--report', '--rounds', '--out'].includes(a)) i++;
  }
  const only = value('--only');
  return {
    quick,
    guest: argv.includes('--guest'),
    reps: Math.round(num('--reps', quick ? 3 : 7, 1, 100)),
    seconds: num('--seconds', quick ? 1 : 2, 0.2, 60),
    only: only === undefined ? undefined : new RegExp(only),
    keep: argv.includes('--keep'),
    compare: value('--compare'),
    report: value('--report'),
    rounds: Math.round(num('--rounds', 1, 1, 20)),
    out: value('--out') ?? join(projectRoot, 'bench', 'results'),
  };
}

export function hostInfo(): { commit: string; host: Record<string, string | number> } {
  let commit = 'unknown';
  try {
    commit = execFileSync('git', ['-C', projectRoot, 'rev-parse', '--short=12', 'HEAD'], { encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['-C', projectRoot, 'status', '--porcelain', '--untracked-files=no'], { encoding: 'utf8' }).trim();
    if (dirty !== '') commit += '+dirty';
  } catch {
    // not a git checkout
  }
  const c = cpus();
  return {
    commit,
    host: {
      cpu: c[0]?.model ?? 'unknown', cores: c.length, memGiB: Math.round(totalmem() / 2 ** 30), kernel: release(), node: process.version,
      loadavgAtEnd: loadavg().map((x) => x.toFixed(2)).join(' '),
    },
  };
}


/**
 * A note when other work shares the machine (the 1-minute load average before the suite
 * started, out of the core count): every number of such a run is noisier.
 */
export function loadNote(load1: number): string | undefined {
  const cores = cpus().length;
  if (load1 < 0.5) return undefined;
  return `the machine was busy when the run started (load average ${load1.toFixed(2)} on ${cores} cores): other processes shared the CPUs, expect wider spreads`;
}
