/**
 * Kinds of filesystem the mount table can attach (API `fs_type`): each kind validates a mount
 * request and builds a filesystem instance that is ready to serve but not attached yet, so a
 * request that fails leaves nothing behind. RAFS images are built by rafs-mount.ts; the writable
 * passthrough filesystem (upstream `passthrough_fs`, which Kata mounts at /containers) is built by
 * passthrough-mount.ts: it shares the pseudo root, the node-id slots (fs/node-space.ts) and the
 * metrics, but its requests are answered in C++ inside the FUSE session (no JavaScript on its
 * path), so it attaches and detaches itself natively too (`detach`).
 */
import type { LoadedConfig, NydusConfig } from '../config/index.js';
import type { FuseSession } from '../fuse/index.js';
import type { VfsMount } from '../fs/index.js';
import type { RegistryAuthUpdate, StorageService, StorageSettings } from '../storage/index.js';
import type { UpstreamPrefetchStats } from '../storage/prefetch/index.js';
import { NydusError } from '../util/errors.js';
import type { Logger } from '../util/logger.js';
import type { BlobSlots } from './slots.js';

/** Why a mount-table operation failed (the API maps these to upstream's errors). */
export type MountErrorReason = 'exists' | 'not-found' | 'invalid' | 'full' | 'failed';

export class MountError extends NydusError {
  constructor(
    readonly reason: MountErrorReason,
    message: string,
    options: { cause?: unknown } = {},
  ) {
    super(`ERR_MOUNT_${reason.toUpperCase().replace('-', '_')}`, message, options);
    this.name = 'MountError';
  }
}

/** A mount request: the API body (or `--bootstrap` at start). */
export interface MountSpec {
  /** Canonical absolute path in the pseudo root ("/", "/rafs/x/lowerdir"). */
  mountpoint: string;
  /** Upstream spelling: "rafs", "passthrough_fs" (or "passthrough", "passthroughfs"). */
  fsType: string;
  source: string;
  /** The `config` string of the API body, or the configuration loaded from --config. */
  config: { text: string } | { loaded: LoadedConfig };
  prefetchFiles?: readonly string[] | undefined;
  /** `--writable`: serve the image's overlay section read-write (needs upper_dir and work_dir). */
  writable?: boolean | undefined;
}

/** What every kind may use while building an instance. */
export interface MountContext {
  session: FuseSession;
  blobSlots: BlobSlots;
  log: Logger;
  /** IMAGE_PULL_AUTH (applied to registry backends). */
  imagePullAuth: string | undefined;
  /** Headers on every request of a network backend (User-Agent, NYDUS_HEADER_*). */
  backendHeaders?: Record<string, string> | undefined;
  /** Tests: replace the storage construction. */
  createStorage?: (settings: StorageSettings, log: Logger) => Promise<StorageService>;
  /** The storage built from --config at start (used, not owned, by the --bootstrap mount). */
  sharedStorage?: StorageService;
}

/** Upstream's backend metrics shape (utils/src/metrics.rs BackendMetrics). */
export interface BackendMetricsJson {
  backend_type: string;
  read_count: number;
  read_errors: number;
  read_amount_total: number;
  read_cumulative_latency_millis_total: number;
  read_cumulative_latency_millis_dist: number[];
  read_count_block_size_dist: number[];
  read_latency_sizes_dist: number[][];
}

/** Upstream's blob cache metrics shape (BlobcacheMetrics). */
export interface BlobcacheMetricsJson extends UpstreamPrefetchStats {
  underlying_files: string[];
  store_path: string;
  partial_hits: number;
  whole_hits: number;
  total: number;
  entries_count: number;
  buffered_backend_size: number;
  data_all_ready: boolean;
}

/** A filesystem built by a kind, ready to be attached at a slot. */
export interface MountedFilesystem extends VfsMount {
  /** `backend_type` in the daemon info: "Rafs" or "PassthroughFs". */
  readonly backendType: 'Rafs' | 'PassthroughFs';
  readonly source: string;
  /** The normalized configuration (v2 shape); shown redacted. Undefined for passthrough. */
  readonly config: NydusConfig | undefined;
  /** Metrics id of the backend and cache (config `id`, v1 `device.id`; else the mountpoint). */
  readonly metricsId: string;
  /** Native blob slots the instance registered (unregistered by the mount table). */
  readonly blobSlots: readonly number[];
  /** Per-file metrics switches of the configuration (shown as upstream's flags). */
  readonly fileMetrics: { iostatsFiles: boolean; accessPattern: boolean; latestReadFiles: boolean };
  /** The RAFS super block as upstream's RafsSuperMeta (GET /api/v1/daemon/backend). */
  superMeta?(): Record<string, unknown>;
  backendMetrics?(): BackendMetricsJson;
  /** Undefined when the instance has no blob cache (dummycache). */
  blobcacheMetrics?(readRequests: number): BlobcacheMetricsJson | undefined;
  /** READs that waited for the backend (read misses) and READs served in JavaScript. */
  readCounters?(): { readMisses: number; jsReads: number };
  /**
   * Registry credential hot reload (PUT /api/v1/config `registry_auth`): StorageService.reloadAuth
   * of the mount's storage. False when its backend is not a registry; throws a ConfigError when
   * the credential is not base64 of "user:password".
   */
  reloadAuth?(update: RegistryAuthUpdate): boolean;
  /**
   * Umount step 1 for a filesystem served natively: from now on no new request reaches it
   * (requests already inside finish). Called by the mount table when it detaches the mount.
   */
  detach?(): void;
  /**
   * Served read-write by the handler (the writable overlay): the session must send its nodes'
   * mutating requests up and never remember their answers.
   */
  readonly writable?: boolean;
  /** Releases everything the instance holds (storage, image); after the table detached it. */
  close(): Promise<void>;
}

export type MountBuilder = (spec: MountSpec, slot: number, ctx: MountContext) => Promise<MountedFilesystem>;

/** `fs_type` as upstream parses it (service/src/lib.rs FsBackendType::from_str). */
export function kindOf(fsType: string): 'rafs' | 'passthrough_fs' | undefined {
  if (fsType === 'rafs') return 'rafs';
  if (fsType === 'passthrough' || fsType === 'passthroughfs' || fsType === 'passthrough_fs') return 'passthrough_fs';
  return undefined;
}
