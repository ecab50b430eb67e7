/**
 * Starts fuse-test-server.ts as a child process (a FuseSession with the in-memory test tree on a
 * vhost-user socket or a /dev/fuse mount) and waits for its READY line.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

import { projectRoot } from './paths.js';

export interface ServerProcess {
  pid: number;
  ready: Record<string, unknown>;
  /** Everything the server wrote to stderr so far (native logs, handler errors). */
  stderr(): string;
  /** Lines the server printed after READY (e.g. `CLOSED {...}`). */
  lines: string[];
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Closes the server's stdin (socket mode: the session stops and the process exits). */
  close(): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  kill(signal: NodeJS.Signals): void;
}

export async function startFuseServer(args: string[]): Promise<ServerProcess> {
  const child = spawn(process.execPath, [join(projectRoot, 'dist', 'test', 'helpers', 'fuse-test-server.js'), ...args], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let err = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d: string) => (err += d));
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  );
  const lines: string[] = [];
  const ready = await new Promise<Record<string, unknown>>((resolve, reject) => {
    createInterface({ input: child.stdout }).on('line', (l) => {
      if (l.startsWith('READY ')) resolve(JSON.parse(l.slice(6)) as Record<string, unknown>);
      else lines.push(l);
    });
    void exit.then((e) => reject(new Error(`fuse-test-server exited before READY (${JSON.stringify(e)}): ${err}`)));
  });
  return {
    pid: child.pid ?? -1,
    ready,
    stderr: () => err,
    lines,
    exit,
    close: () => {
      child.stdin.end();
      return exit;
    },
    kill: (signal) => child.kill(signal),
  };
}
