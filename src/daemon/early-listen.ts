/**
 * The vhost-user socket, listening from early in a start. A VMM (or any frontend) only needs the
 * socket to listen before it connects; what it then sends waits in the socket until the backend
 * accepts. So a virtio-fs daemon binds and listens as soon as the path is known to be usable, and
 * loads its configuration, builds its storage and mounts the image while a frontend starts and
 * connects; the backend accepts on this socket once the image is mounted (serve-vfs.ts), so the
 * first request already sees it, as when the socket was only created then. The CLI listens right
 * after the flags are checked (claimFreeSocket), the daemon itself otherwise (lifecycle.ts, after
 * its checks). Whoever holds the socket last closes it and removes the file: the daemon until the
 * serve step takes it, the serve step from then on (close() is idempotent).
 */
import { accessSync, closeSync, constants as fsc, lstatSync, unlinkSync } from 'node:fs';
import { dirname } from 'node:path';

import { listenUnixSocket } from '../native/index.js';
import type { DaemonOptions } from './options.js';

export interface EarlyListener {
  readonly fd: number;
  readonly path: string;
  /** When listen() returned, in ms since the process started (for the debug log). */
  readonly listenedAtMs: number;
  /** Closes the socket and removes its file (only while the file is still this socket). */
  close(): void;
}

type Transport = Pick<DaemonOptions, 'mode' | 'socketPath' | 'listenFd'>;

/** Whether `o` serves virtio-fs on a --sock path (not FUSE, not an inherited --fd). */
export function listensEarly<T extends Transport>(o: T): o is T & { socketPath: string } {
  return o.mode === 'virtiofs' && o.listenFd === undefined && o.socketPath !== undefined;
}

/** Binds and listens on `path`, which the caller has claimed (prepare.ts checkTransportTarget). */
export function listenEarly(path: string): EarlyListener {
  const fd = listenUnixSocket(path);
  const listenedAtMs = process.uptime() * 1000;
  let ino: number | undefined;
  try {
    ino = lstatSync(path).ino;
  } catch {
    // Removed under us already: close() then leaves the path alone.
  }
  let open = true;
  return {
    fd,
    path,
    listenedAtMs,
    close(): void {
      if (!open) return;
      open = false;
      closeSync(fd);
      try {
        // Never another process's socket that took the path meanwhile.
        if (ino !== undefined && lstatSync(path).ino === ino) unlinkSync(path);
      } catch {
        // Already gone.
      }
    },
  };
}

/**
 * The CLI's listen, before the configuration is loaded: only where the daemon's own check would
 * pass without a doubt (nothing at the path, its directory takes a socket), so every refusal keeps
 * its message and its order. Anything else returns undefined and the daemon checks and listens
 * itself, as it does for in-process users.
 */
export function claimFreeSocket(o: Transport): EarlyListener | undefined {
  if (!listensEarly(o)) return undefined;
  try {
    accessSync(dirname(o.socketPath), fsc.W_OK | fsc.X_OK);
    if (lstatSync(o.socketPath, { throwIfNoEntry: false }) !== undefined) return undefined;
    return listenEarly(o.socketPath);
  } catch {
    return undefined;
  }
}
