/**
 * GET /metrics on the API socket: the daemon's counters in the Prometheus text exposition format
 * (0.0.4), which upstream nydusd does not offer (the snapshotter re-exports them from JSON).
 * One family per counter, one series per mount (`mountpoint` label); latency distributions are
 * turned into cumulative histograms.
 */
import { fsIoStats, kFopNames } from '../metrics.js';
import type { ApiContext } from './context.js';
import { readRequests } from './routes-metrics.js';

function esc(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

/** Samples grouped by family: the format wants each family's lines together, once. */
class Exposition {
  private readonly _families = new Map<string, { head: string[]; lines: string[] }>();

  private _family(name: string, type: string, help: string): string[] {
    let f = this._families.get(name);
    if (!f) this._families.set(name, (f = { head: [`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`], lines: [] }));
    return f.lines;
  }

  sample(name: string, type: 'counter' | 'gauge', help: string, labels: Record<string, string>, value: number): void {
    this._family(name, type, help).push(line(name, labels, value));
  }

  /** A histogram family `name` with `_bucket`, `_sum` and `_count` series. */
  histogram(name: string, help: string, labels: Record<string, string>, le: readonly string[], counts: readonly number[], sum: number): void {
    const lines = this._family(name, 'histogram', help);
    let cum = 0;
    le.forEach((bound, i) => {
      cum += counts[i] ?? 0;
      lines.push(line(`${name}_bucket`, { ...labels, le: bound }, cum));
    });
    lines.push(line(`${name}_sum`, labels, sum), line(`${name}_count`, labels, cum));
  }

  text(): string {
    const out: string[] = [];
    for (const f of this._families.values()) out.push(...f.head, ...f.lines);
    return `${out.join('\n')}\n`;
  }
}

function line(name: string, labels: Record<string, string>, value: number): string {
  const l = Object.entries(labels)
    .map(([k, v]) => `${k}="${esc(v)}"`)
    .join(',');
  return `${name}${l === '' ? '' : `{${l}}`} ${Number.isFinite(value) ? value : 0}`;
}

/** Upper bounds (seconds) of upstream's READ latency buckets. */
const kReadLatencyLe = ['0.0002', '0.001', '0.02', '0.05', '0.5', '1', '2', '+Inf'];

export function prometheusText(ctx: ApiContext): string {
  const e = new Exposition();
  const b = ctx.buildInfo;
  e.sample('nydusd_build_info', 'gauge', 'Version of this daemon (value 1).', { version: b.package_ver, git_commit: b.git_commit }, 1);
  for (const s of ['INIT', 'READY', 'RUNNING', 'STOPPED']) {
    e.sample('nydusd_state', 'gauge', 'Daemon state (1 for the current one).', { state: s }, ctx.machine.state === s ? 1 : 0);
  }
  const svc = ctx.service();
  const mounts = svc?.mounts?.list() ?? [];
  e.sample('nydusd_mounts', 'gauge', 'Filesystems mounted in the pseudo root.', {}, mounts.length);
  e.sample('nydusd_inflight_requests', 'gauge', 'Requests the filesystems are still working on.', {}, svc?.vfs?.inflight().length ?? 0);
  const st = (svc?.session?.stats() ?? {}) as Record<string, unknown>;
  const num = (k: string): number => (typeof st[k] === 'number' ? st[k] : 0);
  e.sample('nydusd_fuse_requests_total', 'counter', 'FUSE requests received.', {}, num('requests'));
  e.sample('nydusd_fuse_native_replies_total', 'counter', 'FUSE requests answered without JavaScript.', {}, num('nativeReplies'));
  e.sample('nydusd_fuse_cached_replies_total', 'counter', 'LOOKUP/GETATTR answered from the native reply cache.', {}, num('cachedReplies'));
  e.sample('nydusd_fuse_native_opens_total', 'counter', 'OPENs answered from the native reply cache.', {}, num('nativeOpens'));
  e.sample('nydusd_fuse_fast_reads_total', 'counter', 'READs served natively from the blob cache.', {}, num('fastReads'));
  e.sample('nydusd_fuse_fast_read_bytes_total', 'counter', 'Bytes of READs served natively.', {}, num('fastReadBytes'));
  e.sample('nydusd_fuse_read_misses_total', 'counter', 'READs that waited for data from the backend.', {}, num('readMisses'));
  for (const m of mounts) {
    const f = svc?.mounts?.fopStats(m);
    if (!f) continue;
    const fs = fsIoStats(m.mountpoint, f);
    const mp = { mountpoint: m.mountpoint };
    kFopNames.forEach((name, i) => {
      e.sample('nydusd_fop_hits_total', 'counter', 'Successful filesystem operations.', { ...mp, fop: name }, fs.fop_hits[i] ?? 0);
    });
    kFopNames.forEach((name, i) => {
      e.sample('nydusd_fop_errors_total', 'counter', 'Failed filesystem operations.', { ...mp, fop: name }, fs.fop_errors[i] ?? 0);
    });
    kFopNames.forEach((name, i) => {
      e.sample('nydusd_fop_latency_microseconds_total', 'counter', 'Cumulative operation latency.', { ...mp, fop: name }, fs.fop_cumulative_latency_total[i] ?? 0);
    });
    e.sample('nydusd_read_bytes_total', 'counter', 'Bytes returned by READs.', mp, fs.data_read);
    e.sample('nydusd_open_files', 'gauge', 'Files open now.', mp, fs.nr_opens);
    const nodes = m.instance.nodeCount?.();
    if (nodes !== undefined) e.sample('nydusd_fs_nodes', 'gauge', 'Nodes a writable filesystem keeps for the kernel (lookup-counted).', mp, nodes);
    e.histogram('nydusd_read_latency_seconds', 'READ latency.', mp, kReadLatencyLe, fs.read_latency_dist, (fs.fop_cumulative_latency_total[4] ?? 0) / 1e6);
    const be = m.instance.backendMetrics?.();
    if (be) {
      const bl = { ...mp, backend: be.backend_type };
      e.sample('nydusd_backend_reads_total', 'counter', 'Reads from the storage backend.', bl, be.read_count);
      e.sample('nydusd_backend_read_errors_total', 'counter', 'Failed reads from the storage backend.', bl, be.read_errors);
      e.sample('nydusd_backend_read_bytes_total', 'counter', 'Bytes read from the storage backend.', bl, be.read_amount_total);
      e.sample('nydusd_backend_read_latency_milliseconds_total', 'counter', 'Cumulative backend read latency.', bl, be.read_cumulative_latency_millis_total);
    }
    const bc = m.instance.blobcacheMetrics?.(readRequests(ctx, m));
    if (bc) {
      e.sample('nydusd_blobcache_chunks_ready', 'gauge', 'Chunks present in the blob cache.', mp, bc.entries_count);
      e.sample('nydusd_blobcache_reads_total', 'counter', 'READs served through the blob cache.', mp, bc.total);
      e.sample('nydusd_blobcache_whole_hits_total', 'counter', 'READs whose chunks were all cached.', mp, bc.whole_hits);
      e.sample('nydusd_blobcache_partial_hits_total', 'counter', 'READs with some chunks cached.', mp, bc.partial_hits);
    }
  }
  const ev = ctx.events.toJSON();
  e.sample('nydusd_errors_total', 'counter', 'Error log records since start.', {}, ev.total_errors);
  return e.text();
}
