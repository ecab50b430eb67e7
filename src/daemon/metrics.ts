/**
 * Metrics in upstream nydusd's shapes (utils/src/metrics.rs, reference/clients.md §3.4): the
 * filesystem counters of a mount (FsIoStats, from the native per-slot counters), the backend's
 * read counters and distributions (BackendMetrics, recorded here on every backend read), and
 * the bucket rules both share. Array lengths are fixed by what clients index: 15 operations,
 * 8 size buckets, 8 latency buckets (the native counters have the same lengths: the ABI test
 * checks them against these).
 */
import type { FuseFopStats } from '../native/index.js';
import { kFopArrayLengths, kFopCounterNames, kFopKindNames } from '../native/index.js';
import type { BackendMetricsJson } from './mount-kinds.js';

export const kFops = 15;
export const kBuckets = 8;
/** Upstream StatsFop order (the native counters' order, src/native/abi.ts). */
export const kFopNames = kFopKindNames;

/** <1K, 1K~, 4K~, 16K~, 64K~, 128K~, 512K~, 1M~ (upstream request_size_index). */
export function sizeBucket(bytes: number): number {
  const limits = [1 << 10, 4 << 10, 16 << 10, 64 << 10, 128 << 10, 512 << 10, 1 << 20];
  const i = limits.findIndex((l) => bytes < l);
  return i < 0 ? 7 : i;
}

/** <=1ms, <=20ms, <=50ms, <=100ms, <=500ms, <=1s, <=2s, >2s (upstream latency_millis_range_index). */
export function latencyMillisBucket(ms: number): number {
  const limits = [1, 20, 50, 100, 500, 1000, 2000];
  const i = limits.findIndex((l) => ms <= l);
  return i < 0 ? 7 : i;
}

const zeros = (n: number): number[] => new Array<number>(n).fill(0);

/** Backend reads of one storage: counters and upstream's distributions. */
export class BackendRecorder {
  private readonly _m: BackendMetricsJson;

  constructor(backendType: string) {
    this._m = {
      backend_type: backendType,
      read_count: 0,
      read_errors: 0,
      read_amount_total: 0,
      read_cumulative_latency_millis_total: 0,
      read_cumulative_latency_millis_dist: zeros(kBuckets),
      read_count_block_size_dist: zeros(kBuckets),
      read_latency_sizes_dist: Array.from({ length: kBuckets }, () => zeros(kBuckets)),
    };
  }

  /** A BlobBackend.onRead observer. */
  readonly record = (bytes: number, latencyMs: number, error: boolean): void => {
    const m = this._m;
    const ms = Math.floor(latencyMs);
    const s = sizeBucket(bytes);
    m.read_count++;
    if (error) m.read_errors++;
    m.read_amount_total += bytes;
    m.read_cumulative_latency_millis_total += ms;
    (m.read_cumulative_latency_millis_dist[s] as number) += ms;
    (m.read_count_block_size_dist[s] as number)++;
    const row = m.read_latency_sizes_dist[s] as number[];
    (row[latencyMillisBucket(ms)] as number)++;
  };

  snapshot(): BackendMetricsJson {
    return structuredClone(this._m);
  }
}

/** Counters of a slot minus what the slot had counted before the mount took it. */
export function fopDelta(now: FuseFopStats, base: FuseFopStats | undefined): FuseFopStats {
  if (!base) return now;
  const out = { ...now };
  for (const k of kFopCounterNames) out[k] = Math.max(0, now[k] - base[k]);
  for (const k of Object.keys(kFopArrayLengths) as (keyof typeof kFopArrayLengths)[]) {
    out[k] = now[k].map((v, i) => Math.max(0, v - (base[k][i] ?? 0)));
  }
  return out;
}

export interface FsIoStatsJson {
  files_account_enabled: boolean;
  access_pattern_enabled: boolean;
  record_latest_read_files_enabled: boolean;
  measure_latency: boolean;
  id: string;
  nr_opens: number;
  data_read: number;
  block_count_read: number[];
  fop_hits: number[];
  fop_errors: number[];
  fop_cumulative_latency_total: number[];
  read_latency_dist: number[];
}

/**
 * Upstream FsIoStats of a mount. Per-file accounting (iostats_files, access_pattern,
 * latest_read_files) is not built: its switches are reported off whatever the configuration says
 * (the mount logged a warning), so clients do not wait for per-file data that never comes.
 */
export function fsIoStats(id: string, f: FuseFopStats): FsIoStatsJson {
  const fix = (a: number[], n: number): number[] => [...a.slice(0, n), ...zeros(Math.max(0, n - a.length))];
  const hits = fix(f.hits, kFops);
  return {
    files_account_enabled: false,
    access_pattern_enabled: false,
    record_latest_read_files_enabled: false,
    measure_latency: true,
    id,
    nr_opens: Math.max(0, (hits[2] as number) - (hits[3] as number)),
    data_read: f.dataRead,
    block_count_read: fix(f.blockCountRead, kBuckets),
    fop_hits: hits,
    fop_errors: fix(f.errors, kFops),
    fop_cumulative_latency_total: fix(f.latencyUs, kFops),
    read_latency_dist: fix(f.readLatencyDist, kBuckets),
  };
}
