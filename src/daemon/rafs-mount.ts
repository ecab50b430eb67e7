/**
 * The RAFS kind of mount: an image (bootstrap + blobs) with its own storage (backend and blob
 * cache from the mount's configuration, the same validation as --config), served by a
 * RafsFilesystem whose blob caches are registered with the FUSE session under blob slots of
 * its own, so several images share the native READ fast path. Everything is built before the
 * mount table attaches it; a failure on the way releases what was built, in reverse. With an
 * `overlay` section the image is the lower layer of a read-only merged view (fs/overlay-fs.ts).
 */
import { realpath, stat } from 'node:fs/promises';

import { applyImagePullAuth, ConfigError, parseConfigText, validateConfig } from '../config/index.js';
import type { LoadedConfig, NydusConfig } from '../config/index.js';
import { kRafsV2Schema } from '../config/schema-v2.js';
import { defaultAttrPolicy, OverlayFilesystem, RafsFilesystem } from '../fs/index.js';
import type { RafsImage } from '../rafs/index.js';
import { openBootstrap } from '../rafs/index.js';
import type { ImageStorage, NativeBlobRegistration } from '../storage/index.js';
import { StorageService as Storage, storageSettings } from '../storage/index.js';
import { supplyBlobMeta } from '../storage/image-meta.js';
import { ImagePrefetch, upstreamPrefetchStats } from '../storage/prefetch/index.js';
import { NydusError, UsageError } from '../util/errors.js';
import { BackendRecorder } from './metrics.js';
import type { BlobcacheMetricsJson, MountBuilder, MountContext, MountedFilesystem, MountSpec } from './mount-kinds.js';
import { MountError } from './mount-kinds.js';
import { checkBootstrap, configNotes } from './prepare.js';

const kRafsV5Magic = 0x52414653;
const kErofsMagic = 0xe0f5e1e2;

function loadConfig(spec: MountSpec): LoadedConfig {
  if ('loaded' in spec.config) return spec.config.loaded;
  const source = `config of mount ${spec.mountpoint}`;
  if (spec.config.text.trim() === '') throw new UsageError(`${source}: empty (a RAFS mount needs a storage backend configuration)`);
  const loaded = parseConfigText(spec.config.text, source);
  validateConfig(loaded.config, loaded.origin, source);
  return loaded;
}

/**
 * The overlay's upper directory (config `overlay.upper_dir`, its real path), or undefined without
 * an overlay section. Without --writable (not supported yet) the merged view is served read-only
 * and `work_dir` is not used.
 */
async function overlayUpperDir(config: NydusConfig): Promise<string | undefined> {
  const o = config.overlay;
  if (!o) return undefined;
  if (o.upper_dir === '') throw new ConfigError('overlay.upper_dir is empty (the overlay section needs the upper directory)');
  try {
    const dir = await realpath(o.upper_dir);
    if (!(await stat(dir)).isDirectory()) throw new ConfigError(`overlay.upper_dir ${o.upper_dir}: not a directory`);
    return dir;
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    throw new ConfigError(`overlay.upper_dir ${o.upper_dir}: ${(err as { code?: string }).code ?? (err as Error).message}`, { cause: err });
  }
}

function openImage(path: string): RafsImage {
  try {
    return openBootstrap(path);
  } catch (err) {
    if (NydusError.is(err) && !err.message.includes(path)) throw new NydusError(err.code, `bootstrap ${path}: ${err.message}`, { cause: err });
    throw err;
  }
}

function superMeta(image: RafsImage, entryTimeout: number, attrTimeout: number): Record<string, unknown> {
  const s = image.super;
  const secs = (t: number): { secs: number; nanos: number } => ({ secs: Math.floor(t), nanos: Math.round((t % 1) * 1e9) });
  return {
    magic: s.version === 5 ? kRafsV5Magic : kErofsMagic,
    version: s.version === 5 ? 0x500 : 0x600,
    root_inode: s.rootRef,
    chunk_size: s.chunkSize,
    inodes_count: s.inodeCount,
    flags: s.flags,
    compressor: s.compressor,
    digester: s.digester,
    explicit_uid_gid: s.explicitUidGid,
    has_xattr: s.hasXattr,
    block_size: s.blockSize,
    meta_size: s.metaSize,
    blob_count: image.blobs.length,
    attr_timeout: secs(attrTimeout),
    entry_timeout: secs(entryTimeout),
  };
}

export const buildRafs: MountBuilder = async (spec: MountSpec, slot: number, ctx: MountContext): Promise<MountedFilesystem> => {
  const log = ctx.log.child(`mount ${spec.mountpoint}`);
  const loaded = loadConfig(spec);
  if ('text' in spec.config) {
    // A configuration given at start (--config) was reported by the daemon already.
    for (const w of loaded.warnings) log.warn(w);
    for (const n of configNotes(loaded.config)) log.warn(n);
  }
  const config = applyImagePullAuth(loaded.config, ctx.imagePullAuth);
  await checkBootstrap(spec.source, 'source');
  const upperDir = await overlayUpperDir(config);
  const settings = storageSettings(config, loaded.origin, ctx.backendHeaders);
  const rafs = config.rafs ?? kRafsV2Schema.parse({});
  const cleanup: (() => Promise<void> | void)[] = [];
  const unwind = async (): Promise<void> => {
    for (const f of cleanup.reverse()) {
      try {
        await f();
      } catch (err) {
        log.error(`releasing a failed mount: ${(err as Error).message}`);
      }
    }
  };
  try {
    let storage = ctx.sharedStorage;
    if (!storage) {
      const s = await (ctx.createStorage ?? Storage.create)(settings, log.child('storage'));
      cleanup.push(() => s.close());
      storage = s;
    }
    const recorder = new BackendRecorder(storage.backend.type);
    storage.backend.onRead = recorder.record;
    const image = openImage(spec.source);
    cleanup.push(() => image.close());
    if (rafs.mode === 'cached' && image.super.version === 6) {
      throw new UsageError('rafs.mode "cached" is only supported for RAFS v5 images; use "direct"');
    }
    const imageStorage: ImageStorage = await storage.openImage(image.blobs);
    cleanup.push(() => imageStorage.close());
    const cache = storage.settings.cache;
    await supplyBlobMeta(image, imageStorage, storage.backend, {
      // An encrypted cache checks (and, convergent, keys) every chunk by its digest.
      validate: storage.settings.validate || (cache.kind === 'blobcache' && cache.format?.encryption !== undefined),
      workDir: cache.kind === 'blobcache' ? cache.workDir : undefined,
      log: log.child('meta'),
    });
    const regs: NativeBlobRegistration[] = imageStorage.nativeRegistrations();
    const slots = ctx.blobSlots.take(regs.length);
    if (!slots) {
      throw new MountError('full', `the image has ${regs.length} cached blob(s) but only ${ctx.blobSlots.available} of the daemon's ${ctx.blobSlots.total} blob slots are free`);
    }
    cleanup.push(() => ctx.blobSlots.give(slots));
    const blobSlots: number[] = [];
    for (const [i, r] of regs.entries()) {
      const s = slots[i] as number;
      ctx.session.registerBlob(s, { dataPath: r.dataPath, chunkMap: r.chunkMap });
      cleanup.push(() => ctx.session.unregisterBlob(s));
      blobSlots[r.blobIndex] = s;
    }
    const session = ctx.session;
    const fs = new RafsFilesystem(image, imageStorage, {
      entryTimeout: rafs.entry_timeout,
      attrTimeout: rafs.attr_timeout,
      xattr: rafs.enable_xattr || image.super.hasXattr,
      policy: defaultAttrPolicy(),
      log: log.child('fs'),
      nativeBlobs: new Set(regs.map((r) => r.blobIndex)),
      blobSlots,
      chunksReady: (blobSlot, idx) => session.chunksReady(blobSlot, idx),
    });
    const served = upperDir === undefined ? fs : new OverlayFilesystem(fs, upperDir, { entryTimeout: rafs.entry_timeout, attrTimeout: rafs.attr_timeout, log: log.child('overlay') });
    if (upperDir !== undefined) log.info(`overlay: upper directory ${upperDir} over the image, served read-only (--writable is not supported yet)`);
    const owned = ctx.sharedStorage === undefined ? storage : undefined;
    const shared = storage;
    // Started once the filesystem exists: on-demand READs always go first, and umount (close)
    // stops it before the image's storage closes.
    const prefetch = ImagePrefetch.start({
      image,
      storage: imageStorage,
      settings: storage.settings,
      demand: storage.demand,
      files: spec.prefetchFiles,
      log: log.child('prefetch'),
    });
    cleanup.push(() => prefetch.stop());
    log.info(`RAFS v${image.super.version} image ${spec.source}: ${image.super.inodeCount} inodes, ${image.blobs.length} blob(s), backend ${settings.backend.type}`);
    const blobcacheMetrics = (reads: number): BlobcacheMetricsJson | undefined => {
      if (cache.kind !== 'blobcache') return undefined;
      let entries = 0;
      let allReady = regs.length === image.blobs.length;
      for (const r of regs) {
        entries += r.chunkMap?.readyCount() ?? r.chunkCount;
        if (r.chunkMap && !r.chunkMap.allReady()) allReady = false;
      }
      const misses = fs.readMisses + fs.jsReads;
      return {
        underlying_files: regs.map((r) => r.dataPath),
        store_path: cache.workDir,
        partial_hits: fs.partialMisses,
        whole_hits: Math.max(0, reads - misses),
        total: reads,
        entries_count: entries,
        ...upstreamPrefetchStats(prefetch.stats()),
        buffered_backend_size: 0,
        data_all_ready: allReady,
      };
    };
    return {
      slot,
      fs: served,
      backendType: 'Rafs',
      source: spec.source,
      config,
      metricsId: config.id !== '' ? config.id : spec.mountpoint,
      blobSlots: slots,
      fileMetrics: { iostatsFiles: rafs.iostats_files, accessPattern: rafs.access_pattern, latestReadFiles: rafs.latest_read_files },
      superMeta: () => superMeta(image, rafs.entry_timeout, rafs.attr_timeout),
      backendMetrics: () => recorder.snapshot(),
      blobcacheMetrics,
      readCounters: () => ({ readMisses: fs.readMisses, jsReads: fs.jsReads }),
      reloadAuth: (update) => shared.reloadAuth(update),
      async close(): Promise<void> {
        await prefetch.stop();
        if (shared.backend.onRead === recorder.record) shared.backend.onRead = undefined;
        await imageStorage.close();
        image.close();
        await owned?.close();
      },
    };
  } catch (err) {
    await unwind();
    throw err;
  }
};
