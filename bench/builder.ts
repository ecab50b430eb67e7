/**
 * `nydus-image create` against `mkfs.erofs --chunksize` (erofs-utils) on the same tree, in the
 * same run: wall time (median of N runs, page cache warm), bootstrap/metadata size, blob size.
 * mkfs.erofs cannot compress chunk-based files, so `--compressor none` is the like-for-like row;
 * the default (zstd) row shows what compression costs.
 *
 *   node dist/bench/builder.js [--files N] [--mib M] [--runs R] [--keep]
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { binDir } from '../test/helpers/paths.js';
import { patternBytes } from '../test/helpers/rich-tree.js';

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : def;
}

const files = arg('files', 5000);
const mib = arg('mib', 256);
const runs = arg('runs', 3);
const keep = process.argv.includes('--keep');
const kChunk = 0x100000;

/** files spread over 50 directories, sizes from 100 B to 256 KiB, plus a few large files. */
function makeTree(root: string): number {
  const sizes = [100, 1000, 4000, 20_000, 100_000, 256_000];
  let total = 0;
  for (let i = 0; i < files; i++) {
    const dir = join(root, `dir${String(i % 50).padStart(2, '0')}`);
    if (i < 50) mkdirSync(dir, { recursive: true });
    const size = sizes[(i * 7) % sizes.length]!;
    writeFileSync(join(dir, `file${i}`), patternBytes(size, i + 1));
    total += size;
  }
  let big = 0;
  while (total < mib * 1024 * 1024) {
    const size = Math.min(16 << 20, mib * 1024 * 1024 - total);
    writeFileSync(join(root, `big${big}`), patternBytes(size, 1000 + big++));
    total += size;
  }
  return total;
}

function timed(cmd: string, args: string[], prepare: () => void): number[] {
  const times: number[] = [];
  for (let r = 0; r < runs; r++) {
    prepare();
    const t0 = process.hrtime.bigint();
    const res = spawnSync(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' });
    const t1 = process.hrtime.bigint();
    if (res.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${res.stderr}`);
    times.push(Number(t1 - t0) / 1e9);
  }
  return times;
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const fmtMiB = (n: number): string => `${(n / 1048576).toFixed(1)} MiB`;
const fmtKiB = (n: number): string => `${(n / 1024).toFixed(0)} KiB`;

function main(): void {
  const work = mkdtempSync(join(tmpdir(), 'bench-builder-'));
  try {
    const src = join(work, 'src');
    const bytes = makeTree(src);
    // Warm the page cache so every tool reads from memory.
    spawnSync('tar', ['-cf', '/dev/null', '-C', src, '.']);
    console.log(`builder bench: ${files} small files + large files, ${fmtMiB(bytes)}, chunk size 1 MiB, median of ${runs} runs`);

    const rows: { name: string; secs: number; meta: number; data: number }[] = [];
    for (const compressor of ['none', 'zstd']) {
      const out = join(work, `out-${compressor}`);
      const secs = median(
        timed(process.execPath, [join(binDir, 'nydus-image'), 'create', '--compressor', compressor, '-B', join(out, 'bootstrap'), '-D', out, src], () => {
          rmSync(out, { recursive: true, force: true });
          mkdirSync(out);
        }),
      );
      const blob = readdirSync(out).find((f) => f !== 'bootstrap')!;
      rows.push({ name: `nydus-image create --compressor ${compressor}`, secs, meta: statSync(join(out, 'bootstrap')).size, data: statSync(join(out, blob)).size });
    }
    const mkfs = spawnSync('mkfs.erofs', ['--help']);
    let erofs: { secs: number; meta: number; data: number } | undefined;
    if (mkfs.error) {
      console.log('mkfs.erofs not installed: no comparison row');
    } else {
      const img = join(work, 'erofs.img');
      const dev = join(work, 'erofs-blob.img');
      const secs = median(
        timed('mkfs.erofs', ['--quiet', `--chunksize=${kChunk}`, `--blobdev=${dev}`, img, src], () => {
          rmSync(img, { force: true });
          rmSync(dev, { force: true });
        }),
      );
      erofs = { secs, meta: statSync(img).size, data: statSync(dev).size };
      rows.push({ name: `mkfs.erofs --chunksize=${kChunk} --blobdev`, ...erofs });
    }
    for (const r of rows) {
      console.log(`${r.name.padEnd(48)} ${r.secs.toFixed(2).padStart(7)} s  ${(bytes / 1048576 / r.secs).toFixed(0).padStart(5)} MiB/s  metadata ${fmtKiB(r.meta).padStart(9)}  data ${fmtMiB(r.data).padStart(10)}`);
    }
    if (erofs) {
      for (const r of rows.slice(0, 2)) {
        console.log(`ratio ${r.name} / mkfs.erofs: time ${(r.secs / erofs.secs).toFixed(2)}x, metadata ${(r.meta / erofs.meta).toFixed(2)}x`);
      }
    }
  } finally {
    if (keep) console.log(`kept ${work}`);
    else rmSync(work, { recursive: true, force: true });
  }
}

main();
