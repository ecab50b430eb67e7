/**
 * The two servers the suite compares, started the way users start them:
 *  - ours: `bin/nydusd virtiofs --config C --bootstrap B --sock S` (localfs backend + blobcache),
 *  - the peer: QEMU's C virtiofsd `--socket-path=S -o source=DIR -o cache=auto` (its defaults
 *    otherwise, e.g. its thread pool). virtiofsd serves one connection and exits, so every
 *    driver run gets a fresh one; ours keeps listening and serves connection after connection.
 * Both run under `setpriv --pdeathsig KILL` so a killed suite leaves nothing behind.
 */
import type { ChildProcess } from 'node:child_process';
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { delimiter, dirname, join } from 'node:path';

import { kVirtiofsd } from '../../qemu/virtiofsd.js';
import { binDir } from '../../test/helpers/paths.js';
import { driverJson, sleep, waitForListener } from './proc.js';

const kSetpriv = '/usr/bin/setpriv';

export interface Server {
  name: 'ours' | 'virtiofsd';
  socket: string;
  pid: number;
  /** ms from spawn to the socket listening (file exists and listen() done, from /proc/net/unix). */
  socketMs: number;
  /** ms from spawn to the end of the first `info` (only when started with `probe`). */
  readyMs?: number;
  /** nydusd's own "ready in X ms" (from its log), when it printed one. */
  selfReadyMs?: number;
  log: () => string;
  stop: () => Promise<void>;
}

export interface OursImage {
  bootstrap: string;
  blobDir: string;
  /** blobcache work_dir (warm when it already holds the data). */
  cacheDir: string;
  /** Another backend (config v1 `device.backend`) instead of localfs on blobDir. */
  backend?: { type: string; config: Record<string, unknown> };
}

interface Spawned {
  child: ChildProcess;
  exited: Promise<void>;
  log: () => string;
  stop: () => Promise<void>;
}

function spawnServer(cmd: string, args: string[], logFile: string, env?: NodeJS.ProcessEnv): Spawned {
  const full = existsSync(kSetpriv) ? [kSetpriv, '--pdeathsig', 'KILL', '--', cmd, ...args] : [cmd, ...args];
  // The log goes to a file: a full pipe must never stall a server under measurement.
  const fd = openSync(logFile, 'w');
  const child = spawn(full[0] as string, full.slice(1), { stdio: ['ignore', fd, fd], ...(env ? { env } : {}) });
  closeSync(fd);
  const exited = new Promise<void>((resolve) => {
    child.on('close', () => resolve());
    child.on('error', () => resolve());
  });
  const log = (): string => {
    try {
      return readFileSync(logFile, 'utf8');
    } catch {
      return '';
    }
  };
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(t);
    }
  };
  return { child, exited, log, stop };
}

/**
 * After the socket listens, one `info` (a whole frontend session: vhost-user negotiation, FUSE
 * INIT, GETATTR, STATFS, DESTROY) proves the server answers. A refused connect creates no
 * frontend, so that one (should listen() have been missed) is retried.
 */
async function probe(socket: string): Promise<void> {
  for (let i = 0; ; i++) {
    try {
      await driverJson(socket, ['info']);
      return;
    } catch (err) {
      if (i < 200 && /refused/i.test(String(err))) {
        await sleep(1);
        continue;
      }
      throw err;
    }
  }
}

async function started(name: Server['name'], s: Spawned, socket: string, t0: bigint, withProbe: boolean): Promise<Server> {
  const ms = (): number => Number(process.hrtime.bigint() - t0) / 1e6;
  try {
    await waitForListener(socket, 60_000, s.exited);
  } catch (err) {
    await s.stop();
    throw new Error(`${name} did not start: ${String(err)}\n${s.log().slice(-2000)}`, { cause: err });
  }
  const socketMs = ms();
  let readyMs: number | undefined;
  // Ours serves connection after connection, so it is always probed: the first measured
  // connection then never races its listen(). virtiofsd only when asked (it serves one).
  if (withProbe || name === 'ours') {
    try {
      await probe(socket);
    } catch (err) {
      await s.stop();
      throw new Error(`${name} does not answer: ${String(err)}\n${s.log().slice(-2000)}`, { cause: err });
    }
    readyMs = ms();
  }
  const self = /ready in ([\d.]+) ms/.exec(s.log());
  const server: Server = { name, socket, pid: s.child.pid ?? 0, socketMs, log: s.log, stop: s.stop };
  if (readyMs !== undefined) server.readyMs = readyMs;
  if (self?.[1] !== undefined) server.selfReadyMs = Number(self[1]);
  return server;
}

/** Starts our nydusd on `image`; with `probe`, also measures start-to-ready (see probe()). */
export async function startOurs(workDir: string, image: OursImage, opts: { probe?: boolean } = {}): Promise<Server> {
  const dir = mkdtempSync(join(workDir, 'ours-'));
  const socket = join(dir, 'vhost.sock');
  const cfg = join(dir, 'config.json');
  writeFileSync(cfg, JSON.stringify({
    device: {
      backend: image.backend ?? { type: 'localfs', config: { dir: image.blobDir } },
      cache: { type: 'blobcache', config: { work_dir: image.cacheDir } },
    },
  }));
  // bin/nydusd itself, as users and Kata start it (its launcher execs Node), with this Node
  // first on PATH so the launcher runs the Node of the bench.
  const env = { ...process.env, PATH: `${dirname(process.execPath)}${delimiter}${process.env['PATH'] ?? ''}` };
  const t0 = process.hrtime.bigint();
  const s = spawnServer(join(binDir, 'nydusd'), ['virtiofs', '--config', cfg, '--bootstrap', image.bootstrap, '--sock', socket],
    join(dir, 'nydusd.log'), env);
  return started('ours', s, socket, t0, opts.probe ?? false);
}

/** Starts virtiofsd on `source`; it serves exactly one connection. */
export async function startPeer(workDir: string, source: string, opts: { probe?: boolean } = {}): Promise<Server> {
  const dir = mkdtempSync(join(workDir, 'peer-'));
  const socket = join(dir, 'vhost.sock');
  const t0 = process.hrtime.bigint();
  const s = spawnServer(kVirtiofsd, [`--socket-path=${socket}`, '-o', `source=${source}`, '-o', 'cache=auto'], join(dir, 'virtiofsd.log'));
  return started('virtiofsd', s, socket, t0, opts.probe ?? false);
}

/** Why the peer cannot run here, or false. */
export function peerSkip(): string | false {
  if (!existsSync(kVirtiofsd)) return `${kVirtiofsd} not found (apt-get install qemu-system-common)`;
  if (process.getuid?.() !== 0) return 'virtiofsd needs root for its sandbox';
  return false;
}
