/**
 * Daemon layer: the lifecycle of one nydusd process (state machine INIT/READY/RUNNING/STOPPED,
 * preparation checks, signals, orderly stop with a bounded timeout), the mount table (images
 * attached to the pseudo root at run time; mounts.ts, mount-kinds.ts, rafs-mount.ts), the HTTP
 * API on --apisock (api/), and metrics in upstream's shapes (metrics.ts). The filesystem and
 * transport are attached by a ServeStep (serve-vfs.ts by default; injectable for tests).
 *
 * Neighbours: cli/ builds DaemonOptions and calls runDaemon(); storage/ provides backends and
 * caches per mount; fs/ provides the Vfs (pseudo root + router) and RafsFilesystem; native/ the
 * FUSE session; util/logger is the logger.
 */
export { Daemon, runDaemon } from './lifecycle.js';
export type { DaemonDeps, RunOptions } from './lifecycle.js';
export type { BuildInfo, DaemonOptions } from './options.js';
export type { ApiStarter, ControlServer, DaemonControl } from './control.js';
export { ErrorEvents } from './events.js';
export { MountTable } from './mounts.js';
export type { MountRecord, MountTableOptions } from './mounts.js';
export { MountError, kindOf } from './mount-kinds.js';
export type { MountSpec, MountedFilesystem } from './mount-kinds.js';
export { serveVfs } from './serve-vfs.js';
export { kDefaultStopTimeoutMs } from './options.js';
export { DaemonStateMachine } from './state.js';
export type { DaemonState, DaemonEvent } from './state.js';
export type { ServeStep, ServeContext, RunningService } from './serve.js';
export { applyRlimitNofile, checkBootstrap, checkTransportTarget, configNotes } from './prepare.js';
export { attachNativeLog } from './native-log.js';
export { claimFreeSocket, listenEarly, listensEarly } from './early-listen.js';
export type { EarlyListener } from './early-listen.js';
export { stopOnSignal } from './stop-on-signal.js';
