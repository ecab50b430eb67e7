/**
 * Digest speed on one core, against the reference tools measured in the same run: our BLAKE3
 * (the reference C implementation with its SIMD dispatch) against `b3sum --num-threads 1`, our
 * SHA-256 (OpenSSL through codec/digest.h) against `openssl speed -evp sha256`; each for 1 MiB
 * chunks and for whole 64 MiB buffers. Ours is the driver's `bounds digest` (the function the
 * builder and digest validation call).
 *
 * Every rate is bytes per CPU second, not per wall second: the machines are shared, and a
 * process that waits for a core has not hashed slower. Ours counts its whole CPU time (it makes
 * no system calls while hashing); b3sum and openssl count user time (openssl speed's own
 * default), which leaves out b3sum's page faults on its mmap of the input files: the comparison
 * is of hashing, not of reading files.
 *
 * In the suite: `npm run bench -- --only digests`. Alone, without the rest of the suite's setup:
 * `node dist/bench/digests.js [--reps N] [--seconds S]`.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { DigestAlgo, digest } from '../src/native/index.js';
import { driverJson, exec, progress } from './lib/proc.js';
import type { Row } from './lib/report.js';
import { renderTable } from './lib/report.js';
import type { RawRecord } from './warm.js';

const kMiB = 1 << 20;
const kSpan = 64 * kMiB;
const kGroup = 'digests (one core, GB/s per CPU second, GB = 10^9 B)';

interface Shape {
  id: string;
  label: string;
  size: number;
}
const kShapes: readonly Shape[] = [
  { id: '1m', label: '1 MiB chunks', size: kMiB },
  { id: '64m', label: 'whole 64 MiB buffer', size: kSpan },
];

/** Why the digest rows cannot run here, or undefined. */
export function digestSkip(): string | undefined {
  for (const [tool, arg] of [['b3sum', '--version'], ['openssl', 'version']] as const) {
    if (spawnSync(tool, [arg], { stdio: 'ignore' }).status !== 0) return `${tool} is not installed (apt-get install ${tool})`;
  }
  return undefined;
}

/** Our rate from the driver: bytes per CPU second of `bounds digest`. */
async function ours(algo: 'blake3' | 'sha256', size: number, seconds: number): Promise<{ gbps: number; result: Record<string, unknown> }> {
  const r = await driverJson<{ bytes: number; cpu_s: number }>(undefined, [
    'bounds', 'digest', '--algo', algo, '--size', String(size), '--span', String(kSpan), '--seconds', String(seconds),
  ]);
  return { gbps: r.bytes / r.cpu_s / 1e9, result: r };
}

/** b3sum over `files` (read once more before timing), bytes per user CPU second. */
async function b3sum(files: readonly string[], bytes: number): Promise<{ gbps: number; result: Record<string, unknown> }> {
  const script = 'TIMEFORMAT=%3U; time b3sum --num-threads 1 "$@" >/dev/null';
  const r = await exec('bash', ['-c', script, 'b3sum-bench', ...files]);
  const user = Number(r.stderr.trim().split('\n').pop());
  if (r.status !== 0 || !(user > 0)) throw new Error(`b3sum failed (exit ${String(r.status)}): ${r.stderr.trim()}`);
  return { gbps: bytes / user / 1e9, result: { tool: 'b3sum --num-threads 1', files: files.length, bytes, user_s: user, wall_ms: r.ms } };
}

/** `openssl speed -evp sha256` for one block size: bytes per user CPU second (its +F line). */
async function opensslSpeed(size: number, seconds: number): Promise<{ gbps: number; result: Record<string, unknown> }> {
  const args = ['speed', '-evp', 'sha256', '-bytes', String(size), '-seconds', String(Math.max(1, Math.round(seconds))), '-mr'];
  const r = await exec('openssl', args);
  const f = /^\+F:\d+:sha256:([\d.]+)$/m.exec(r.stdout);
  if (r.status !== 0 || !f) throw new Error(`openssl ${args.join(' ')} failed (exit ${String(r.status)}): ${r.stderr.trim()}`);
  const bps = Number(f[1]);
  return { gbps: bps / 1e9, result: { tool: `openssl ${args.join(' ')}`, bytes_per_s: bps } };
}

/**
 * The four rows (BLAKE3 and SHA-256, 1 MiB and 64 MiB), `reps` repetitions each, ours and the
 * tool alternating which goes first. Input: 64 MiB of random bytes (one file for whole-buffer
 * runs, 64 files of 1 MiB for chunk runs); the digests of our code and of the tools are compared
 * on it first, so the rows time equal work.
 */
export async function measureDigests(workDir: string, reps: number, seconds: number, raw: RawRecord[]): Promise<Row[]> {
  const dir = mkdtempSync(join(workDir, 'digests-'));
  try {
    const data = randomBytes(kSpan);
    const whole = join(dir, 'whole.bin');
    writeFileSync(whole, data);
    const parts: string[] = [];
    for (let i = 0; i < kSpan / kMiB; i++) {
      parts.push(join(dir, `part-${String(i).padStart(2, '0')}.bin`));
      writeFileSync(parts[i] as string, data.subarray(i * kMiB, (i + 1) * kMiB));
    }
    const b3 = spawnSync('b3sum', ['--num-threads', '1', '--no-names', whole], { encoding: 'utf8' }).stdout.trim();
    const sha = spawnSync('sha256sum', [whole], { encoding: 'utf8' }).stdout.split(' ')[0];
    const ourB3 = digest(DigestAlgo.Blake3, data).toString('hex');
    const ourSha = digest(DigestAlgo.Sha256, data).toString('hex');
    if (b3 !== ourB3 || sha !== ourSha) {
      throw new Error(`digests of the bench input disagree: blake3 ours ${ourB3} b3sum ${b3}; sha256 ours ${ourSha} sha256sum ${sha ?? ''}`);
    }
    // Enough input for b3sum to run about as long as the other measurements at ~5 GB/s.
    const passes = Math.max(4, Math.round((seconds * 5e9) / kSpan));
    const samples = new Map<string, { ours: number[]; ref: number[] }>();
    for (let rep = 0; rep < reps; rep++) {
      for (const algo of ['blake3', 'sha256'] as const) {
        for (const shape of kShapes) {
          const key = `${algo}-${shape.id}`;
          const s = samples.get(key) ?? { ours: [], ref: [] };
          samples.set(key, s);
          const runOurs = async (): Promise<void> => {
            const r = await ours(algo, shape.size, seconds);
            s.ours.push(r.gbps);
            raw.push({ phase: 'digests', id: key, side: 'ours', rep, result: r.result });
          };
          const runRef = async (): Promise<void> => {
            const files = Array.from({ length: passes }, () => (shape.size === kSpan ? [whole] : parts)).flat();
            const r = algo === 'blake3' ? await b3sum(files, passes * kSpan) : await opensslSpeed(shape.size, seconds);
            s.ref.push(r.gbps);
            raw.push({ phase: 'digests', id: key, side: 'ref', rep, result: r.result });
          };
          if (rep % 2 === 0) {
            await runOurs();
            await runRef();
          } else {
            await runRef();
            await runOurs();
          }
          progress(`digests ${rep + 1}/${reps} ${key.padEnd(10)} ours ${(s.ours.at(-1) ?? 0).toFixed(2)} GB/s, ` +
            `${algo === 'blake3' ? 'b3sum' : 'openssl'} ${(s.ref.at(-1) ?? 0).toFixed(2)} GB/s`);
        }
      }
    }
    const rows: Row[] = [];
    for (const algo of ['blake3', 'sha256'] as const) {
      for (const shape of kShapes) {
        const s = samples.get(`${algo}-${shape.id}`) ?? { ours: [], ref: [] };
        rows.push({
          id: `digest-${algo}-${shape.id}.gbps`, group: kGroup, label: `${algo} ${shape.label}`, unit: 'GB/s',
          ours: { name: 'ours', values: s.ours },
          ref: { name: algo === 'blake3' ? 'b3sum --num-threads 1' : 'openssl speed -evp sha256', values: s.ref },
          target: { kind: 'ratio-min', value: 0.8 },
          note: algo === 'blake3'
            ? (shape.size === kSpan ? 'b3sum: one 64 MiB file' : 'ours: 1 MiB pieces of a 64 MiB buffer; b3sum: 64 files of 1 MiB')
            : `openssl: -bytes ${shape.size} (one buffer, hashed again and again)`,
        });
      }
    }
    return rows;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const num = (name: string, def: number): number => {
    const i = argv.indexOf(name);
    const v = i >= 0 ? Number(argv[i + 1]) : def;
    if (!Number.isFinite(v) || v <= 0) throw new Error(`${name} needs a positive number`);
    return v;
  };
  const skip = digestSkip();
  if (skip) throw new Error(`cannot measure digests: ${skip}`);
  const work = mkdtempSync(join(tmpdir(), 'nydus-bench-digests-'));
  try {
    const rows = await measureDigests(work, Math.round(num('--reps', 5)), num('--seconds', 2), []);
    process.stdout.write(`${renderTable(rows, 'digests: ours vs the reference tools (same run)')}\n`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  main().catch((err: unknown) => {
    process.stderr.write(`bench digests: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}
