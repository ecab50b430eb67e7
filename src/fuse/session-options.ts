/** Options and result types of FuseSession (session.ts). */
import type { NativeChunkMap, NativeSessionStats } from '../native/index.js';

export interface FuseLogger {
  error(message: string): void;
  warn(message: string): void;
  debug?(message: string): void;
}

export interface FuseSessionOptions {
  /** Default seconds a LOOKUP/READDIRPLUS name may be cached (default 1). */
  entryTimeout?: number;
  /** Default seconds attributes may be cached (default 1). */
  attrTimeout?: number;
  logger?: FuseLogger;
  /**
   * The handler's answers to LOOKUP (including negative entries) and GETATTR never change, and
   * it keeps no lookup counts (it has no `forget`): repeats are then answered natively from a
   * cache without crossing to JavaScript. The cache is emptied on every INIT, DESTROY and
   * transport reset. Ignored when the handler has `forget`.
   */
  immutable?: boolean;
}

export interface FuseMountOptions {
  /** /dev/fuse worker threads (upstream --fuse-threads; default 4). */
  threads?: number;
  /** Let other users see the mount (needs root or user_allow_other); default: true as root. */
  allowOther?: boolean;
  /** Let the kernel check permissions from the attributes (default true). */
  defaultPermissions?: boolean;
  /** Mount read-only (MS_RDONLY; default true): false for writable filesystems (passthrough). */
  readOnly?: boolean;
  fsname?: string;
  subtype?: string;
  /**
   * How to mount: 'auto' (mount(2), falling back to fusermount3 when not permitted; default),
   * 'mount' (mount(2) only), 'fusermount' (always the fusermount3 helper).
   */
  method?: 'auto' | 'mount' | 'fusermount';
}

export interface FuseVirtioOptions {
  socketPath?: string;
  listenFd?: number;
  numRequestQueues?: number;
  maxQueueSize?: number;
}

export interface FuseBlob {
  /** The file holding the chunk bytes the extents' sourceOffset points into. */
  dataPath: string;
  /** The blob's chunk-ready bitmap, or null when every chunk is present. */
  chunkMap: NativeChunkMap | null;
}

export interface FuseCloseInfo {
  reason: 'stopped' | 'unmounted' | 'error';
  errno: number;
}

/** The native counters plus how many upcall batches (and records) crossed into JavaScript. */
export type FuseSessionStats = NativeSessionStats & { readonly jsBatches: number; readonly jsRecords: number };
