/**
 * Runs QEMU's C virtiofsd (`/usr/lib/qemu/virtiofsd`, QEMU 7.2) as a reference vhost-user-fs
 * backend: tests use it as the known-good peer and the demo serves its sample tree with it until
 * our own nydusd takes over.
 *
 * virtiofsd serves exactly one connection and exits when QEMU disconnects, so start one per guest.
 */
import type { ChildProcess } from 'node:child_process';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { NydusError } from '../src/util/errors.js';

export const kVirtiofsd = '/usr/lib/qemu/virtiofsd';
const kSetpriv = '/usr/bin/setpriv';

export interface VirtiofsdOptions {
  /** Directory to share. */
  source: string;
  /** Socket to create; default: a fresh one in a private temp folder. */
  socketPath?: string;
  /** `-o cache=`: auto (default), always or none. */
  cache?: 'auto' | 'always' | 'none';
  /** More arguments, e.g. ['-o', 'xattr', '-o', 'announce_submounts']. */
  extraArgs?: string[];
  /** How long to wait for the socket; default 10000 ms. */
  startTimeoutMs?: number;
}

export interface Virtiofsd {
  socket: string;
  pid: number;
  /** Everything virtiofsd printed on stderr so far. */
  log(): string;
  /** Resolves with the exit status (or signal name) once the process has ended. */
  exited: Promise<number | string>;
  /** SIGTERM, then SIGKILL after 2 s; removes the temp socket folder. Safe to call twice. */
  stop(): Promise<void>;
}

export function virtiofsdAvailable(): string | false {
  return existsSync(kVirtiofsd) ? false : `${kVirtiofsd} not found (apt-get install qemu-system-common)`;
}

/**
 * True once a Unix socket bound at `path` is listening. virtiofsd binds before it listens, so the
 * socket file alone is not enough, and a probe connection would use up its only connection: read
 * the kernel's table instead (flag __SO_ACCEPTCON, 0x10000, marks a listener).
 */
export function unixSocketListening(path: string): boolean {
  let table: string;
  try {
    table = readFileSync('/proc/net/unix', 'utf8');
  } catch {
    return statSync(path, { throwIfNoEntry: false })?.isSocket() ?? false;
  }
  for (const line of table.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length >= 8 && f.slice(7).join(' ') === path && (parseInt(f[3] ?? '0', 16) & 0x10000) !== 0) return true;
  }
  return false;
}

export async function startVirtiofsd(opts: VirtiofsdOptions): Promise<Virtiofsd> {
  const why = virtiofsdAvailable();
  if (why) throw new NydusError('ERR_VIRTIOFSD', why);
  if (!statSync(opts.source, { throwIfNoEntry: false })?.isDirectory()) {
    throw new NydusError('ERR_VIRTIOFSD', `virtiofsd source ${opts.source} is not a directory`);
  }
  const ownDir = opts.socketPath ? undefined : mkdtempSync(join(tmpdir(), 'nydus-vfsd-'));
  const socket = opts.socketPath ?? join(ownDir ?? '', 'virtiofsd.sock');
  const args = [`--socket-path=${socket}`, '-o', `source=${opts.source}`, '-o', `cache=${opts.cache ?? 'auto'}`,
    ...(opts.extraArgs ?? [])];
  // pdeathsig: a crashed or killed test runner must not leave virtiofsd behind.
  const child: ChildProcess = existsSync(kSetpriv)
    ? spawn(kSetpriv, ['--pdeathsig', 'KILL', '--', kVirtiofsd, ...args], { stdio: ['ignore', 'ignore', 'pipe'] })
    : spawn(kVirtiofsd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (s: string) => {
    if (stderr.length < 1 << 20) stderr += s;
  });
  let done = false;
  const exited = new Promise<number | string>((resolve) => {
    child.on('close', (code, sig) => {
      done = true;
      resolve(code ?? sig ?? 'unknown');
    });
    child.on('error', (err) => {
      done = true;
      stderr += `${err.message}\n`;
      resolve('spawn-error');
    });
  });
  const cleanup = (): void => {
    if (ownDir) rmSync(ownDir, { recursive: true, force: true });
  };
  const stop = async (): Promise<void> => {
    if (!done) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 2000);
      await exited;
      clearTimeout(timer);
    }
    cleanup();
  };

  const deadline = Date.now() + (opts.startTimeoutMs ?? 10_000);
  while (!unixSocketListening(socket)) {
    if (done || Date.now() > deadline) {
      await stop();
      throw new NydusError('ERR_VIRTIOFSD',
        `virtiofsd ${done ? `exited (${String(await exited)})` : 'did not create its socket in time'}: ${stderr.trim()}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  return { socket, pid: child.pid ?? -1, log: () => stderr, exited, stop };
}
