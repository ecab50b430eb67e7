/**
 * A real Debian root filesystem for "run a container from the image" tests: debootstrap
 * (minbase variant) from the machine's own Debian mirror, cached once per machine next to the
 * guest kernel (`~/.cache/nydusd-node/rootfs/`). About 200 MB and half a minute the first time.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';

import { guestCacheRoot } from '../../qemu/kernel.js';

const kSuite = 'bookworm';

function mirror(): string {
  for (const f of ['/etc/apt/sources.list.d/debian.sources', '/etc/apt/sources.list']) {
    if (!existsSync(f)) continue;
    const text = readFileSync(f, 'utf8');
    const m = /^URIs:\s*(\S+)/m.exec(text) ?? /^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+\S+/m.exec(text);
    if (m?.[1] && !m[1].includes('security')) return m[1];
  }
  return 'http://deb.debian.org/debian';
}

function unmountBelow(dir: string): void {
  const mounts = readFileSync('/proc/mounts', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[1]?.replace(/\\040/g, ' '))
    .filter((m): m is string => m !== undefined && (m === dir || m.startsWith(`${dir}/`)))
    .sort((a, b) => b.length - a.length);
  for (const m of mounts) spawnSync('umount', ['-l', m]);
}

export function rootfsDir(): string {
  return join(dirname(guestCacheRoot()), 'rootfs', `${kSuite}-minbase`);
}

/** The cached rootfs directory, built on first use; or a string saying why it is unavailable. */
export function debianRootfs(): { dir: string } | { unavailable: string } {
  const dir = rootfsDir();
  if (existsSync(join(dir, 'etc', 'debian_version'))) return { dir };
  if (process.getuid?.() !== 0) return { unavailable: 'debootstrap needs root' };
  if (spawnSync('debootstrap', ['--version']).status !== 0) return { unavailable: 'debootstrap is not installed (apt-get install debootstrap)' };
  const tmp = `${dir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  process.stderr.write(`rootfs: debootstrap --variant=minbase ${kSuite} from ${mirror()} (first run only)\n`);
  const r = spawnSync('debootstrap', ['--variant=minbase', kSuite, tmp, mirror()], { encoding: 'utf8', timeout: 600_000 });
  // debootstrap can leave /proc (and friends) of the target mounted; a mounted procfs inside
  // the tree would make it unbuildable and unremovable.
  unmountBelow(tmp);
  if (r.status !== 0) {
    rmSync(tmp, { recursive: true, force: true });
    return { unavailable: `debootstrap failed: ${(r.stderr || r.stdout).split('\n').slice(-3).join(' ')}` };
  }
  rmSync(dir, { recursive: true, force: true });
  renameSync(tmp, dir);
  return { dir };
}
