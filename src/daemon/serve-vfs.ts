/**
 * The default serve step: one FUSE session over a Vfs (a pseudo root whose directories carry
 * mounted filesystems), attached to the transport (/dev/fuse at --mountpoint, or the vhost-user
 * socket of --sock/--fd). `--bootstrap` is simply the first mount, at --virtual-mountpoint ("/"
 * by default), made before the transport is attached so the first request already sees it;
 * `--shared-dir` is the same with a passthrough_fs of that directory; without either the daemon
 * serves an empty root for API mounts. The session is immutable (repeated
 * LOOKUP/GETATTR/OPEN are answered natively); the mount table invalidates the native answers of
 * whatever a mount change affects.
 */
import type { LoadedConfig } from '../config/index.js';
import { readBackendEnvironment } from '../config/index.js';
import { Vfs } from '../fs/index.js';
import { FuseSession } from '../fuse/index.js';
import { NydusError } from '../util/errors.js';
import { MountTable } from './mounts.js';
import type { RunningService, ServeContext } from './serve.js';

export async function serveVfs(ctx: ServeContext): Promise<RunningService> {
  const { options, log } = ctx;
  const fsLog = log.child('fs');
  const vfs = new Vfs(fsLog);
  const session = new FuseSession(vfs, {
    logger: { error: (m) => fsLog.error(m), warn: (m) => fsLog.warn(m), debug: (m) => fsLog.debug(m) },
    // RAFS images and read-only overlays are immutable and keep no lookup counts; the pseudo
    // tree's changing answers are invalidated by the mount table. Writable overlays are writable
    // ranges: never cached, and their FORGETs reach them (Vfs.forget).
    immutable: true,
  });
  const mounts = new MountTable({
    vfs,
    session,
    log: log.child('mounts'),
    mode: options.mode,
    imagePullAuth: readBackendEnvironment(process.env).imagePullAuth,
    backendHeaders: options.backendHeaders,
    ...(ctx.createStorage ? { createStorage: ctx.createStorage } : {}),
  });
  try {
    if (options.bootstrap !== undefined) {
      const loaded: LoadedConfig = { config: options.config, format: 'v2-json', origin: options.configOrigin, warnings: [], source: options.configSource };
      await mounts.mount(
        { mountpoint: options.virtualMountpoint, fsType: 'rafs', source: options.bootstrap, config: { loaded }, prefetchFiles: options.prefetchFiles, writable: options.writable },
        ctx.storage ? { sharedStorage: ctx.storage } : {},
      );
    } else if (options.sharedDir !== undefined) {
      await mounts.mount({ mountpoint: options.virtualMountpoint, fsType: 'passthrough_fs', source: options.sharedDir, config: { text: '' } });
    }
    if (options.mode === 'fuse') {
      const mp = options.mountpoint ?? '';
      // Writable when a passthrough_fs is (or, through the API, may be) mounted; RAFS images
      // answer writes EROFS themselves either way.
      const readOnly = options.sharedDir === undefined && options.apiSock === undefined && options.writable !== true;
      const info = session.mount(mp, { threads: options.fuseThreads, readOnly });
      log.info(`FUSE mounted at ${mp} (${info.threads} threads${info.viaFusermount ? ', via fusermount3' : ''}), ${mounts.size} image(s)`);
    } else {
      // The socket listening since the start's checks (the path names it in the log), or --sock
      // and --fd as given (an inherited --fd wins).
      const l = ctx.listener;
      session.attachVirtio(
        l !== undefined
          ? { socketPath: l.path, listenFd: l.fd }
          : {
              ...(options.socketPath === undefined ? {} : { socketPath: options.socketPath }),
              ...(options.listenFd === undefined ? {} : { listenFd: options.listenFd }),
            },
      );
      log.info(`serving vhost-user virtio-fs on ${options.socketPath ?? `fd ${String(options.listenFd)}`}, ${mounts.size} image(s)`);
    }
  } catch (err) {
    session.stop();
    ctx.listener?.close();
    await mounts.closeAll();
    throw err;
  }
  let stopping: Promise<void> | undefined;
  const done = session.closed.then((info) => {
    if (info.reason === 'error') throw new NydusError('ERR_FUSE_TRANSPORT', `the FUSE transport failed (errno ${info.errno})`);
  });
  return {
    done,
    mounts,
    vfs,
    session,
    stop(): Promise<void> {
      stopping ??= (async () => {
        const s = session.stats() as { requests?: number; fastReads?: number; fastReadBytes?: number; nativeOpens?: number; cachedReplies?: number };
        const t = mounts.readTotals();
        log.info(
          `fuse: ${s.requests ?? 0} requests; ${s.fastReads ?? 0} READs served natively (${s.fastReadBytes ?? 0} bytes), ` +
            `${t.readMisses} read misses filled, ${t.jsReads} READs through JavaScript, ${s.nativeOpens ?? 0} OPENs answered natively, ` +
            `${s.cachedReplies ?? 0} LOOKUP/GETATTR answered natively`,
        );
        session.stop();
        ctx.listener?.close();
        await mounts.closeAll();
      })();
      return stopping;
    },
  };
}
