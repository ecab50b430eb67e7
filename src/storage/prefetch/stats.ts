/**
 * Prefetch progress in upstream's `/api/v1/metrics/blobcache` field names (utils/src/metrics.rs
 * BlobcacheMetrics, the prefetch_* part), so the metrics API can spread it into its reply.
 * Times are wall clock: `*_secs` whole seconds since the epoch, `*_millis` the millisecond part.
 */
export interface PrefetchStats {
  /** Bytes prefetch read from the backend. */
  prefetch_data_amount: number;
  /** Backend requests prefetch issued (data_amount / requests_count = average merged size). */
  prefetch_requests_count: number;
  /** Prefetch workers running. */
  prefetch_workers: number;
  /** Chunks those requests carried. */
  prefetch_unmerged_chunks: number;
  /** Sum over requests of the time from being planned to being in the cache. */
  prefetch_cumulative_time_millis: number;
  prefetch_begin_time_secs: number;
  prefetch_begin_time_millis: number;
  /** When the last request completed (updated as requests complete, as upstream). */
  prefetch_end_time_secs: number;
  prefetch_end_time_millis: number;
  // Ours, not upstream's:
  /** Bytes planned so far (the requests queued, before skipping what was cached meanwhile). */
  prefetch_total_size: number;
  /** Planned requests not sent yet. */
  prefetch_pending_requests: number;
  /** Planned requests left out because their chunks were cached or being fetched already. */
  prefetch_skipped_requests: number;
  /** Requests that failed (backend, decode, digest or cache write); the chunks stay on demand. */
  prefetch_failed_requests: number;
}

/** The prefetch_* fields upstream's blobcache metrics carry (the rest of PrefetchStats is ours). */
export const kUpstreamPrefetchKeys = [
  'prefetch_data_amount',
  'prefetch_requests_count',
  'prefetch_workers',
  'prefetch_unmerged_chunks',
  'prefetch_cumulative_time_millis',
  'prefetch_begin_time_secs',
  'prefetch_begin_time_millis',
  'prefetch_end_time_secs',
  'prefetch_end_time_millis',
] as const;
export type UpstreamPrefetchStats = Pick<PrefetchStats, (typeof kUpstreamPrefetchKeys)[number]>;

/** The upstream part of `s`, for /api/v1/metrics/blobcache. */
export function upstreamPrefetchStats(s: PrefetchStats): UpstreamPrefetchStats {
  return Object.fromEntries(kUpstreamPrefetchKeys.map((k) => [k, s[k]])) as UpstreamPrefetchStats;
}

export function emptyPrefetchStats(): PrefetchStats {
  return {
    prefetch_data_amount: 0,
    prefetch_requests_count: 0,
    prefetch_workers: 0,
    prefetch_unmerged_chunks: 0,
    prefetch_cumulative_time_millis: 0,
    prefetch_begin_time_secs: 0,
    prefetch_begin_time_millis: 0,
    prefetch_end_time_secs: 0,
    prefetch_end_time_millis: 0,
    prefetch_total_size: 0,
    prefetch_pending_requests: 0,
    prefetch_skipped_requests: 0,
    prefetch_failed_requests: 0,
  };
}

/** Splits a wall-clock time (ms since the epoch) into upstream's secs + millis pair. */
export function wallTime(ms: number): { secs: number; millis: number } {
  return { secs: Math.floor(ms / 1000), millis: Math.floor(ms % 1000) };
}
