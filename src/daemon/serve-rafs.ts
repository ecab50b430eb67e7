/**
 * The serve step for RAFS images: open the bootstrap with the RAFS reader, open its blobs in
 * storage, give the reader the blob meta it needs, build the filesystem over both, and attach
 * the transport (a /dev/fuse mount at --mountpoint, or the vhost-user socket of --sock/--fd).
 * Cache-backed blobs are registered on the FUSE session, so cache-hit READs stay native.
 */
import { kRafsV2Schema } from '../config/schema-v2.js';
import { FuseSession } from '../fuse/index.js';
import type { RafsImage } from '../rafs/index.js';
import { openBootstrap } from '../rafs/index.js';
import { defaultAttrPolicy, RafsFilesystem } from '../fs/index.js';
import type { ImageStorage } from '../storage/index.js';
import { supplyBlobMeta } from '../storage/image-meta.js';
import { ImagePrefetch } from '../storage/prefetch/index.js';
import { NydusError, UsageError } from '../util/errors.js';
import type { RunningService, ServeContext } from './serve.js';

function openImage(path: string): RafsImage {
  try {
    return openBootstrap(path);
  } catch (err) {
    // Reader errors name the file already; anything else gets it here.
    if (NydusError.is(err) && !err.message.includes(path)) throw new NydusError(err.code, `bootstrap ${path}: ${err.message}`, { cause: err });
    throw err;
  }
}

export async function serveRafs(ctx: ServeContext): Promise<RunningService> {
  const { options, storage, log } = ctx;
  const started = process.hrtime.bigint();
  const image = openImage(options.bootstrap);
  // A config without a rafs section (e.g. --localfs-dir) takes every default.
  const rafs = options.config.rafs ?? kRafsV2Schema.parse({});
  if (rafs.mode === 'cached' && image.super.version === 6) {
    image.close();
    throw new UsageError('rafs.mode "cached" is only supported for RAFS v5 images; use "direct"');
  }
  let imageStorage: ImageStorage | undefined;
  let session: FuseSession | undefined;
  let fs: RafsFilesystem | undefined;
  let prefetch: ImagePrefetch | undefined;
  try {
    imageStorage = await storage.openImage(image.blobs);
    const cache = storage.settings.cache;
    await supplyBlobMeta(image, imageStorage, storage.backend, {
      validate: storage.settings.validate,
      workDir: cache.kind === 'blobcache' ? cache.workDir : undefined,
      log: log.child('meta'),
    });
    const registrations = imageStorage.nativeRegistrations();
    const fsLog = log.child('fs');
    fs = new RafsFilesystem(image, imageStorage, {
      entryTimeout: rafs.entry_timeout,
      attrTimeout: rafs.attr_timeout,
      xattr: rafs.enable_xattr || image.super.hasXattr,
      policy: defaultAttrPolicy(),
      log: fsLog,
      nativeBlobs: new Set(registrations.map((r) => r.blobIndex)),
      chunksReady: (blob, idx) => session?.chunksReady(blob, idx),
    });
    session = new FuseSession(fs, {
      entryTimeout: rafs.entry_timeout,
      attrTimeout: rafs.attr_timeout,
      logger: { error: (m) => fsLog.error(m), warn: (m) => fsLog.warn(m), debug: (m) => fsLog.debug(m) },
      // A RAFS image never changes under a session and RafsFilesystem keeps no lookup counts:
      // repeated LOOKUP/GETATTR are answered natively (no JS crossing).
      immutable: true,
    });
    for (const r of registrations) {
      session.registerBlob(r.blobIndex, { dataPath: r.dataPath, chunkMap: r.chunkMap });
    }
    if (options.mode === 'fuse') {
      const mp = options.mountpoint ?? '';
      const info = session.mount(mp, { threads: options.fuseThreads });
      log.info(`mounted RAFS v${image.super.version} image at ${mp} (${info.threads} FUSE threads${info.viaFusermount ? ', via fusermount3' : ''})`);
    } else {
      session.attachVirtio({
        ...(options.socketPath === undefined ? {} : { socketPath: options.socketPath }),
        ...(options.listenFd === undefined ? {} : { listenFd: options.listenFd }),
      });
      log.info(`serving RAFS v${image.super.version} image over vhost-user on ${options.socketPath ?? `fd ${String(options.listenFd)}`}`);
    }
    prefetch = ImagePrefetch.start({
      image,
      storage: imageStorage,
      settings: storage.settings,
      demand: storage.demand,
      files: options.prefetchFiles,
      log: log.child('prefetch'),
    });
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    log.info(`image ready in ${ms.toFixed(1)} ms: ${image.super.inodeCount} inodes, ${image.blobs.length} blob(s)`);
  } catch (err) {
    session?.stop();
    await prefetch?.stop();
    await imageStorage?.close();
    image.close();
    throw err;
  }
  const s = session;
  const st = imageStorage;
  const rfs = fs;
  const pf = prefetch;
  let stopping: Promise<void> | undefined;
  const done = s.closed.then((info) => {
    if (info.reason === 'error') throw new NydusError('ERR_FUSE_TRANSPORT', `the FUSE transport failed (errno ${info.errno})`);
  });
  return {
    done,
    prefetch: pf,
    stop(): Promise<void> {
      stopping ??= (async () => {
        const stats = s.stats() as { requests?: number; fastReads?: number; fastReadBytes?: number; nativeOpens?: number };
        log.info(
          `fuse: ${stats.requests ?? 0} requests; ${stats.fastReads ?? 0} READs served natively (${stats.fastReadBytes ?? 0} bytes), ` +
            `${rfs.readMisses} read misses filled, ${rfs.jsReads} READs through JavaScript, ${stats.nativeOpens ?? 0} OPENs answered natively`,
        );
        s.stop();
        await pf.stop();
        await st.close();
        image.close();
      })();
      return stopping;
    },
  };
}
