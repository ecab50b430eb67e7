/**
 * Process plumbing for the suite: progress lines, the frontend driver, waiting for a socket
 * file without connecting to it, and /proc readings.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, watch } from 'node:fs';
import { basename, dirname } from 'node:path';

import { nativeBuildFile } from '../../test/helpers/paths.js';

const t0 = Date.now();

/** A progress line on stderr with the time since the suite started. */
export function progress(msg: string): void {
  const s = Math.floor((Date.now() - t0) / 1000);
  process.stderr.write(`bench [${String(Math.floor(s / 60)).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}] ${msg}\n`);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export interface Exec {
  status: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/**
 * Runs a command to completion (killed after timeoutMs); stdout and stderr as text. `onStdout`
 * sees stdout as it arrives (to time what a command prints).
 */
export function exec(cmd: string, args: readonly string[], timeoutMs = 300_000, onStdout?: (s: string) => void): Promise<Exec> {
  return new Promise((resolve, reject) => {
    const start = process.hrtime.bigint();
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => {
      onStdout?.(s);
      if (out.length < 64 << 20) out += s;
    });
    child.stderr.setEncoding('utf8').on('data', (s: string) => {
      if (err.length < 1 << 20) err += s;
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout: out, stderr: err, ms: Number(process.hrtime.bigint() - start) / 1e6 });
    });
  });
}

export function driverPath(): string {
  return nativeBuildFile('nydus_vu_driver');
}

/** Runs `nydus_vu_driver [--socket S] ARGS` and parses its JSON; throws with its stderr on failure. */
export async function driverJson<T = Record<string, unknown>>(socket: string | undefined, args: readonly string[]): Promise<T> {
  const full = socket === undefined ? [...args] : ['--socket', socket, ...args];
  const r = await exec(driverPath(), full);
  if (r.status !== 0) throw new Error(`nydus_vu_driver ${full.join(' ')} exited ${String(r.status)}: ${r.stderr.trim()}`);
  return JSON.parse(r.stdout) as T;
}

/** True when a Unix socket bound at `path` is listening (/proc/net/unix, flag __SO_ACCEPTCON). */
export function isListening(path: string): boolean {
  let table: string;
  try {
    table = readFileSync('/proc/net/unix', 'utf8');
  } catch {
    return existsSync(path); // no procfs: the file is the best sign there is
  }
  for (const line of table.split('\n')) {
    // Num RefCount Protocol Flags Type St Inode Path
    const f = line.trim().split(/\s+/);
    if (f.length >= 8 && f.slice(7).join(' ') === path && (parseInt(f[3] ?? '0', 16) & 0x10000) !== 0) return true;
  }
  return false;
}

/**
 * Resolves once a socket at `path` exists and listens: inotify on its folder for the file, a
 * 1 ms poll of /proc/net/unix for listen(). Rejects after `timeoutMs` or when `abort` resolves
 * first. Never connects: a connection to a vhost-user socket is a frontend, and a connect that
 * lands between bind() and listen() is refused.
 */
export function waitForListener(path: string, timeoutMs: number, abort?: Promise<unknown>): Promise<void> {
  return new Promise((resolve, reject) => {
    let done = false;
    const finish = (err?: Error): void => {
      if (done) return;
      done = true;
      watcher.close();
      clearInterval(poll);
      clearTimeout(timer);
      if (err) reject(err);
      else resolve();
    };
    const check = (): void => {
      if (existsSync(path) && isListening(path)) finish();
    };
    const name = basename(path);
    const watcher = watch(dirname(path), (_ev, f) => {
      if (f === name) check();
    });
    const poll = setInterval(check, 1);
    const timer = setTimeout(() => finish(new Error(`${path} did not start listening within ${timeoutMs} ms`)), timeoutMs);
    void abort?.then(() => finish(new Error(`the process exited before ${path} was listening`)));
    check();
  });
}

/** VmRSS and VmHWM of a process in MiB (undefined when it is gone). */
export function processMemory(pid: number): { rssMiB: number; hwmMiB: number } | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (k: string): number => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? Number.NaN);
    return { rssMiB: kb('VmRSS') / 1024, hwmMiB: kb('VmHWM') / 1024 };
  } catch {
    return undefined;
  }
}
