/**
 * Checks and setup that run before the filesystem is served, each failing with one clear line:
 * the bootstrap is a readable file, the mountpoint or socket location is usable, the open-file
 * limit, and warnings for configured features that are accepted but do nothing yet.
 */
import { accessSync, closeSync, constants as fsc, fstatSync, lstatSync, openSync, readFileSync, readSync, statSync, type Stats } from 'node:fs';
import { dirname } from 'node:path';

import type { NydusConfig } from '../config/index.js';
import { getRlimitNofile, setRlimitNofile } from '../native/index.js';
import { NydusError, UsageError } from '../util/errors.js';
import type { Logger } from '../util/logger.js';
import { claimSocketPath } from '../util/unix-socket.js';
import type { DaemonOptions } from './options.js';
import { clearStaleFuseMount } from './stale-mount.js';

function code(err: unknown): string {
  return (err as NodeJS.ErrnoException).code ?? String(err);
}

/**
 * The bootstrap must be a non-empty regular file we can read (`what` names it in messages).
 * Synchronous calls: four syscalls of microseconds, where each trip through Node's thread pool
 * cost a start about a millisecond (more on a busy machine); the image is then read synchronously
 * by openBootstrap anyway.
 */
export function checkBootstrap(path: string, what = '--bootstrap'): Promise<void> {
  // The executor runs at once; what it throws rejects the promise.
  return new Promise((resolve) => {
    checkBootstrapSync(path, what);
    resolve();
  });
}

function checkBootstrapSync(path: string, what: string): void {
  let fd;
  try {
    // O_NONBLOCK: a FIFO given by mistake fails the check below instead of blocking the open.
    fd = openSync(path, fsc.O_RDONLY | fsc.O_NONBLOCK);
  } catch (err) {
    const c = code(err);
    throw new UsageError(`${what} ${path}: ${c === 'ENOENT' ? 'no such file' : `cannot open (${c})`}`);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new UsageError(`${what} ${path}: not a regular file`);
    if (st.size === 0) throw new UsageError(`${what} ${path}: empty file`);
    const probe = Buffer.alloc(1);
    try {
      readSync(fd, probe, 0, 1, 0);
    } catch (err) {
      throw new UsageError(`${what} ${path}: cannot read (${code(err)})`);
    }
  } finally {
    closeSync(fd);
  }
}

/**
 * Where the transport will attach must be usable before we build anything: a mountpoint (a stale
 * FUSE mount of ours is cleared), or a socket path nobody listens on (a stale file is replaced).
 */
export async function checkTransportTarget(o: DaemonOptions, log?: Logger): Promise<void> {
  if (o.mode === 'fuse') {
    const m = o.mountpoint ?? '';
    const unusable = (err: unknown): UsageError =>
      new UsageError(`--mountpoint ${m}: ${code(err) === 'ENOENT' ? 'no such directory' : `cannot stat (${code(err)})`}`);
    let st: Stats;
    try {
      st = statSync(m);
    } catch (err) {
      if (code(err) !== 'ENOTCONN') throw unusable(err);
      clearStaleFuseMount(m, log);
      try {
        st = statSync(m);
      } catch (again) {
        throw unusable(again);
      }
    }
    if (!st.isDirectory()) throw new UsageError(`--mountpoint ${m}: not a directory`);
    return;
  }
  if (o.listenFd !== undefined) {
    let st;
    try {
      st = fstatSync(o.listenFd);
    } catch (err) {
      throw new UsageError(`--fd ${o.listenFd}: not an open file descriptor (${code(err)})`);
    }
    if (!st.isSocket()) throw new UsageError(`--fd ${o.listenFd}: not a socket`);
    return;
  }
  await checkSocketPath(o.socketPath ?? '', '--sock');
}

/**
 * A socket path we will listen on: its directory takes a new socket, and the path is free or a
 * stale socket file (replaced); a live listener there is an error (claimSocketPath).
 */
async function checkSocketPath(path: string, flag: string): Promise<void> {
  const dir = dirname(path);
  try {
    accessSync(dir, fsc.W_OK | fsc.X_OK);
  } catch (err) {
    throw new UsageError(`${flag} ${path}: cannot create a socket in ${dir} (${code(err)})`);
  }
  // The common case, a free path, needs no asynchronous claim (a probe is only for what is there).
  let there = true;
  try {
    there = lstatSync(path, { throwIfNoEntry: false }) !== undefined;
  } catch {
    // Let the claim tell what is wrong with the path.
  }
  if (there) await claimSocketPath(path, flag);
}

/**
 * --apisock, checked before anything is mounted. The server claims the path again right before
 * binding (the daemon is RUNNING by then).
 */
export function checkApiSocket(path: string): Promise<void> {
  return checkSocketPath(path, '--apisock');
}

/** Warnings for configured features that are parsed but have no effect yet. */
export function configNotes(cfg: NydusConfig, writable = false): string[] {
  const notes: string[] = [];
  const rafs = cfg.rafs;
  if (cfg.cache?.prefetch.enable && !rafs?.prefetch.enable) notes.push('cache.prefetch is enabled but rafs.prefetch is not: nothing is prefetched (as upstream); enable rafs.prefetch');
  if (rafs?.prefetch.stream_prefetch || cfg.cache?.prefetch.stream_prefetch) {
    notes.push('stream_prefetch (a rangeless GET per blob through Dragonfly) is not supported yet; prefetch uses ranged requests');
  }
  for (const k of ['iostats_files', 'access_pattern', 'latest_read_files'] as const) {
    if (rafs?.[k]) notes.push(`${k}: per-file metrics are not supported yet; ignored (the metrics API reports it off)`);
  }
  if (cfg.cache?.filecache?.disable_indexed_map) notes.push('disable_indexed_map is deprecated and ignored');
  if (cfg.overlay?.work_dir && !writable) notes.push('overlay.work_dir: not used without --writable (the merged view is served read-only)');
  return notes;
}

/** Upstream keeps this many descriptors for the rest of the system, and caps at one million. */
const kNofileReserved = 16384;
const kNofileMax = 1_000_000;
/** `--rlimit-nofile` default, as upstream. */
export const kDefaultRlimitNofile = 1_000_000;

/**
 * `--rlimit-nofile`, as upstream: min(requested, fs.file-max - 16384, 1e6), never below the
 * current soft limit's ceiling. Where upstream fails when the hard limit cannot be raised
 * (unprivileged), we raise the soft limit as far as the hard one allows and warn.
 */
export function applyRlimitNofile(requested: number, log: Logger): void {
  if (requested === 0) return;
  let fileMax = Infinity;
  try {
    fileMax = Number(readFileSync('/proc/sys/fs/file-max', 'utf8').trim());
  } catch {
    // No procfs (containers without /proc/sys): trust the kernel to refuse what it cannot give.
  }
  if (fileMax < 2 * kNofileReserved) {
    throw new NydusError('ERR_RLIMIT', `fs.file-max (${fileMax}) is too low to allow a reasonable number of open files`);
  }
  const cur = getRlimitNofile();
  let max = Math.min(fileMax - kNofileReserved, kNofileMax);
  if (cur.soft >= max) max = cur.soft;
  const target = Math.min(requested, max);
  try {
    setRlimitNofile(target, target);
    log.info(`rlimit-nofile set to ${target} (maximum ${max})`);
  } catch (err) {
    if ((err as { errno?: number }).errno !== 1) throw err;
    const soft = Math.min(target, cur.hard);
    if (soft > cur.soft) setRlimitNofile(soft, cur.hard);
    // Only an explicit request is worth a warning; the default is best effort.
    const msg = `rlimit-nofile: cannot raise the hard limit to ${target} (EPERM); using ${Math.max(soft, cur.soft)}`;
    if (requested === kDefaultRlimitNofile) log.info(msg);
    else log.warn(msg);
  }
}
