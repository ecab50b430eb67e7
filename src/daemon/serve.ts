/**
 * The step that turns a prepared daemon into a serving one: build the filesystem (serve-vfs.ts:
 * the pseudo root, with --bootstrap mounted at --virtual-mountpoint) and attach the transport
 * (FUSE mount at options.mountpoint, or the vhost-user socket). Injected, so tests can stand in.
 */
import type { FuseSession } from '../fuse/index.js';
import type { Vfs } from '../fs/index.js';
import type { StorageService, StorageSettings } from '../storage/index.js';
import type { Logger } from '../util/logger.js';
import type { EarlyListener } from './early-listen.js';
import type { MountTable } from './mounts.js';
import type { DaemonOptions } from './options.js';

export interface ServeContext {
  options: DaemonOptions;
  /**
   * With --bootstrap: the storage of --config, backend checked and cache directory ready (the
   * bootstrap's mount uses it). Undefined for a daemon started without an image.
   */
  storage: StorageService | undefined;
  log: Logger;
  /**
   * The --sock socket, already listening (early-listen.ts): the transport accepts on it, and from
   * then on the serve step closes it (after the transport stopped, on failure too).
   */
  listener?: EarlyListener;
  /** Tests: how mounts made through the API build their storage. */
  createStorage?: (settings: StorageSettings, log: Logger) => Promise<StorageService>;
}

export interface RunningService {
  /** Settles when the service ends on its own: resolves (e.g. unmounted from outside), rejects on a fatal error. */
  readonly done: Promise<void>;
  /** Orderly stop: unmount / close the socket, answer or drop outstanding requests. Idempotent. */
  stop(): Promise<void>;
  /** The mount table, for the API (absent in stand-in services: mount routes then answer 501). */
  readonly mounts?: MountTable;
  readonly vfs?: Vfs;
  readonly session?: FuseSession;
}

export type ServeStep = (ctx: ServeContext) => Promise<RunningService>;
