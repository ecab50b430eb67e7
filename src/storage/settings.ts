/**
 * What storage needs from a configuration, with every feature that is parsed but not built yet
 * rejected up front ("X is not supported yet", exit status 2) instead of silently ignored.
 */
import type { ConfigOrigin, NydusConfig, ResolvedBackend } from '../config/index.js';
import { ConfigError, kUserAgent, resolveBackend } from '../config/index.js';
import { NotSupportedError } from '../util/errors.js';
import type { CacheFormat } from './cache-layout.js';

export type CacheSettings = { kind: 'blobcache'; workDir: string; workDirKey: string; format?: CacheFormat } | { kind: 'dummycache' };

/**
 * Prefetch at mount, as upstream: `rafs.prefetch` (v1 `fs_prefetch`) decides whether and what
 * (the file list, the bootstrap's prefetch table, the whole image); the workers' settings come
 * from `cache.prefetch` when it is enabled, else from `rafs.prefetch` (v1 copies one to the other).
 */
export interface PrefetchSettings {
  enable: boolean;
  /** Prefetch the whole image after the listed files. */
  prefetchAll: boolean;
  /** Prefetch requests at most in flight (threads / threads_count). */
  threads: number;
  /** Largest merged prefetch request, bytes (batch_size / merging_size; at least 128 KiB). */
  batchSize: number;
  /** Bytes per second for prefetch requests, 0 = unlimited (bandwidth_limit / bandwidth_rate). */
  bandwidthLimit: number;
}

/** The seed's readahead log (backend `readahead`, `readahead_sec`). */
export interface ReadaheadSettings {
  enable: boolean;
  /** Seconds after start during which backend reads are recorded; 0 = until stop. */
  seconds: number;
}

/** The seed's default recording window. */
const kDefaultReadaheadSec = 10;

export const kPrefetchOff: PrefetchSettings = { enable: false, prefetchAll: false, threads: 8, batchSize: 1024 * 1024, bandwidthLimit: 0 };

function prefetchSettings(cfg: NydusConfig): PrefetchSettings {
  const fsp = cfg.rafs?.prefetch;
  if (!fsp?.enable) return { ...kPrefetchOff };
  const cp = cfg.cache?.prefetch;
  const w = cp?.enable ? cp : fsp;
  return { enable: true, prefetchAll: fsp.prefetch_all, threads: w.threads, batchSize: w.batch_size, bandwidthLimit: w.bandwidth_limit };
}

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
  /** Absent: off (settings built by hand in tests). */
  prefetch?: PrefetchSettings;
  readahead?: ReadaheadSettings;
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
    if (c.type === 'blobcache' || c.type === 'filecache') {
      const fc = c.filecache;
      if (!fc) throw new ConfigError(`cache.filecache: section required when cache.type is "${c.type}"`);
      const section = origin === 'v1' ? 'device.cache.config' : 'cache.filecache';
      cache = { kind: 'blobcache', workDir: fc.work_dir, workDirKey: `${section}.work_dir`, format: cacheFormat(c.compressed, fc, section, origin) };
    }
  }
  return {
    backend,
    backendKey: origin === 'v1' ? 'device.backend.config' : `backend.${backend.type}`,
    cache,
    validate: (c?.validate ?? false) || (cfg.rafs?.validate ?? false),
    batchSize: cfg.rafs?.batch_size ?? 1024 * 1024,
    headers: { ...headers },
    prefetch: prefetchSettings(cfg),
    readahead: { enable: backend.config.readahead ?? false, seconds: backend.config.readahead_sec ?? kDefaultReadaheadSec },
  };
}

/**
 * `cache.compressed` and the filecache encryption keys, checked as upstream checks them
 * (storage/src/cache/filecache/mod.rs, utils/src/crypt.rs): the key is 64 hex digits whose two
 * halves differ, and it is required even with convergent encryption.
 */
function cacheFormat(compressed: boolean, fc: { enable_encryption: boolean; enable_convergent_encryption: boolean; encryption_key: string }, section: string, origin: ConfigOrigin): CacheFormat {
  if (!fc.enable_encryption) return { compressed };
  if (compressed) {
    // Upstream silently stores a compressed cache unencrypted when both are on.
    const flag = origin === 'v1' ? 'device.cache.compressed' : 'cache.compressed';
    throw new ConfigError(`${flag} and ${section}.enable_encryption cannot be combined: a compressed cache (.blob.raw) is not encrypted (upstream nydusd would store it in the clear); turn one of them off`);
  }
  const hex = fc.encryption_key;
  if (!/^[0-9a-fA-F]{64}$/.test(hex)) {
    throw new ConfigError(`${section}.encryption_key: must be 64 hex digits (a 32-byte AES-128-XTS key) when enable_encryption is true; got ${hex.length} character(s)`);
  }
  const key = Buffer.from(hex, 'hex');
  if (key.subarray(0, 16).equals(key.subarray(16))) {
    throw new ConfigError(`${section}.encryption_key: its two 16-byte halves are equal, which AES-XTS refuses`);
  }
  return { compressed, encryption: { key, convergent: fc.enable_convergent_encryption } };
}
