/** Starts `bin/nydusd` as a child process for tests and stops it the way a user would. */
import type { ChildProcess } from 'node:child_process';
import { spawn } from 'node:child_process';
import { delimiter, dirname, join } from 'node:path';

import { binDir } from './paths.js';

export interface RunningDaemon {
  proc: ChildProcess;
  /** Everything the daemon wrote to stderr so far. */
  log(): string;
  /** SIGTERM, then the exit status (SIGKILL after `timeoutMs`). */
  stop(timeoutMs?: number): Promise<number | null>;
  exited: Promise<number | null>;
}

/**
 * The environment of a child that runs bin/ executables the way users do (the file itself, whose
 * launcher execs `node` from PATH): this Node first on PATH, so the child runs the Node under test.
 */
export function binEnv(env: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return { ...process.env, PATH: `${dirname(process.execPath)}${delimiter}${process.env['PATH'] ?? ''}`, ...env };
}

/**
 * Spawns nydusd with `args` and resolves once it logs that it is ready (or rejects with its
 * log when it exits first or does not get ready in time). Like users and Kata, it execs
 * bin/nydusd itself (its bash launcher, then Node in the same process); `viaNode` runs
 * `node bin/nydusd` instead, the path without the launcher.
 */
export function startDaemon(args: string[], opts: { readyTimeoutMs?: number; env?: NodeJS.ProcessEnv; viaNode?: boolean } = {}): Promise<RunningDaemon> {
  const bin = join(binDir, 'nydusd');
  const proc = spawn(opts.viaNode === true ? process.execPath : bin, opts.viaNode === true ? [bin, ...args] : args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: binEnv(opts.env),
  });
  let log = '';
  proc.stdout?.setEncoding('utf8').on('data', (d: string) => (log += d));
  proc.stderr?.setEncoding('utf8').on('data', (d: string) => (log += d));
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  const daemon: RunningDaemon = {
    proc,
    log: () => log,
    exited,
    async stop(timeoutMs = 15_000): Promise<number | null> {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), timeoutMs);
      try {
        return await exited;
      } finally {
        clearTimeout(timer);
      }
    },
  };
  return new Promise((resolve, reject) => {
    const timeout = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`nydusd not ready after ${opts.readyTimeoutMs ?? 20_000} ms:\n${log}`));
    }, opts.readyTimeoutMs ?? 20_000);
    const check = (): void => {
      if (/ready in [\d.]+ ms/.test(log)) {
        clearTimeout(timeout);
        resolve(daemon);
      }
    };
    proc.stderr?.on('data', check);
    proc.stdout?.on('data', check);
    void exited.then((code) => {
      clearTimeout(timeout);
      reject(new Error(`nydusd exited with ${String(code)} before it was ready:\n${log}`));
    });
  });
}
