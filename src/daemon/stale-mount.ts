/**
 * A mountpoint left behind by a FUSE daemon that died (killed, crashed): the kernel keeps the
 * mount, and every stat of it fails with ENOTCONN. One of ours (fstype fuse.nydus, source nydus:
 * what the native session mounts) is detached with `umount -l`, as upstream's users do by hand;
 * anybody else's is left alone with a message saying what it is and how to clear it.
 */
import { readFileSync, realpathSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';

import { UsageError } from '../util/errors.js';
import type { Logger } from '../util/logger.js';

export interface MountEntry {
  mountpoint: string;
  fstype: string;
  source: string;
}

/** What the native FUSE session mounts (fsname "nydus", subtype "nydus"). */
const kOurFstype = 'fuse.nydus';
const kOurSource = 'nydus';

/** mountinfo escapes space, tab, newline and backslash as \ooo. */
function unescape(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_m, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/** The mount on top at `path` in /proc/self/mountinfo text (proc(5)), or undefined. */
export function findMount(mountinfo: string, path: string): MountEntry | undefined {
  let found: MountEntry | undefined;
  for (const line of mountinfo.split('\n')) {
    const f = line.split(' ');
    const dash = f.indexOf('-');
    if (dash < 6 || f.length < dash + 3) continue;
    const mountpoint = unescape(f[4] as string);
    if (mountpoint === path) found = { mountpoint, fstype: unescape(f[dash + 1] as string), source: unescape(f[dash + 2] as string) };
  }
  return found;
}

export function isOurMount(m: MountEntry): boolean {
  return m.fstype === kOurFstype && m.source === kOurSource;
}

function readMountinfo(): string {
  try {
    return readFileSync('/proc/self/mountinfo', 'utf8');
  } catch {
    return '';
  }
}

/**
 * Called when stat of the mountpoint failed with ENOTCONN. Detaches a stale mount of ours and
 * returns; otherwise throws a UsageError that says what is mounted there and how to clear it.
 */
export function clearStaleFuseMount(path: string, log: Logger | undefined, mountinfo = readMountinfo()): void {
  // mountinfo has canonical paths; the mountpoint itself cannot be resolved (ENOTCONN), its parent can.
  let abs = resolve(path);
  try {
    abs = join(realpathSync(dirname(abs)), basename(abs));
  } catch {
    // Keep the plain absolute path: the lookup then simply finds nothing.
  }
  const m = findMount(mountinfo, abs);
  const how = `clear it with \`umount -l ${abs}\``;
  if (!m) throw new UsageError(`--mountpoint ${path}: not connected (ENOTCONN), probably a stale FUSE mount; ${how}`);
  const what = `a stale FUSE mount (${m.fstype}, source ${m.source}) left by a daemon that is gone`;
  if (!isOurMount(m)) throw new UsageError(`--mountpoint ${path}: ${what}; ${how}`);
  // node:child_process loads here, on first use: not on every start (issue 13).
  const r = process.getBuiltinModule('node:child_process').spawnSync('umount', ['-l', abs], { encoding: 'utf8' });
  if (r.status !== 0) {
    const why = r.error ? r.error.message : (r.stderr.trim().split('\n').pop() ?? `exit status ${String(r.status)}`);
    throw new UsageError(`--mountpoint ${path}: ${what}; removing it failed (${why}); ${how}`);
  }
  log?.warn(`--mountpoint ${path}: removed ${what} (umount -l)`);
}
