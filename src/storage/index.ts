/**
 * Storage layer: backends (localfs, localdisk, registry, S3, OSS, http-proxy; the network ones on
 * one undici client layer with proxy/fallback/health checks and mirrors) behind one contract with
 * a shared retry/metrics wrapper, and the blob cache (blobcache files with the upstream layout,
 * or dummycache) that turns chunk lists into bytes.
 *
 * Neighbours: config/ (settings) above; the RAFS reader supplies BlobInfo/ChunkInfo; the fs layer
 * calls ImageStorage.ensureReady/read and registers blobcache files with the native READ fast
 * path (nativeRegistrations()); rafs/blob/codec decodes and digests chunks; native/ provides the
 * persistent chunk map and the off-thread decode-and-write.
 */
export type { RawBackend, BackendPolicy, BackendStats, BackendReadObserver, ReadOptions, ReadPriority } from './backend.js';
export { BlobBackend, kLocalPolicy, kMaxBackendRead, remotePolicy } from './backend.js';
export { LocalFsBackend } from './localfs.js';
// The network and disk backends (registry/, object/, http/, http-proxy.ts, localdisk.ts) are
// not re-exported: createBackend() loads them on demand, so a localfs start never loads undici.
export type { NetConfig, TransportOptions } from './http/transport.js';
export { checkBlobId } from './blob-id.js';
// The credential check only (no network code): the API validates registry_auth with it.
export { checkBasicAuth } from './registry/auth.js';
export { StorageError, kEIO } from './contract/errors.js';
export type { StorageErrorCode } from './contract/errors.js';
export type { BlobInfo, ChunkInfo, CompressorName, DigesterName } from './types.js';
export type { BlobSource } from './chunk-data.js';
export { CachedBlob } from './blob-cache.js';
export type { FetchObserver, PlannedFetch } from './blob-cache.js';
export { DemandTracker } from './demand.js';
export type { BlobCacheContext, CachedBlobOptions, NativeBlobRegistration } from './blob-cache.js';
export { DirectBlob } from './dummy-cache.js';
export { ImageStorage, kMaxFileRead } from './image-storage.js';
export { StorageService, createBackend, prepareCacheDir } from './service.js';
export type { OpenImageOptions, CreateBackendOptions, RegistryAuthUpdate } from './service.js';
export { storageSettings } from './settings.js';
export type { StorageSettings, CacheSettings, PrefetchSettings, ReadaheadSettings } from './settings.js';
export type { CacheCounters } from './counters.js';
export { newCounters } from './counters.js';
export { BlobMeta, metaFileSize } from './blob-meta.js';
export type { BlobMetaHeader, BlobChunkEntry } from './blob-meta.js';
export { mergeChunks, amplifyRanges, effectiveBatch, kMinBatchSize } from './fetch-plan.js';
export type { FetchRange } from './fetch-plan.js';
