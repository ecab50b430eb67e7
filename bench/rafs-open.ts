/**
 * RAFS reader benchmark (not a test): builds synthetic 100k-file v6 and v5 bootstraps, then
 * reports open time, lookups/s, full-walk time, readdir and chunk-resolution rates and RSS.
 *
 *   npx tsc -p tsconfig.json && node dist/bench/rafs-open.js [files]
 *
 * Each image is measured in a fresh child process (`--measure`), so RSS deltas show what the
 * open image costs rather than what generating it left behind.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { openBootstrap, openBootstrapBuffer, type RafsImage } from '../src/rafs/index.js';
import { buildV5 } from '../test/helpers/rafs-synth-v5.js';
import { buildV6, type SynthNode } from '../test/helpers/rafs-synth-v6.js';

const kFiles = Number(process.argv[2] === '--measure' ? process.argv[6] : (process.argv[2] ?? 100_000));
const kPerDir = 1000;
const gc = (globalThis as { gc?: () => void }).gc;

function filePaths(): string[] {
  const paths: string[] = [];
  for (let i = 0; i < kFiles; i++) paths.push(`dir-${Math.floor(i / kPerDir)}/file-${(i % kPerDir).toString().padStart(6, '0')}.txt`);
  return paths;
}

function tree(): { root: SynthNode; paths: string[] } {
  const children: Record<string, SynthNode> = {};
  const paths: string[] = [];
  for (let d = 0; d * kPerDir < kFiles; d++) {
    const kids: Record<string, SynthNode> = {};
    for (let f = 0; f < kPerDir && d * kPerDir + f < kFiles; f++) {
      const name = `file-${f.toString().padStart(6, '0')}.txt`;
      kids[name] = { type: 'file', size: 1024 + (f % 4096), compact: true };
      paths.push(`dir-${d}/${name}`);
    }
    children[`dir-${d}`] = { type: 'dir', children: kids };
  }
  return { root: { type: 'dir', children }, paths };
}

function ms(t0: bigint): number {
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
}

function rssMiB(): number {
  gc?.();
  return process.memoryUsage().rss / 2 ** 20;
}

function bench(label: string, path: string, size: number, paths: string[]): void {
  const rss0 = rssMiB();
  const img: RafsImage = openBootstrap(path);
  const rss1 = rssMiB();
  const opens: number[] = [];
  for (let i = 0; i < 15; i++) {
    const t0 = process.hrtime.bigint();
    openBootstrap(path).close();
    opens.push(ms(t0));
  }
  const bytes = readFileSync(path);
  const parses: number[] = [];
  for (let i = 0; i < 15; i++) {
    const t0 = process.hrtime.bigint();
    openBootstrapBuffer(bytes, path).close();
    parses.push(ms(t0));
  }

  // Lookups: resolve "dir/file" (two lookups each) for a shuffled set of paths.
  const names = paths.map((p) => p.split('/').map((s) => Buffer.from(s)) as [Buffer, Buffer]);
  for (let i = names.length - 1; i > 0; i--) {
    const j = (i * 7919) % (i + 1);
    [names[i], names[j]] = [names[j] as [Buffer, Buffer], names[i] as [Buffer, Buffer]];
  }
  const root = img.super.rootRef;
  let t0 = process.hrtime.bigint();
  let found = 0;
  for (const [d, f] of names) {
    const dir = img.lookup(root, d);
    if (dir !== undefined && img.lookup(dir, f) !== undefined) found++;
  }
  const lookupMs = ms(t0);
  if (found !== names.length) throw new Error(`lookup found ${found}/${names.length}`);

  t0 = process.hrtime.bigint();
  let walked = 0;
  const files: number[] = [];
  img.walk((_p, ref, a) => {
    walked++;
    if ((a.mode & 0o170000) === 0o100000) files.push(ref);
  });
  const walkMs = ms(t0);

  t0 = process.hrtime.bigint();
  let entries = 0;
  img.readDir(root, 0, (e) => {
    img.readDir(e.ref, 0, () => (entries++, true));
    return true;
  });
  const readdirMs = ms(t0);

  t0 = process.hrtime.bigint();
  let chunks = 0;
  for (const f of files) chunks += img.chunks(f).length;
  const chunksMs = ms(t0);
  const rss2 = rssMiB();

  const mib = size / 2 ** 20;
  console.log(`${label}: bootstrap ${mib.toFixed(1)} MiB, ${walked} inodes`);
  console.log(`  open (median of 15): ${median(opens).toFixed(2)} ms from the file, ${median(parses).toFixed(2)} ms from a Buffer already in memory`);
  console.log(`  lookups: ${((2 * names.length) / (lookupMs / 1000) / 1e3).toFixed(0)}k/s  (${names.length} paths × 2 in ${lookupMs.toFixed(0)} ms)`);
  console.log(`  full walk with getAttr: ${walkMs.toFixed(0)} ms  (${((walked / walkMs) * 1000 / 1e3).toFixed(0)}k inodes/s)`);
  console.log(`  readdir of every directory: ${readdirMs.toFixed(0)} ms for ${entries} entries`);
  console.log(`  chunks() of every file: ${chunksMs.toFixed(0)} ms for ${chunks} chunks${label.includes("v6") ? " (the first call builds the v6 chunk-table index)" : ""}`);
  console.log(`  RSS: +${(rss1 - rss0).toFixed(1)} MiB after open (bootstrap ${mib.toFixed(1)} MiB), ${rss2.toFixed(0)} MiB total after all passes`);
}

function measure(file: string, bytes: number, label: string): void {
  const r = spawnSync(process.execPath, ['--expose-gc', fileURLToPath(import.meta.url), '--measure', file, String(bytes), label, String(kFiles)], { stdio: 'inherit' });
  if (r.status !== 0) throw new Error(`measuring ${label} failed`);
}

function main(): void {
  if (process.argv[2] === '--measure') {
    bench(process.argv[5] as string, process.argv[3] as string, Number(process.argv[4]), filePaths());
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'rafs-bench-'));
  try {
    const { root } = tree();
    let t0 = process.hrtime.bigint();
    const v6 = buildV6(root, { chunkSize: 0x100000 }).bootstrap;
    console.log(`(generated the v6 image in ${ms(t0).toFixed(0)} ms)`);
    const p6 = join(dir, 'v6.boot');
    writeFileSync(p6, v6);
    t0 = process.hrtime.bigint();
    const v5 = buildV5(root, { chunkSize: 0x100000 }).bootstrap;
    console.log(`(generated the v5 image in ${ms(t0).toFixed(0)} ms)`);
    const p5 = join(dir, 'v5.boot');
    writeFileSync(p5, v5);
    measure(p6, v6.length, `RAFS v6, ${kFiles} files`);
    measure(p5, v5.length, `RAFS v5, ${kFiles} files`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main();
