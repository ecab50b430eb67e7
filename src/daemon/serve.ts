/**
 * The step that turns a prepared daemon into a serving one: open the bootstrap with the RAFS
 * reader, build the filesystem over it and `ImageStorage`, and attach the transport (FUSE mount
 * at options.mountpoint, or the vhost-user socket). The filesystem layer provides it; until it
 * lands every run stops here with "not supported yet" (exit status 2).
 */
import type { StorageService } from '../storage/index.js';
import { NotSupportedError } from '../util/errors.js';
import type { Logger } from '../util/logger.js';
import type { DaemonOptions } from './options.js';

export interface ServeContext {
  options: DaemonOptions;
  /** Backend checked and cache directory ready; open the image's blobs with storage.openImage(). */
  storage: StorageService;
  log: Logger;
}

export interface RunningService {
  /** Settles when the service ends on its own: resolves (e.g. unmounted from outside), rejects on a fatal error. */
  readonly done: Promise<void>;
  /** Orderly stop: unmount / close the socket, answer or drop outstanding requests. Idempotent. */
  stop(): Promise<void>;
}

export type ServeStep = (ctx: ServeContext) => Promise<RunningService>;

export const serveNotSupported: ServeStep = () => Promise.reject(new NotSupportedError('serving RAFS images'));
