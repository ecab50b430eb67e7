/**
 * Daemon layer: the lifecycle of one nydusd process (state machine INIT/READY/RUNNING/STOPPED,
 * preparation checks, signals, orderly stop with a bounded timeout), with the filesystem and
 * transport attached through an injected ServeStep.
 *
 * Neighbours: cli/ builds DaemonOptions and calls runDaemon(); storage/ provides the backend and
 * cache; serve-rafs.ts is the ServeStep that opens the image and builds the fs/ layer's
 * filesystem over it; util/logger is the logger.
 */
export { Daemon, runDaemon } from './lifecycle.js';
export type { DaemonDeps, RunOptions } from './lifecycle.js';
export type { DaemonOptions } from './options.js';
export { kDefaultStopTimeoutMs } from './options.js';
export { DaemonStateMachine } from './state.js';
export type { DaemonState, DaemonEvent } from './state.js';
export type { ServeStep, ServeContext, RunningService } from './serve.js';
export { applyRlimitNofile, checkBootstrap, checkTransportTarget, configNotes } from './prepare.js';
export { attachNativeLog } from './native-log.js';
export { stopOnSignal } from './stop-on-signal.js';
