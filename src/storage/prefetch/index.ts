/**
 * Prefetch and the readahead log: what to fetch before anyone asks for it, in which order, at
 * what rate, and progress for the metrics API.
 *
 * Layers, each replaceable alone:
 *  - plan.ts: the planner (pure): chunk lists -> merged ranges in priority order;
 *  - image-files.ts: RAFS file lists / prefetch table / whole image -> chunk lists;
 *  - prefetcher.ts + pacer.ts: the scheduler: workers, bandwidth limit, yielding to on-demand
 *    reads, stop; it hands each range to the blob cache's fill (CachedBlob.fetchPlanned);
 *  - readahead-log.ts: recording and persisting the ranges a start read;
 *  - image-prefetch.ts: the per-image entry point the daemon calls (ImagePrefetch).
 *
 * Neighbours: sits above the rest of storage (imports blob-cache, fetch-plan, settings; nothing
 * in storage imports it); the daemon starts it for each mounted image.
 *
 * For an API mount: once the image is served, `ImagePrefetch.start({ image, storage, settings:
 * service.settings, demand: service.demand, files: body.prefetch_files, log })` (it throws
 * StorageError ERR_PREFETCH_LIST for a relative path: a 400); `stop()` on umount, before the
 * ImageStorage closes; `stats()` is the prefetch_* part of /api/v1/metrics/blobcache.
 * RunningService.prefetch is the --bootstrap image's instance.
 */
export { ImagePrefetch } from './image-prefetch.js';
export type { ImagePrefetchOptions, PrefetchFilesResult } from './image-prefetch.js';
export type { PrefetchStats } from './stats.js';
export { emptyPrefetchStats, upstreamPrefetchStats } from './stats.js';
export type { UpstreamPrefetchStats } from './stats.js';
export { checkPrefetchList } from './image-files.js';
export { accessLogPath, decodeAccessLog, encodeAccessLog, kMaxAccessEntries } from './readahead-log.js';
export { Prefetcher, kMaxPrefetchInflight } from './prefetcher.js';
export type { PrefetchJob, PrefetcherOptions, PrefetchSource } from './prefetcher.js';
export { Pacer } from './pacer.js';
export { chunksWithin, planChunkList, planRecorded, planWholeBlob } from './plan.js';
export type { PlannedRange, RecordedRange } from './plan.js';
