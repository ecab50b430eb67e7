/**
 * What storage needs from a configuration, with every feature that is parsed but not built yet
 * rejected up front ("X is not supported yet", exit status 2) instead of silently ignored.
 */
import type { ConfigOrigin, NydusConfig, ResolvedBackend } from '../config/index.js';
import { ConfigError, kUserAgent, resolveBackend } from '../config/index.js';
import { NotSupportedError } from '../util/errors.js';

export type CacheSettings = { kind: 'blobcache'; workDir: string; workDirKey: string } | { kind: 'dummycache' };

export interface StorageSettings {
  backend: ResolvedBackend;
  /** Config path of the backend section, for messages. */
  backendKey: string;
  cache: CacheSettings;
  /** Chunk digest validation (cache.validate or rafs.validate, as upstream). */
  validate: boolean;
  /** rafs.batch_size (amplify_io). */
  batchSize: number;
  /** Headers on every request of a network backend: User-Agent and NYDUS_HEADER_* (default: User-Agent). */
  headers?: Record<string, string>;
}

export function storageSettings(
  cfg: NydusConfig,
  origin: ConfigOrigin = 'v2',
  headers: Record<string, string> = { 'User-Agent': kUserAgent },
): StorageSettings {
  if (!cfg.backend) throw new ConfigError('backend: a storage backend is required to serve a RAFS image');
  const backend = resolveBackend(cfg.backend);
  if (!backend) throw new ConfigError(`backend.${cfg.backend.type}: section required when backend.type is "${cfg.backend.type}"`);
  if (cfg.external_backends.length > 0) throw new NotSupportedError('external_backends');
  const c = cfg.cache;
  let cache: CacheSettings = { kind: 'dummycache' };
  if (c) {
    if (c.type === 'fscache') throw new NotSupportedError('cache type fscache');
    if (c.compressed) throw new NotSupportedError('cache.compressed = true (.blob.raw cache files)');
    if (c.type === 'blobcache' || c.type === 'filecache') {
      const fc = c.filecache;
      if (!fc) throw new ConfigError(`cache.filecache: section required when cache.type is "${c.type}"`);
      if (fc.enable_encryption) throw new NotSupportedError('cache encryption (enable_encryption)');
      cache = { kind: 'blobcache', workDir: fc.work_dir, workDirKey: origin === 'v1' ? 'device.cache.config.work_dir' : 'cache.filecache.work_dir' };
    }
  }
  return {
    backend,
    backendKey: origin === 'v1' ? 'device.backend.config' : `backend.${backend.type}`,
    cache,
    validate: (c?.validate ?? false) || (cfg.rafs?.validate ?? false),
    batchSize: cfg.rafs?.batch_size ?? 1024 * 1024,
    headers: { ...headers },
  };
}
