/**
 * The trees and images the suite serves, generated fresh in a temp folder every run:
 *  - `src/`: `big.bin` (one large file, written with one write so its page-cache folios are as
 *    large as those of our blob cache, which is written a chunk at a time) and `many/` (10 000
 *    files of 4 KiB). virtiofsd serves `src/` as it is; ours serves the RAFS v6 image
 *    `nydus-image create` builds from it (zstd, 1 MiB chunks, localfs backend, blobcache).
 *  - cold images, one per compressor, of two 1 MiB-aligned files cut from a corpus of real
 *    files of this machine (/usr: ELF binaries, libraries, text), so compression ratios and
 *    decompression speeds are those of container-like data.
 *  - a 100 000-file tree (100 folders of 1000 small files) for bootstrap open time and RSS.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, lstatSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';

import { binDir } from '../../test/helpers/paths.js';
import { exec, progress } from './proc.js';
import type { OursImage } from './servers.js';

export type Compressor = 'none' | 'lz4_block' | 'zstd';
export const kCompressors: readonly Compressor[] = ['none', 'lz4_block', 'zstd'];

export const kBigFile = '/big.bin';
export const kManyDir = '/many';
export const kManyFiles = 10_000;
export const kSmallFileSize = 4096;
export const kColdFiles = ['/cold-a.bin', '/cold-b.bin'] as const;

export interface ColdImage {
  compressor: Compressor;
  bootstrap: string;
  blobDir: string;
}

export interface Fixture {
  work: string;
  src: string;
  bigBytes: number;
  warm: OursImage;
  cold: ColdImage[];
  /** The corpus both cold files were cut from (the decompression bound is measured on it). */
  corpus: string;
  corpusBytes: number;
  corpusFiles: number;
}

/** `nydus-image create` (our CLI, as a user runs it). */
export async function buildImage(source: string, out: string, compressor: Compressor): Promise<{ bootstrap: string; blobDir: string }> {
  mkdirSync(out, { recursive: true });
  const bootstrap = join(out, 'image.boot');
  const r = await exec(process.execPath, [join(binDir, 'nydus-image'), 'create', '--fs-version', '6', '--compressor', compressor,
    '--chunk-size', '0x100000', '-B', bootstrap, '-D', out, source], 600_000);
  if (r.status !== 0) throw new Error(`nydus-image create ${source} failed: ${r.stderr.trim() || r.stdout.trim()}`);
  return { bootstrap, blobDir: out };
}

/** Real files under /usr, in a fixed order, concatenated up to `bytes`. */
function writeCorpus(path: string, bytes: number): { bytes: number; files: number } {
  const fd = openSync(path, 'w');
  let written = 0;
  let files = 0;
  const buf = Buffer.allocUnsafe(1 << 20);
  const walk = (dir: string): void => {
    let names: string[];
    try {
      names = readdirSync(dir).sort();
    } catch {
      return;
    }
    for (const name of names) {
      if (written >= bytes) return;
      const p = join(dir, name);
      let st;
      try {
        st = lstatSync(p, { throwIfNoEntry: false }); // symlinks are skipped: no loops, no duplicates
      } catch {
        continue;
      }
      if (!st) continue;
      if (st.isDirectory()) {
        walk(p);
      } else if (st.isFile() && st.size > 0) {
        let in_: number;
        try {
          in_ = openSync(p, 'r');
        } catch {
          continue;
        }
        try {
          for (;;) {
            const n = readSync(in_, buf, 0, Math.min(buf.length, bytes - written), null);
            if (n <= 0) break;
            writeSync(fd, buf, 0, n);
            written += n;
            if (written >= bytes) break;
          }
          files++;
        } finally {
          closeSync(in_);
        }
      }
    }
  };
  for (const d of ['/usr/lib', '/usr/bin', '/usr/share', '/usr']) walk(d);
  // A machine with a tiny /usr: pad with text-like data so the sizes stay what the run asked.
  while (written < bytes) {
    const line = Buffer.from(`${written.toString(36)} padding line for a machine with little in /usr\n`.repeat(4096));
    const n = Math.min(line.length, bytes - written);
    writeSync(fd, line, 0, n);
    written += n;
  }
  closeSync(fd);
  return { bytes: written, files };
}

/** `src/` (big.bin + many/) and its image with an empty cache folder. */
export async function makeWarmTree(work: string, bigMiB: number): Promise<{ src: string; bigBytes: number; warm: OursImage }> {
  const src = join(work, 'src');
  mkdirSync(join(src, 'many'), { recursive: true });
  const bigBytes = bigMiB << 20;
  progress(`generating the tree: ${kBigFile} (${bigMiB} MiB), ${kManyDir}/ (${kManyFiles} files of ${kSmallFileSize} B)`);
  writeFileSync(join(src, 'big.bin'), randomBytes(bigBytes));
  const block = randomBytes(kManyFiles * kSmallFileSize);
  for (let i = 0; i < kManyFiles; i++) {
    writeFileSync(join(src, 'many', `f${String(i).padStart(5, '0')}`), block.subarray(i * kSmallFileSize, (i + 1) * kSmallFileSize));
  }
  progress('building the warm image (nydus-image create, RAFS v6, zstd, 1 MiB chunks)');
  const built = await buildImage(src, join(work, 'warm-image'), 'zstd');
  const cacheDir = join(work, 'warm-cache');
  mkdirSync(cacheDir);
  return { src, bigBytes, warm: { ...built, cacheDir } };
}

export async function makeFixture(work: string, opts: { bigMiB: number; coldMiB: number }): Promise<Fixture> {
  const { src, bigBytes, warm } = await makeWarmTree(work, opts.bigMiB);

  const corpus = join(work, 'corpus.bin');
  const coldBytes = opts.coldMiB << 20;
  const c = writeCorpus(corpus, 2 * coldBytes);
  const coldSrc = join(work, 'cold-src');
  mkdirSync(coldSrc);
  const data = readFileSync(corpus);
  writeFileSync(join(coldSrc, 'cold-a.bin'), data.subarray(0, coldBytes));
  writeFileSync(join(coldSrc, 'cold-b.bin'), data.subarray(coldBytes, 2 * coldBytes));
  const cold: ColdImage[] = [];
  for (const compressor of kCompressors) {
    progress(`building the cold image (${compressor}) of 2 x ${opts.coldMiB} MiB of /usr files`);
    const img = await buildImage(coldSrc, join(work, `cold-${compressor}`), compressor);
    cold.push({ compressor, ...img });
  }
  return { work, src, bigBytes, warm, cold, corpus, corpusBytes: c.bytes, corpusFiles: c.files };
}

/** Reads every file under `dir` (the page cache then holds them, as for a warm server). */
export function readTree(dir: string): number {
  let bytes = 0;
  for (const ent of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, ent.name);
    if (ent.isDirectory()) bytes += readTree(p);
    else if (ent.isFile()) bytes += readFileSync(p).length;
  }
  return bytes;
}

/** 100 folders x 1000 files of a few bytes each, built into a RAFS v6 image. */
export async function makeHundredK(work: string): Promise<{ bootstrap: string; blobDir: string; files: number }> {
  const src = join(work, 'tree-100k');
  progress('generating a 100 000-file tree and its image');
  for (let d = 0; d < 100; d++) {
    const dir = join(src, `d${String(d).padStart(2, '0')}`);
    mkdirSync(dir, { recursive: true });
    for (let f = 0; f < 1000; f++) writeFileSync(join(dir, `file-${String(f).padStart(4, '0')}.txt`), `file ${d}/${f}\n`);
  }
  const img = await buildImage(src, join(work, 'image-100k'), 'zstd');
  return { ...img, files: 100_000 };
}
