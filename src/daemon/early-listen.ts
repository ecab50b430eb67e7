/**
 * The vhost-user socket, listening from early in a start. A VMM (or any frontend) only needs the
 * socket to listen before it connects; what it then sends waits in the socket until the backend
 * accepts. So a virtio-fs daemon binds and listens as soon as its checks have passed, and builds
 * its storage and mounts the image while a frontend starts and connects; the backend accepts on
 * this socket once the image is mounted (serve-vfs.ts), so the first request already sees it, as
 * when the socket was only created then. The daemon owns the socket until the serve step takes
 * it; whoever holds it last closes it and removes the file (close(), idempotent).
 */
import { closeSync, lstatSync, unlinkSync } from 'node:fs';

import { listenUnixSocket } from '../native/index.js';
import type { Logger } from '../util/logger.js';
import type { DaemonOptions } from './options.js';

export interface EarlyListener {
  readonly fd: number;
  readonly path: string;
  /** Closes the socket and removes its file (only while the file is still this socket). */
  close(): void;
}

/** Whether `o` serves virtio-fs on a --sock path (not FUSE, not an inherited --fd). */
export function listensEarly(o: DaemonOptions): o is DaemonOptions & { socketPath: string } {
  return o.mode === 'virtiofs' && o.listenFd === undefined && o.socketPath !== undefined;
}

/** Binds and listens on --sock (checkTransportTarget has claimed the path). */
export function listenEarly(path: string, log: Logger): EarlyListener {
  const fd = listenUnixSocket(path);
  let ino: number | undefined;
  try {
    ino = lstatSync(path).ino;
  } catch {
    // Removed under us already: close() then leaves the path alone.
  }
  if (log.debugEnabled) log.debug(`${path}: listening ${performance.now().toFixed(1)} ms after the process started; connections are accepted once the image is mounted`);
  let open = true;
  return {
    fd,
    path,
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
