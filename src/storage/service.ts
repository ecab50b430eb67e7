/**
 * The storage stack of a daemon: one backend (with the shared retry/metrics wrapper), the cache
 * directory, shared counters, and per-image blob sources. Construction does every check that
 * can fail before serving starts (backend paths, cache dir creatable and writable).
 */
import { join } from 'node:path';

import { ConfigError, kUserAgent } from '../config/index.js';
import { kBlobFeatures } from '../rafs/layout/constants.js';
import { NotSupportedError } from '../util/errors.js';
import { fsCalls } from '../util/fs-calls.js';
import type { Logger } from '../util/logger.js';
import { nullLogger } from '../util/logger.js';
import type { BackendStats, RawBackend } from './backend.js';
import { BlobBackend, kLocalPolicy, remotePolicy } from './backend.js';
import type { CachedBlobOptions } from './blob-cache.js';
import { CachedBlob } from './blob-cache.js';
import type { HealthOptions } from './cache-health.js';
import { CacheWriteHealth, kDefaultSpillLimit, SpillBudget } from './cache-health.js';
import { ReadBufferPool } from './read-buffers.js';
import type { BlobSource } from './chunk-data.js';
import type { CacheCounters } from './counters.js';
import { newCounters } from './counters.js';
import { DemandTracker } from './demand.js';
import { kLocalReadaheadDefaults, kReadaheadDefaults } from './readahead.js';
import { DirectBlob } from './dummy-cache.js';
import { errnoCode, StorageError } from './contract/errors.js';
import { ImageStorage } from './image-storage.js';
import type { TransportOptions } from './http/transport.js';
import { LocalFsBackend } from './localfs.js';
import type { AuthUpdate } from './registry/auth.js';
import type { StorageSettings } from './settings.js';
import type { BlobInfo } from './types.js';

/**
 * Creates the cache directory if needed and proves it is a writable directory. `blocking`: with
 * synchronous calls, for a daemon's start (CreateBackendOptions.startup), same checks and errors.
 */
export async function prepareCacheDir(dir: string, key: string, blocking = false): Promise<void> {
  const fs = fsCalls(blocking);
  try {
    await fs.mkdir(dir, { recursive: true });
  } catch (err) {
    throw new ConfigError(`${key} ${dir}: cannot create the cache directory (${errnoCode(err)})`, { cause: err });
  }
  if (!(await fs.stat(dir)).isDirectory()) throw new ConfigError(`${key} ${dir}: not a directory`);
  const probe = join(dir, `.nydusd-probe-${process.pid}-${Date.now()}`);
  try {
    await fs.writeFile(probe, '', { flag: 'wx' });
    await fs.unlink(probe);
  } catch (err) {
    throw new ConfigError(`${key} ${dir}: the cache directory is not writable (${errnoCode(err)})`, { cause: err });
  }
}

export interface CreateBackendOptions {
  /** Tests: name resolution override for network backends (e.g. OSS bucket host names). */
  lookup?: TransportOptions['lookup'];
  /** Tests: the spill bound and the cache write retry delay (cache-health.ts). */
  spillLimit?: number;
  cacheHealth?: HealthOptions;
  /**
   * The daemon's own start (lifecycle.ts): nothing else runs on the event loop yet, so the
   * one-shot checks of backend paths and the cache directory are synchronous calls, where each
   * trip through Node's thread pool cost a start about a millisecond (more on a busy machine).
   * Storage made while guests are served (API mounts) keeps them asynchronous.
   */
  startup?: boolean;
}

/**
 * The network and disk backends are loaded on first use: a plain localfs start must not pay for
 * undici (start-up budget; test/integration/daemon-startup.test.ts).
 */
async function createRaw(settings: StorageSettings, log: Logger, o: CreateBackendOptions): Promise<RawBackend> {
  const b = settings.backend;
  const at = settings.backendKey;
  const net: TransportOptions = { at, headers: settings.headers ?? { 'User-Agent': kUserAgent }, log, ...(o.lookup ? { lookup: o.lookup } : {}) };
  switch (b.type) {
    case 'localfs':
      return LocalFsBackend.create(b.config, at, o.startup === true);
    case 'localdisk': {
      const { LocalDiskBackend } = await import('./localdisk.js');
      return LocalDiskBackend.create(b.config, at, log);
    }
    case 'http-proxy': {
      const { HttpProxyBackend } = await import('./http-proxy.js');
      return HttpProxyBackend.create(b.config, net);
    }
    case 'registry':
    case 's3':
    case 'oss': {
      const { Transport } = await import('./http/transport.js');
      const t = await Transport.create(b.config, net);
      try {
        if (b.type === 'registry') {
          const { RegistryBackend } = await import('./registry/registry.js');
          return new RegistryBackend(b.config, t, log, at);
        }
        const { ObjectStorageBackend } = await import('./object/object-storage.js');
        return b.type === 's3' ? ObjectStorageBackend.s3(b.config, t, at) : ObjectStorageBackend.oss(b.config, t, at);
      } catch (err) {
        await t.close();
        throw err;
      }
    }
  }
}

export async function createBackend(settings: StorageSettings, log: Logger, o: CreateBackendOptions = {}): Promise<BlobBackend> {
  const b = settings.backend;
  const raw = await createRaw(settings, log, o);
  const policy = b.type === 'localfs' || b.type === 'localdisk' ? kLocalPolicy : remotePolicy(b.config.retry_limit);
  return new BlobBackend(raw, policy, log);
}

/** What `PUT /api/v1/config` may change at runtime (upstream key `registry_auth` = `auth`). */
export type RegistryAuthUpdate = AuthUpdate;

const kUnsupportedBlobFeatures: readonly [number, string][] = [
  [kBlobFeatures.ZRAN, 'zran (targz-ref) blobs'],
  [kBlobFeatures.BATCH, 'batch chunks'],
  [kBlobFeatures.ENCRYPTED, 'encrypted blobs'],
  [kBlobFeatures.EXTERNAL, 'external blobs'],
];

export interface OpenImageOptions {
  /** Per blob index: chunk metadata by chunk index, used to amplify reads. */
  chunkLookup?: (blobIndex: number) => CachedBlobOptions['chunkLookup'];
}

export class StorageService {
  readonly counters: CacheCounters = newCounters();
  /** On-demand reads in flight over every image (prefetch of any image yields to them). */
  readonly demand = new DemandTracker();
  private readonly _images = new Set<ImageStorage>();
  /** One cache directory: write failures and the spill bound are shared by its blobs. */
  private readonly _spill: SpillBudget;
  private readonly _health: CacheWriteHealth;
  /** Local backends read fetched ranges into reused memory (read-buffers.ts). */
  readonly readBuffers = new ReadBufferPool();

  private constructor(
    readonly settings: StorageSettings,
    readonly backend: BlobBackend,
    private readonly _log: Logger,
    o: CreateBackendOptions,
  ) {
    this._spill = new SpillBudget(o.spillLimit ?? kDefaultSpillLimit);
    const dir = settings.cache.kind === 'blobcache' ? settings.cache.workDir : '';
    this._health = new CacheWriteHealth(dir, _log.child('cache'), this._spill.limit, o.cacheHealth);
  }

  static async create(settings: StorageSettings, log: Logger = nullLogger(), o: CreateBackendOptions = {}): Promise<StorageService> {
    const backend = await createBackend(settings, log.child('backend'), o);
    try {
      if (settings.cache.kind === 'blobcache') await prepareCacheDir(settings.cache.workDir, settings.cache.workDirKey, o.startup === true);
    } catch (err) {
      await backend.close();
      throw err;
    }
    return new StorageService(settings, backend, log, o);
  }

  private async _openBlob(info: BlobInfo, opts: OpenImageOptions): Promise<BlobSource> {
    for (const [bit, what] of kUnsupportedBlobFeatures) {
      if ((info.features & bit) !== 0) throw new NotSupportedError(`blob ${info.blobId}: ${what}`);
    }
    const { cache, validate, batchSize } = this.settings;
    // Readahead hides the round trip of network backends, and for local ones the chain each
    // miss pays before its decode starts (readahead.ts).
    const local = this.backend.type === 'localfs' || this.backend.type === 'localdisk';
    const readahead = local ? kLocalReadaheadDefaults : kReadaheadDefaults;
    const ctx = { backend: this.backend, validate, batchSize, counters: this.counters, log: this._log.child('cache'), demand: this.demand, readahead };
    const buffers = local ? { buffers: this.readBuffers } : {};
    // v5 images without the extended blob table do not say how many chunks a blob has, so
    // there is no chunk map to size; upstream keeps such blobs uncached too.
    if (cache.kind === 'dummycache' || info.chunkCount === 0 || (info.features & kBlobFeatures.V5_NO_EXT_BLOB_TABLE) !== 0) {
      return new DirectBlob(info, ctx);
    }
    const lookup = opts.chunkLookup?.(info.index);
    try {
      return await CachedBlob.open(info, { ...ctx, ...buffers, workDir: cache.workDir, health: this._health, spill: this._spill, format: cache.format }, lookup ? { chunkLookup: lookup } : {});
    } catch (err) {
      // A cache that cannot be used (full disk, damaged files another nydusd holds, permissions)
      // must not fail the mount: the blob is served straight from the backend.
      if (!(err instanceof StorageError) || err.code !== 'ERR_CACHE_FILE') throw err;
      ctx.log.warn(`${err.message}; serving blob ${info.blobId} from the backend without a cache`);
      return new DirectBlob(info, ctx);
    }
  }

  /** Opens the blobs of one image (in blob table order). */
  async openImage(blobs: readonly BlobInfo[], opts: OpenImageOptions = {}): Promise<ImageStorage> {
    const opened: BlobSource[] = [];
    try {
      for (const b of blobs) opened.push(await this._openBlob(b, opts));
    } catch (err) {
      await Promise.allSettled(opened.map((o) => o.close()));
      throw err;
    }
    const image = new ImageStorage(opened);
    this._images.add(image);
    const close = image.close.bind(image);
    image.close = async (): Promise<void> => {
      this._images.delete(image);
      await close();
    };
    return image;
  }

  stats(): { backend: BackendStats; cache: CacheCounters } {
    return { backend: this.backend.stats(), cache: { ...this.counters } };
  }

  /**
   * Hot reload of registry credentials (`PUT /api/v1/config` with `registry_auth`, which is
   * `auth`; or a new `registry_token`). Takes effect for the next request; never logs a value.
   * Returns false when the backend is not a registry (nothing to apply); throws a ConfigError
   * when `auth` is not base64 of "user:password".
   */
  reloadAuth(update: RegistryAuthUpdate): boolean {
    const raw = this.backend.raw as RawBackend & { reloadAuth?: (u: AuthUpdate) => void };
    if (this.backend.type !== 'registry' || typeof raw.reloadAuth !== 'function') return false;
    raw.reloadAuth(update);
    this._log.info(`registry credentials reloaded (${[update.auth !== undefined ? 'auth' : '', update.registry_token !== undefined ? 'registry_token' : ''].filter(Boolean).join(', ') || 'nothing'})`);
    return true;
  }

  /** Closes every open image (waiting for running fills) and the backend. */
  async close(): Promise<void> {
    await Promise.allSettled([...this._images].map((i) => i.close()));
    const { connections } = this.backend.stats();
    await this.backend.close();
    this.readBuffers.trim();
    if (this.backend.raw.connectionsOpened !== undefined) this._log.info(`backend ${this.backend.type}: ${connections} connection(s) opened`);
  }
}

