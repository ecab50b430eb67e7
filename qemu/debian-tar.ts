/**
 * A tar of real Debian files for guests to unpack from a raw virtio-blk disk (`tar -x -f
 * /dev/vda`): the zone data tzdata installs (regular files and relative symlinks, many of them
 * small), staged with `cp -a` and given what a package tree also has: hard links, a setuid and a
 * private file, a file owned by someone else. GNU tar writes it; its size is a multiple of 10240
 * bytes, so it is a valid raw disk as it is.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, linkSync, mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

const kZoneDirs = ['/usr/share/zoneinfo/Europe', '/usr/share/zoneinfo/America'];

/** false when the source files exist; otherwise why not (for `skip`). */
export function debianTarAvailable(): string | false {
  return kZoneDirs.every((d) => existsSync(d)) ? false : `${kZoneDirs.join(', ')} missing (apt-get install tzdata)`;
}

/** Builds `<dir>/debian.tar` (staging in `<dir>/debian-stage`) and returns its path. */
export function makeDebianTar(dir: string): string {
  const stage = join(dir, 'debian-stage');
  const z = join(stage, 'usr', 'share', 'zoneinfo');
  mkdirSync(z, { recursive: true });
  execFileSync('cp', ['-a', ...kZoneDirs, z]);
  linkSync(join(z, 'Europe', 'Paris'), join(z, 'Europe', 'Paris.hardlink'));
  linkSync(join(z, 'Europe', 'Paris'), join(z, 'America', 'Paris.hardlink'));
  chmodSync(join(z, 'Europe', 'Berlin'), 0o4755);
  chmodSync(join(z, 'Europe', 'Rome'), 0o600);
  chownSync(join(z, 'Europe', 'Madrid'), 1000, 1000);
  const out = join(dir, 'debian.tar');
  execFileSync('tar', ['-C', stage, '--format=gnu', '-cf', out, 'usr']);
  if (statSync(out).size % 512 !== 0) throw new Error(`${out}: not a multiple of 512 bytes`);
  return out;
}
