/**
 * The rule for a Unix socket path the daemon listens on (--apisock): a live listener there is
 * an error (another daemon owns it), a stale socket file (nobody accepts) is replaced, anything
 * else (a regular file, a directory) is never clobbered.
 */
import { access, constants as fsc, lstat, unlink } from 'node:fs/promises';
import { connect } from 'node:net';
import { dirname } from 'node:path';

import { UsageError } from '../../util/errors.js';

function probe(path: string, timeoutMs: number): Promise<'live' | 'stale' | 'gone'> {
  return new Promise((resolve, reject) => {
    const s = connect(path);
    const timer = setTimeout(() => {
      // Accepting nothing within the timeout but not refusing: something holds it.
      s.destroy();
      resolve('live');
    }, timeoutMs);
    s.once('connect', () => {
      clearTimeout(timer);
      s.destroy();
      resolve('live');
    });
    s.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      if (err.code === 'ECONNREFUSED') resolve('stale');
      else if (err.code === 'ENOENT') resolve('gone');
      else reject(err);
    });
  });
}

/** Makes `path` free for a new listener, or throws a UsageError naming `flag` and the reason. */
export async function claimSocketPath(path: string, flag: string, timeoutMs = 1000): Promise<void> {
  let st;
  try {
    st = await lstat(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new UsageError(`${flag} ${path}: cannot stat (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
    }
    try {
      await access(dirname(path), fsc.W_OK | fsc.X_OK);
    } catch (e) {
      throw new UsageError(`${flag} ${path}: cannot create a socket in ${dirname(path)} (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
    }
    return;
  }
  if (!st.isSocket()) throw new UsageError(`${flag} ${path}: exists and is not a socket`);
  let state: 'live' | 'stale' | 'gone';
  try {
    state = await probe(path, timeoutMs);
  } catch (err) {
    throw new UsageError(`${flag} ${path}: cannot probe the existing socket (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
  if (state === 'live') throw new UsageError(`${flag} ${path}: another process is listening on it`);
  if (state === 'stale') {
    try {
      await unlink(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
        throw new UsageError(`${flag} ${path}: cannot remove the stale socket (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
      }
    }
  }
}
