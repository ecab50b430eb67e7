/**
 * The metrics routes, upstream's shapes (reference/clients.md §3.3-3.4): filesystem counters
 * (`?id=` = mountpoint), per-file views, backend and blob cache counters (`?id=` = the mount's
 * configuration id, or its mountpoint), in-flight requests; and GET /metrics, the same counters
 * in Prometheus text format. Without an id, an endpoint answers for the only mount; with none or
 * several, or an unknown id, 404 `...(Metrics(Stats(NoCounter)))` as upstream.
 */
import type { MountRecord } from '../mounts.js';
import { fsIoStats } from '../metrics.js';
import type { ApiContext } from './context.js';
import { findMount } from './context.js';
import { noCounter } from './errors.js';
import { prometheusText } from './prometheus.js';
import type { ApiRequest, Router } from './router.js';
import { kNoContent, ok } from './router.js';

function mountFor(ctx: ApiContext, req: ApiRequest, wrapper: string, byConfigId: boolean): MountRecord {
  const rec = findMount(ctx, req.query.get('id'), byConfigId);
  if (!rec) throw noCounter(wrapper);
  return rec;
}

/** READs the mount served (for the blob cache's `total`). */
export function readRequests(ctx: ApiContext, rec: MountRecord): number {
  const f = ctx.service()?.mounts?.fopStats(rec);
  return f ? (f.hits[4] ?? 0) + (f.errors[4] ?? 0) : 0;
}

export function addMetricsRoutes(r: Router, ctx: ApiContext): void {
  r.add('/api/v1/metrics', 'GET', 'none', (req) => {
    const rec = mountFor(ctx, req, 'GlobalMetrics', false);
    const f = ctx.service()?.mounts?.fopStats(rec);
    if (!f) throw noCounter('GlobalMetrics');
    return ok(fsIoStats(rec.mountpoint, f));
  });
  r.add('/api/v1/metrics/files', 'GET', 'none', (req) => {
    mountFor(ctx, req, 'FsFilesMetrics', false);
    // Per-file accounting is not built (reported off in /api/v1/metrics): nothing recorded.
    return ok(req.query.get('latest') === 'true' ? [] : {});
  });
  r.add('/api/v1/metrics/pattern', 'GET', 'none', (req) => {
    mountFor(ctx, req, 'Pattern', false);
    return ok([]);
  });
  r.add('/api/v1/metrics/backend', 'GET', 'none', (req) => {
    const rec = mountFor(ctx, req, 'BackendMetrics', true);
    const m = rec.instance.backendMetrics?.();
    if (!m) throw noCounter('BackendMetrics');
    return ok(m);
  });
  r.add('/api/v1/metrics/blobcache', 'GET', 'none', (req) => {
    const rec = mountFor(ctx, req, 'BlobcacheMetrics', true);
    const m = rec.instance.blobcacheMetrics?.(readRequests(ctx, rec));
    if (!m) throw noCounter('BlobcacheMetrics');
    return ok(m);
  });
  r.add('/api/v1/metrics/inflight', 'GET', 'none', () => {
    const vfs = ctx.service()?.vfs;
    const list = vfs?.inflight() ?? [];
    if (list.length === 0) return kNoContent;
    // `unique` is the daemon's id of the request (the FUSE unique is not kept past decoding).
    return ok(list.map((i) => ({ inode: i.inode, opcode: i.opcode, unique: i.id, timestamp_secs: Math.floor(i.startMs / 1000) })));
  });
  r.add('/metrics', 'GET', 'none', () => ({ status: 200, text: prometheusText(ctx), contentType: 'text/plain; version=0.0.4; charset=utf-8' }));
}
