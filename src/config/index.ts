/**
 * Configuration layer: nydusd config v1 (JSON) and v2 (JSON/TOML) -> one validated, normalized
 * `NydusConfig` (v2 shape) with upstream defaults; blob cache entries; environment overrides;
 * the redacted view for logs and the API.
 *
 * Neighbours: cli/ loads the file named by --config (or synthesizes one for --localfs-dir);
 * daemon/ and storage/ read the result. Nothing here touches the network or the cache.
 */
export { ConfigError } from './errors.js';
export { parseJsonc } from './jsonc.js';
export { loadConfigFile, parseConfigText, kMaxConfigBytes } from './load.js';
export type { ConfigFormat, LoadedConfig } from './load.js';
export { validateConfig, configIssues, v1Path } from './validate.js';
export type { ConfigIssue, ConfigOrigin } from './validate.js';
export { redactConfig, describeHeaders, kRedacted } from './redact.js';
export { readBackendEnvironment, applyImagePullAuth, kUserAgent } from './env.js';
export type { BackendEnvironment } from './env.js';
export { parseBlobCacheEntry } from './blob-cache-entry.js';
export type { BlobCacheEntry, BlobCacheEntryConfigV2 } from './blob-cache-entry.js';
export { configV2Schema, resolveBackend } from './schema-v2.js';
export type { NydusConfig, BackendConfigV2, CacheConfigV2, RafsConfigV2, ResolvedBackend } from './schema-v2.js';
export { configV1Schema } from './schema-v1.js';
export { kBackendTypes, kCacheTypes, kMaxBatchSize, kDefaultBatchSize } from './schema-common.js';
export type * from './schema-common.js';
export { configReferenceMarkdown, configReferenceRows } from './reference.js';
