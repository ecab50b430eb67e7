/**
 * Scheduling noise next to an event-loop measurement: an idle loop in another process sampled
 * over the same window (loop-probe-child.ts), and what the measuring thread itself spent on a CPU
 * and waiting for one (/proc/thread-self/schedstat). A loop that blocks on its own work shows a
 * worst delay above the probe's with CPU time to match; one that waited for a CPU shows the wait.
 */
import { fork } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { projectRoot } from '../../test/helpers/paths.js';

export type ProbeRequest = 'begin' | 'end' | 'exit';
export type ProbeReply = 'ready' | { maxMs: number; p99Ms: number };

export interface ProbeResult {
  maxMs: number;
  p99Ms: number;
}

/** Time the calling thread ran and waited runnable, in ms (Linux schedstat); undefined elsewhere. */
export function threadSchedMs(): { runMs: number; waitMs: number } | undefined {
  try {
    const [run, wait] = readFileSync('/proc/thread-self/schedstat', 'utf8').trim().split(/\s+/).map(Number);
    if (run === undefined || wait === undefined || !Number.isFinite(run) || !Number.isFinite(wait)) return undefined;
    return { runMs: run / 1e6, waitMs: wait / 1e6 };
  } catch {
    return undefined;
  }
}

export class LoopProbe {
  private constructor(private readonly _child: ChildProcess) {}

  static async start(): Promise<LoopProbe> {
    const child = fork(join(projectRoot, 'dist', 'bench', 'loop-probe-child.js'), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', resolve);
      child.once('error', reject);
    });
    return new LoopProbe(child);
  }

  private _ask(m: ProbeRequest): Promise<ProbeReply> {
    return new Promise((resolve, reject) => {
      const onExit = (): void => reject(new Error('the loop probe exited'));
      this._child.once('exit', onExit);
      this._child.once('message', (r: ProbeReply) => {
        this._child.off('exit', onExit);
        resolve(r);
      });
      this._child.send(m);
    });
  }

  /** Starts sampling; resolves once the probe's histogram runs. */
  async begin(): Promise<void> {
    await this._ask('begin');
  }

  async end(): Promise<ProbeResult> {
    const r = await this._ask('end');
    if (r === 'ready') throw new Error('the loop probe answered out of turn');
    return r;
  }

  async close(): Promise<void> {
    if (this._child.exitCode !== null || this._child.signalCode !== null) return;
    const exited = new Promise((r) => this._child.once('exit', r));
    this._child.send('exit');
    await exited;
  }
}
