/**
 * The RAFS kind of mount: an image (bootstrap + blobs) with its own storage (backend and blob
 * cache from the mount's configuration, the same validation as --config), served by a
 * RafsFilesystem whose blob caches are registered with the FUSE session under blob slots of
 * its own, so several images share the native READ fast path. Everything is built before the
 * mount table attaches it; a failure on the way releases what was built, in reverse. With an
 * `overlay` section the image is the lower layer of a merged view: read-only (fs/overlay-fs.ts),
 * or with --writable read-write (fs/overlay-writable.ts).
 */
import { realpath, stat } from 'node:fs/promises';

import { applyImagePullAuth, ConfigError, parseConfigText, validateConfig } from '../config/index.js';
import type { LoadedConfig, NydusConfig } from '../config/index.js';
import { rafsV2Schema } from '../config/schema-v2.js';
import type { OverlayFsOptions } from '../fs/index.js';
import { defaultAttrPolicy, OverlayFilesystem, RafsFilesystem, WritableOverlay } from '../fs/index.js';
import type { FuseFilesystem } from '../fuse/index.js';
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

/** The real path of overlay directory `key` (an existing directory), or a ConfigError. */
async function overlayDir(key: string, path: string): Promise<{ dir: string; dev: number }> {
  if (path === '') throw new ConfigError(`${key} is empty (the overlay section needs it)`);
  try {
    const dir = await realpath(path);
    const st = await stat(dir);
    if (!st.isDirectory()) throw new ConfigError(`${key} ${path}: not a directory`);
    return { dir, dev: st.dev };
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    throw new ConfigError(`${key} ${path}: ${(err as { code?: string }).code ?? (err as Error).message}`, { cause: err });
  }
}

/**
 * The overlay's directories (config `overlay`, real paths), or undefined without an overlay
 * section. Without --writable the merged view is served read-only and `work_dir` is not used;
 * with it the work directory must be on the upper directory's filesystem (copy-ups are renamed
 * from one into the other).
 */
async function overlayDirs(config: NydusConfig, writable: boolean): Promise<{ upper: string; work?: string } | undefined> {
  const o = config.overlay;
  if (!o) {
    if (writable) throw new ConfigError('--writable needs an overlay section (overlay.upper_dir, overlay.work_dir)');
    return undefined;
  }
  const upper = await overlayDir('overlay.upper_dir', o.upper_dir);
  if (!writable) return { upper: upper.dir };
  const work = await overlayDir('overlay.work_dir', o.work_dir);
  if (work.dev !== upper.dev) throw new ConfigError(`overlay.work_dir ${o.work_dir} must be on the same filesystem as overlay.upper_dir ${o.upper_dir}`);
  if (work.dir === upper.dir || work.dir.startsWith(`${upper.dir}/`) || upper.dir.startsWith(`${work.dir}/`)) {
    throw new ConfigError('overlay.work_dir and overlay.upper_dir must not contain each other');
  }
  return { upper: upper.dir, work: work.dir };
}

/** What the mount serves: the image, or the image under its overlay (read-only or writable). */
async function overlayOver(fs: RafsFilesystem, overlay: { upper: string; work?: string } | undefined, opts: OverlayFsOptions): Promise<FuseFilesystem> {
  if (overlay === undefined) return fs;
  if (overlay.work === undefined) {
    opts.log.info(`overlay: upper directory ${overlay.upper} over the image, served read-only (without --writable)`);
    return new OverlayFilesystem(fs, overlay.upper, opts);
  }
  const w = new WritableOverlay(fs, overlay.upper, overlay.work, opts);
  await w.prepare();
  opts.log.info(`overlay: upper directory ${overlay.upper} (work directory ${overlay.work}) over the image, writable`);
  return w;
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
    for (const n of configNotes(loaded.config, spec.writable === true)) log.warn(n);
  }
  const config = applyImagePullAuth(loaded.config, ctx.imagePullAuth);
  await checkBootstrap(spec.source, 'source');
  const overlay = await overlayDirs(config, spec.writable === true);
  const settings = storageSettings(config, loaded.origin, ctx.backendHeaders);
  const rafs = config.rafs ?? rafsV2Schema().parse({});
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
    const fs = new RafsFilesystem(image, imageStorage, {
      entryTimeout: rafs.entry_timeout,
      attrTimeout: rafs.attr_timeout,
      xattr: rafs.enable_xattr || image.super.hasXattr,
      policy: defaultAttrPolicy(),
      log: log.child('fs'),
      nativeBlobs: new Set(regs.map((r) => r.blobIndex)),
      // No chunksReady: the native fill wakes the READs parked on the chunks it made ready.
      blobSlots,
    });
    const served = await overlayOver(fs, overlay, { entryTimeout: rafs.entry_timeout, attrTimeout: rafs.attr_timeout, log: log.child('overlay') });
    const counted = served instanceof WritableOverlay ? served : undefined;
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
      writable: overlay?.work !== undefined,
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
      ...(counted ? { nodeCount: () => counted.nodeCount } : {}),
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
