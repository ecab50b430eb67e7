/**
 * Shared pieces of the frontend-driver integration tests: running `nydus_vu_driver`, starting
 * the backends it talks to (`nydus_vu_testd`: our vhost-user backend with a test FUSE responder;
 * QEMU's C virtiofsd), building a sample tree and describing a host tree the way `tree` does.
 *
 * (main has qemu/virtiofsd.ts for starting virtiofsd; this branch predates it, so a minimal local
 * copy lives here. After the merge the tests can switch to it.)
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync, closeSync, existsSync, lstatSync, mkdirSync, mkdtempSync, openSync, readdirSync,
  readFileSync, readlinkSync, rmSync, symlinkSync, utimesSync, writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { unixSocketListening } from '../../qemu/virtiofsd.js';
import { nativeBuildFile } from '../helpers/paths.js';

export const kVirtiofsd = '/usr/lib/qemu/virtiofsd';
const kSetpriv = '/usr/bin/setpriv';

export interface RunResult {
  status: number | null;
  stdout: Buffer;
  stderr: string;
}

/** Runs the driver against `socket`; resolves when it exits (killed after `timeoutMs`). */
export function runDriver(socket: string, args: string[], timeoutMs = 120_000): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(nativeBuildFile('nydus_vu_driver'), ['--socket', socket, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    let err = '';
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (s: string) => {
      if (err.length < 1 << 20) err += s;
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout: Buffer.concat(out), stderr: err });
    });
  });
}

/** Runs the driver and parses its JSON output; throws with the driver's stderr on failure. */
export async function driverJson<T>(socket: string, args: string[]): Promise<T> {
  const r = await runDriver(socket, args);
  if (r.status !== 0) {
    throw new Error(`nydus_vu_driver ${args.join(' ')} exited ${String(r.status)}: ${r.stderr}`);
  }
  return JSON.parse(r.stdout.toString('utf8')) as T;
}

export interface Backend {
  socket: string;
  pid: number;
  /** Stops the process (SIGTERM, then SIGKILL after 3 s); resolves with its stdout. */
  stop(): Promise<string>;
  exited: Promise<number | string>;
}

function spawnBackend(cmd: string, args: string[], dir: string, logName: string) {
  // Logs go to a file: nothing may block the backend on a full pipe while a test waits.
  const log = openSync(join(dir, logName), 'w');
  const full = existsSync(kSetpriv) ? [kSetpriv, '--pdeathsig', 'KILL', '--', cmd, ...args] : [cmd, ...args];
  const child = spawn(full[0] ?? cmd, full.slice(1), { stdio: ['ignore', 'pipe', log] });
  closeSync(log);
  let stdout = '';
  child.stdout?.setEncoding('utf8');
  child.stdout?.on('data', (s: string) => {
    stdout += s;
  });
  const exited = new Promise<number | string>((resolve) => {
    child.on('close', (code, sig) => resolve(code ?? sig ?? 'unknown'));
  });
  const stop = async (): Promise<string> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 3000);
      await exited;
      clearTimeout(t);
    }
    return stdout;
  };
  return { child, stop, exited, stdoutSoFar: () => stdout };
}

async function waitFor(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Starts nydus_vu_testd serving `source` (and synthetic files) on a fresh socket. */
export async function startTestd(dir: string, source: string, extra: string[] = []): Promise<Backend> {
  const socket = join(dir, `testd-${Date.now()}.sock`);
  const b = spawnBackend(nativeBuildFile('nydus_vu_testd'), ['--socket', socket, '--source', source, ...extra],
    dir, 'testd.log');
  await waitFor(() => b.stdoutSoFar().includes('"ready":true'), 10_000, 'nydus_vu_testd to listen');
  return { socket, pid: b.child.pid ?? 0, stop: b.stop, exited: b.exited };
}

/** False when virtiofsd can run here, else why the tests skip. */
export function virtiofsdSkip(): string | false {
  if (!existsSync(kVirtiofsd)) return `${kVirtiofsd} not found (apt-get install qemu-system-common)`;
  if (process.getuid?.() !== 0) return 'virtiofsd needs root for its namespace sandbox';
  return false;
}

/** Starts virtiofsd on a fresh socket; it serves one connection and then exits. */
export async function startVirtiofsd(dir: string, source: string): Promise<Backend> {
  const socket = join(dir, `vfsd-${Date.now()}-${Math.random().toString(36).slice(2, 6)}.sock`);
  const b = spawnBackend(kVirtiofsd, [`--socket-path=${socket}`, '-o', `source=${source}`, '-o', 'cache=auto'],
    dir, 'virtiofsd.log');
  await waitFor(() => unixSocketListening(socket), 10_000, 'virtiofsd to listen');
  return { socket, pid: b.child.pid ?? 0, stop: b.stop, exited: b.exited };
}

export function tempDir(prefix: string): { path: string; remove(): void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

/** A small tree with what a guest meets: nested dirs, empty/small/multi-MiB files, symlinks, a fifo. */
export function makeSampleTree(root: string): void {
  mkdirSync(join(root, 'etc', 'conf.d'), { recursive: true });
  mkdirSync(join(root, 'usr', 'lib', 'deep', 'er', 'est'), { recursive: true });
  mkdirSync(join(root, 'empty-dir'));
  writeFileSync(join(root, 'etc', 'hostname'), 'nydus\n');
  writeFileSync(join(root, 'etc', 'conf.d', 'empty'), '');
  let seed = 7;
  const bytes = (n: number): Buffer => {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++) {
      seed = (seed * 1103515245 + 12345) >>> 0;
      b[i] = seed >>> 24;
    }
    return b;
  };
  writeFileSync(join(root, 'usr', 'lib', 'page.bin'), bytes(4096));
  writeFileSync(join(root, 'usr', 'lib', 'odd.bin'), bytes(12345));
  writeFileSync(join(root, 'usr', 'lib', 'big.bin'), bytes(3 * 1024 * 1024 + 17));
  writeFileSync(join(root, 'usr', 'lib', 'deep', 'er', 'est', 'leaf.txt'), 'leaf\n');
  for (let i = 0; i < 300; i++) writeFileSync(join(root, 'etc', `f${String(i).padStart(3, '0')}`), `${i}\n`);
  writeFileSync(join(root, 'usr', 'bin-x'), '#!/bin/sh\n');
  chmodSync(join(root, 'usr', 'bin-x'), 0o755);
  writeFileSync(join(root, 'usr', 'ro'), 'ro');
  chmodSync(join(root, 'usr', 'ro'), 0o400);
  utimesSync(join(root, 'usr', 'ro'), 1_000_000_000, 1_000_000_000);
  symlinkSync('../etc/hostname', join(root, 'usr', 'hostname-link'));
  symlinkSync('x'.repeat(200), join(root, 'dangling'));
  // node:fs has no mkfifo; coreutils has it on every Debian machine.
  spawnSync('mkfifo', [join(root, 'pipe')], { stdio: 'ignore' });
}

export interface TreeEntry {
  path: string;
  type: string;
  mode: number;
  size: number;
  uid: number;
  gid: number;
  mtime: number;
  target?: string;
  sha256?: string;
}

function typeOf(mode: number): string {
  switch (mode & 0o170000) {
    case 0o100000: return 'file';
    case 0o040000: return 'dir';
    case 0o120000: return 'symlink';
    case 0o010000: return 'fifo';
    case 0o140000: return 'socket';
    case 0o020000: return 'chardev';
    case 0o060000: return 'blockdev';
    default: return 'unknown';
  }
}

/** The host's view of `root` in the shape of the driver's `tree` entries (sorted by path). */
export function hostTree(root: string): TreeEntry[] {
  const out: TreeEntry[] = [];
  const walk = (dir: string, rel: string): void => {
    for (const name of readdirSync(dir)) {
      const p = join(dir, name);
      const st = lstatSync(p);
      const e: TreeEntry = {
        path: `${rel}/${name}`, type: typeOf(st.mode), mode: st.mode, size: st.size, uid: st.uid, gid: st.gid,
        mtime: Math.floor(st.mtimeMs / 1000),
      };
      if (st.isSymbolicLink()) e.target = readlinkSync(p);
      if (st.isFile()) e.sha256 = createHash('sha256').update(readFileSync(p)).digest('hex');
      out.push(e);
      if (st.isDirectory()) walk(p, e.path);
    }
  };
  walk(root, '');
  return out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/** Only the fields both sides define, for deepEqual. */
export function comparable(entries: TreeEntry[]): TreeEntry[] {
  return entries.map((e) => {
    const c: TreeEntry = {
      path: e.path, type: e.type, mode: e.mode, size: e.size, uid: e.uid, gid: e.gid, mtime: e.mtime,
    };
    if (e.target !== undefined) c.target = e.target;
    if (e.sha256 !== undefined) c.sha256 = e.sha256;
    return c;
  });
}

export interface FaultReport {
  kind: string;
  reaction: string;
  detail: string;
  reply_error: number;
  same_connection_ok: boolean;
  server_alive_after_fault: boolean;
  fresh_connection_ok: boolean;
  server_alive_at_end: boolean;
}

export async function faultKinds(): Promise<string[]> {
  const r = await runDriver('/nonexistent', ['fault', 'list']);
  return r.stdout.toString('utf8').split('\n').filter(Boolean);
}
