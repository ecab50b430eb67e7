/** What the API handlers see of the daemon (daemon/control.ts), and lookups over it. */
import type { DaemonControl } from '../control.js';
import type { MountRecord, MountTable } from '../mounts.js';

export type ApiContext = DaemonControl;

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
