/** What the API handlers see of the daemon (lifecycle.ts builds it). */
import type { Logger } from '../../util/logger.js';
import type { MountRecord, MountTable } from '../mounts.js';
import type { BuildInfo, DaemonOptions } from '../options.js';
import type { RunningService } from '../serve.js';
import type { DaemonStateMachine } from '../state.js';
import type { ErrorEvents } from './events.js';

export interface ApiContext {
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

/** The mount table, when the service has one. */
export function mountsOf(ctx: ApiContext): MountTable | undefined {
  return ctx.service()?.mounts;
}

/**
 * The mount an `id` names (metrics, config): its mountpoint or, for backend and cache metrics,
 * its configuration id. Without an id, the only mount (upstream: exactly one instance, else none).
 */
export function findMount(ctx: ApiContext, id: string | null, byConfigId: boolean): MountRecord | undefined {
  const all = mountsOf(ctx)?.list() ?? [];
  if (id === null) return all.length === 1 ? all[0] : undefined;
  const byPath = mountsOf(ctx)?.get(id);
  if (byPath) return byPath;
  return byConfigId ? all.find((m) => m.instance.metricsId === id) : undefined;
}
