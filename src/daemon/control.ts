/**
 * What a control interface (the HTTP API, src/daemon/api) sees of a running daemon, and how the
 * daemon starts one: the lifecycle builds a DaemonControl and hands it to the injected ApiStarter
 * once the daemon is RUNNING. The API sits above the daemon; the daemon never imports it.
 */
import type { Logger } from '../util/logger.js';
import type { ErrorEvents } from './events.js';
import type { BuildInfo, DaemonOptions } from './options.js';
import type { RunningService } from './serve.js';
import type { DaemonStateMachine } from './state.js';

export interface DaemonControl {
  readonly log: Logger;
  readonly buildInfo: BuildInfo;
  readonly options: DaemonOptions;
  readonly machine: DaemonStateMachine;
  service(): RunningService | undefined;
  /** Stops the daemon as SIGTERM would (PUT /api/v1/daemon/exit). */
  requestStop(reason: string): void;
  /** True once a stop began (state events are then refused). */
  stopping(): boolean;
  /** Sets the log level; false when the level is not one of trace..error, off. */
  setLogLevel(level: string): boolean;
  readonly events: ErrorEvents;
  /** Hot-reload values of PUT /api/v1/config, keyed "<id>:<key>" (upstream utils Keys). */
  readonly hotConfig: Map<string, string>;
}

/** A started control server (closed when the daemon stops). */
export interface ControlServer {
  close(): Promise<void>;
}

/** Starts the API on `path` (--apisock) for `control`. */
export type ApiStarter = (control: DaemonControl, path: string) => Promise<ControlServer>;
