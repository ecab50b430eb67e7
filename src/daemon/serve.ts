/**
 * The contract of the step that turns a prepared daemon into a serving one: open the bootstrap
 * with the RAFS reader, build the filesystem over it and `ImageStorage`, and attach the
 * transport (FUSE mount at options.mountpoint, or the vhost-user socket). serve-rafs.ts is the
 * step nydusd runs; tests inject their own through DaemonDeps.serve.
 */
import type { StorageService } from '../storage/index.js';
import type { ImagePrefetch } from '../storage/prefetch/index.js';
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
  /** The image's prefetch (prefetchFiles(), stats() for the blobcache metrics). */
  readonly prefetch?: ImagePrefetch;
}

export type ServeStep = (ctx: ServeContext) => Promise<RunningService>;
