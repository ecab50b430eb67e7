/**
 * Small static helper programs the tests run on the host and inside the busybox guest, compiled
 * from `qemu/tools/*.c` on first use and cached next to the guest kernel (keyed by the source's
 * hash, so editing the source rebuilds it).
 *
 * `treedump DIR` prints one JSON line per entry (type, mode, owner, size, nlink, mtime ns, rdev,
 * symlink target, xattrs, sha256): the same binary describes a source directory on the host, a
 * FUSE mount on the host and a virtio-fs mount in the guest, so the three compare directly.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { NydusError } from '../src/util/errors.js';
import { guestCacheRoot } from './kernel.js';

function sourceDir(): string {
  // dist/qemu/tools.js -> <root>/qemu/tools ; qemu/tools.ts -> <root>/qemu/tools
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 4; i++) {
    const candidate = join(dir, 'qemu', 'tools');
    if (existsSync(join(candidate, 'treedump.c'))) return candidate;
    if (existsSync(join(dir, 'tools', 'treedump.c'))) return join(dir, 'tools');
    dir = dirname(dir);
  }
  throw new NydusError('ERR_GUEST_TOOLS', 'qemu/tools/treedump.c not found');
}

/** Path of the compiled static tool, building it when needed. */
export function toolBinary(name: 'treedump' | 'posixsuite'): string {
  const src = join(sourceDir(), `${name}.c`);
  const code = readFileSync(src);
  const key = createHash('sha256').update(code).digest('hex').slice(0, 16);
  const outDir = join(dirname(guestCacheRoot()), 'tools');
  const out = join(outDir, `${name}-${key}`);
  if (existsSync(out)) return out;
  mkdirSync(outDir, { recursive: true });
  const tmp = `${out}.tmp${process.pid}`;
  const res = spawnSync('cc', ['-static', '-O2', '-Wall', '-o', tmp, src], { encoding: 'utf8' });
  if (res.status !== 0) {
    throw new NydusError('ERR_GUEST_TOOLS', `cannot build ${name} (needs cc and static libc): ${res.stderr || res.error?.message}`);
  }
  renameSync(tmp, out);
  return out;
}

export interface TreeEntry {
  path: string;
  type: 'file' | 'dir' | 'symlink' | 'char' | 'block' | 'fifo' | 'socket' | 'unknown';
  mode: number;
  uid: number;
  gid: number;
  size: number;
  nlink: number;
  mtime: number;
  mtime_nsec: number;
  ino: number;
  rdev_major?: number;
  rdev_minor?: number;
  target?: string | null;
  sha256?: string | null;
  read_error?: string;
  xattrs: Record<string, string>;
}

/** Parses treedump output (one JSON object per line). */
export function parseTreeDump(text: string): TreeEntry[] {
  return text
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as TreeEntry);
}

/** Runs treedump on a host directory. */
export function dumpHostTree(dir: string): TreeEntry[] {
  const res = spawnSync(toolBinary('treedump'), [dir], { encoding: 'latin1', maxBuffer: 1 << 30 });
  if (res.status !== 0 && !res.stdout) {
    throw new NydusError('ERR_GUEST_TOOLS', `treedump ${dir} failed: ${res.stderr}`);
  }
  return parseTreeDump(res.stdout);
}
