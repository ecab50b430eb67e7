/**
 * Taking a Unix socket path for a listener (nydusd --sock, the API's --apisock). bind() needs the
 * path free, so a leftover socket file must go, but only a stale one: unlinking the file of a
 * process that still listens there leaves that process running and unreachable, and a second
 * daemon would then delete the path on exit too. Liveness is probed with connect(), which works
 * whatever network namespace the other process is in (path sockets are found through the file
 * system). A probe to a live nydusd shows there as a frontend that connected and left at once.
 */
import { lstat, unlink } from 'node:fs/promises';

import { UsageError } from './errors.js';

export type SocketPathState = 'free' | 'stale' | 'live';

const kProbeTimeoutMs = 2000;

function code(err: unknown): string {
  return (err as NodeJS.ErrnoException).code ?? String(err);
}

/**
 * Whether a process listens on the socket file at `path`. Non-blocking connect() to a path socket
 * completes or fails at once: ECONNREFUSED means nobody listens; EAGAIN means a listener whose
 * backlog is full (a daemon busy with its one frontend), so it is alive.
 */
export function probeSocket(path: string, timeoutMs = kProbeTimeoutMs): Promise<SocketPathState> {
  return new Promise((resolve, reject) => {
    // node:net loads here, on first use: only a leftover socket file needs the probe.
    const s = process.getBuiltinModule('node:net').createConnection({ path });
    const done = (state: SocketPathState | Error): void => {
      clearTimeout(timer);
      s.destroy();
      if (state instanceof Error) reject(state);
      else resolve(state);
    };
    // A connect that neither completes nor fails is a listener that is there but slow: alive.
    const timer = setTimeout(() => done('live'), timeoutMs);
    s.once('connect', () => done('live'));
    s.once('error', (err) => {
      const c = code(err);
      if (c === 'ECONNREFUSED') done('stale');
      else if (c === 'EAGAIN') done('live');
      else if (c === 'ENOENT') done('free');
      else done(err);
    });
  });
}

/**
 * Makes `path` ready for bind(): free, or a stale socket file, which is removed. Refuses with a
 * UsageError (exit status 2) naming `flag` and the path when something else is there or a
 * process still listens on it. Call it right before binding.
 */
export async function claimSocketPath(path: string, flag: string): Promise<void> {
  let st;
  try {
    st = await lstat(path);
  } catch (err) {
    if (code(err) === 'ENOENT') return;
    throw new UsageError(`${flag} ${path}: cannot stat (${code(err)})`);
  }
  if (!st.isSocket()) throw new UsageError(`${flag} ${path}: exists and is not a socket`);
  let state: SocketPathState;
  try {
    state = await probeSocket(path);
  } catch (err) {
    throw new UsageError(`${flag} ${path}: cannot tell whether a process still listens on it (${code(err)})`);
  }
  if (state === 'live') {
    throw new UsageError(`${flag} ${path}: another process is listening on this socket (a nydusd already running?); stop it or choose another path`);
  }
  if (state === 'stale') {
    try {
      await unlink(path);
    } catch (err) {
      if (code(err) !== 'ENOENT') throw new UsageError(`${flag} ${path}: cannot remove the stale socket (${code(err)})`);
    }
  }
}
