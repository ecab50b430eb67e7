/**
 * v1 -> v2 translation, as upstream `TryFrom<RafsConfig> for ConfigV2`: the backend and cache
 * sections move under their type names, the RAFS keys under `rafs`, and when the cache has no
 * prefetch of its own but the filesystem does, the cache gets a copy of it.
 */
import type { ConfigV1 } from './schema-v1.js';
import type { BackendConfigV2, CacheConfigV2, NydusConfig } from './schema-v2.js';
import { kDefaultBatchSize } from './schema-common.js';

function backendV2(b: ConfigV1['device']['backend']): BackendConfigV2 {
  switch (b.type) {
    case 'localfs':
      return { type: 'localfs', localfs: b.config };
    case 'localdisk':
      return { type: 'localdisk', localdisk: b.config };
    case 'oss':
      return { type: 'oss', oss: b.config };
    case 's3':
      return { type: 's3', s3: b.config };
    case 'registry':
      return { type: 'registry', registry: b.config };
    case 'http-proxy':
      return { type: 'http-proxy', 'http-proxy': b.config };
  }
}

const kNoPrefetch = {
  enable: false,
  threads: 8,
  batch_size: kDefaultBatchSize,
  bandwidth_limit: 0,
  prefetch_all: false,
  stream_prefetch: false,
};

function cacheV2(c: ConfigV1['device']['cache']): CacheConfigV2 {
  const base = {
    compressed: c?.compressed ?? false,
    validate: c?.validate ?? false,
    prefetch: { ...kNoPrefetch },
  };
  if (!c) return { type: '', ...base };
  switch (c.type) {
    case 'blobcache':
    case 'filecache':
      return { type: c.type, ...base, filecache: c.config };
    case 'fscache':
      return { type: 'fscache', ...base, fscache: c.config };
    case 'dummycache':
    case '':
      return { type: c.type, ...base };
  }
}

export function translateV1(v1: ConfigV1): NydusConfig {
  const p = v1.fs_prefetch;
  const prefetch = {
    enable: p.enable,
    threads: p.threads_count,
    batch_size: p.merging_size,
    bandwidth_limit: p.bandwidth_rate,
    prefetch_all: p.prefetch_all,
    stream_prefetch: p.stream_prefetch,
  };
  const cache = cacheV2(v1.device.cache);
  if (!cache.prefetch.enable && prefetch.enable) cache.prefetch = { ...prefetch };
  return {
    version: 2,
    id: v1.device.id,
    backend: backendV2(v1.device.backend),
    external_backends: [],
    cache,
    rafs: {
      mode: v1.mode,
      batch_size: v1.amplify_io,
      validate: v1.digest_validate,
      enable_xattr: v1.enable_xattr,
      iostats_files: v1.iostats_files,
      access_pattern: v1.access_pattern,
      latest_read_files: v1.latest_read_files,
      entry_timeout: v1.entry_timeout,
      attr_timeout: v1.attr_timeout,
      prefetch,
    },
  };
}
