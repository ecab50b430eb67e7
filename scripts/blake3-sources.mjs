#!/usr/bin/env node
// Finds the reference BLAKE3 C implementation that Debian's librust-blake3-dev installs (the
// upstream `c/` folder of the blake3 crate, under /usr/share/cargo/registry/blake3-<version>/c)
// and prints what a build needs from it. The sources are compiled from that installed path,
// never copied into this repository. NYDUS_BLAKE3_DIR overrides the search (a folder holding
// blake3.h and blake3_dispatch.c).
//
//   node scripts/blake3-sources.mjs --dir       the folder (for include paths)
//   node scripts/blake3-sources.mjs --sources   the files to compile for this machine, absolute
//   node scripts/blake3-sources.mjs --gyp-sources   the same, relative to the project root (gyp's
//                                                 make generator cannot place objects of
//                                                 absolute source paths)
//   node scripts/blake3-sources.mjs --defines   the preprocessor defines those files need
//
// x86-64 uses the unix assembly of each SIMD level (SSE2, SSE4.1, AVX2, AVX-512; upstream's
// preferred build: no per-file -m flags, same code whatever the compiler) and blake3_dispatch.c
// picks the widest one the CPU and OS support at run time. AArch64 adds the NEON file. Anything
// else gets the portable code with every x86 level disabled. Exits 1 with one line naming the
// package when nothing is installed.
import { existsSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

export const kBlake3Package = 'librust-blake3-dev';
const kRegistry = '/usr/share/cargo/registry';

function versionKey(name) {
  return (name.slice('blake3-'.length).split(/[.+~-]/).map((p) => Number(p) || 0));
}

/** The folder with the C sources, or undefined when the package is not installed. */
export function blake3Dir() {
  const override = process.env.NYDUS_BLAKE3_DIR;
  const ok = (d) => existsSync(join(d, 'blake3.h')) && existsSync(join(d, 'blake3_dispatch.c'));
  if (override) return ok(override) ? override : undefined;
  if (!existsSync(kRegistry)) return undefined;
  const found = readdirSync(kRegistry)
    .filter((n) => /^blake3-\d/.test(n) && ok(join(kRegistry, n, 'c')))
    .sort((a, b) => {
      const ka = versionKey(a);
      const kb = versionKey(b);
      for (let i = 0; i < Math.max(ka.length, kb.length); i++) {
        if ((ka[i] ?? 0) !== (kb[i] ?? 0)) return (kb[i] ?? 0) - (ka[i] ?? 0);
      }
      return 0;
    });
  return found.length > 0 ? join(kRegistry, found[0], 'c') : undefined;
}

/** Sources and defines for `arch` (process.arch spelling). */
export function blake3Build(dir, arch = process.arch) {
  const common = ['blake3.c', 'blake3_dispatch.c', 'blake3_portable.c'];
  if (arch === 'x64') {
    const asm = ['sse2', 'sse41', 'avx2', 'avx512'].map((l) => `blake3_${l}_x86-64_unix.S`);
    return { sources: [...common, ...asm].map((f) => join(dir, f)), defines: [] };
  }
  if (arch === 'arm64') return { sources: [...common, 'blake3_neon.c'].map((f) => join(dir, f)), defines: ['BLAKE3_USE_NEON=1'] };
  return {
    sources: common.map((f) => join(dir, f)),
    defines: ['BLAKE3_NO_SSE2', 'BLAKE3_NO_SSE41', 'BLAKE3_NO_AVX2', 'BLAKE3_NO_AVX512'],
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const dir = blake3Dir();
  if (!dir) {
    process.stderr.write(
      `nydusd build: the BLAKE3 C sources are missing (${kRegistry}/blake3-*/c); ` +
        `install them with: apt-get install -y ${kBlake3Package}\n`,
    );
    process.exit(1);
  }
  const what = process.argv[2] ?? '--sources';
  const b = blake3Build(dir);
  if (what === '--dir') process.stdout.write(dir);
  else if (what === '--sources') process.stdout.write(b.sources.join(' '));
  else if (what === '--gyp-sources') {
    const root = fileURLToPath(new URL('..', import.meta.url));
    process.stdout.write(b.sources.map((f) => relative(root, f)).join(' '));
  }
  else if (what === '--defines') process.stdout.write(b.defines.join(' '));
  else {
    process.stderr.write('usage: blake3-sources.mjs --dir | --sources | --gyp-sources | --defines\n');
    process.exit(2);
  }
}
