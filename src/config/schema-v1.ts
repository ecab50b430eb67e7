/**
 * Legacy config v1 (JSON): `device.backend {type, config}`, `device.cache {type, compressed,
 * config}` and the RAFS keys at the top level. Parsed with v1 key paths so errors name what the
 * user wrote; translate.ts maps it to the v2 shape. Upstream: `RafsConfig` in api/src/config.rs.
 */
import * as z from 'zod';

import {
  kDefaultBatchSize,
  kFileCacheSchema,
  kFsCacheSchema,
  kHttpProxySchema,
  kLocalDiskSchema,
  kLocalFsSchema,
  kMaxBatchSize,
  kOssSchema,
  kRegistrySchema,
  kS3Schema,
  builtOnUse,
  u32,
  u64,
  uint,
} from './schema-common.js';

/** The v1 schema, built on first use (a v2 start never builds it). */
export const configV1Schema = builtOnUse(() => {
  const kBackendV1Schema = z
    .discriminatedUnion('type', [
      z.strictObject({ type: z.literal('localfs'), config: kLocalFsSchema.prefault({}) }),
      z.strictObject({ type: z.literal('localdisk'), config: kLocalDiskSchema.prefault({}) }),
      z.strictObject({ type: z.literal('oss'), config: kOssSchema.prefault({}) }),
      z.strictObject({ type: z.literal('s3'), config: kS3Schema.prefault({}) }),
      z.strictObject({ type: z.literal('registry'), config: kRegistrySchema.prefault({}) }),
      z.strictObject({ type: z.literal('http-proxy'), config: kHttpProxySchema.prefault({}) }),
    ])
    .describe('storage backend: type and its config');

  const kCacheCommon = {
    compressed: z.boolean().default(false).describe('cache compressed chunks (.blob.raw)'),
    validate: z.boolean().default(false).describe('validate chunk digests'),
  };

  const kCacheV1Schema = z.preprocess(
    // An absent `type` means no cache, as upstream's `#[serde(default)]` on the type field.
    (v) => (v !== null && typeof v === 'object' && !Array.isArray(v) && !('type' in v) ? { ...v, type: '' } : v),
    z
      .discriminatedUnion('type', [
        z.strictObject({ type: z.literal('blobcache'), ...kCacheCommon, config: kFileCacheSchema.prefault({}) }),
        z.strictObject({ type: z.literal('filecache'), ...kCacheCommon, config: kFileCacheSchema.prefault({}) }),
        z.strictObject({ type: z.literal('fscache'), ...kCacheCommon, config: kFsCacheSchema.prefault({}) }),
        z.strictObject({ type: z.literal('dummycache'), ...kCacheCommon, config: z.unknown().optional() }),
        z.strictObject({ type: z.literal(''), ...kCacheCommon, config: z.unknown().optional() }),
      ])
      .describe('blob cache: type and its config'),
  );

  const kFsPrefetchSchema = z
    .strictObject({
      enable: z.boolean().default(false).describe('enable prefetch'),
      threads_count: u64().default(8).describe('prefetch workers, 1..1024'),
      merging_size: u64().default(kDefaultBatchSize).describe('bytes per merged prefetch request'),
      bandwidth_rate: u32().default(0).describe('bytes per second, 0 = unlimited'),
      prefetch_all: z.boolean().default(true).describe('prefetch the whole image'),
      stream_prefetch: z.boolean().default(false).describe('one rangeless GET per blob through Dragonfly'),
    })
    .describe('filesystem prefetch');

  return z
    .strictObject({
      device: z
        .strictObject({
          id: z.string().default('').describe('instance identifier'),
          backend: kBackendV1Schema,
          cache: kCacheV1Schema.optional(),
        })
        .describe('storage: backend and cache'),
      mode: z.enum(['direct', 'cached']).default('direct').describe('metadata mode; "cached" is v5-only'),
      digest_validate: z.boolean().default(false).describe('validate chunk digests'),
      iostats_files: z.boolean().default(false).describe('per-file I/O statistics'),
      enable_xattr: z.boolean().default(false).describe('expose extended attributes'),
      access_pattern: z.boolean().default(false).describe('record the access pattern'),
      latest_read_files: z.boolean().default(false).describe('record recently read files'),
      amplify_io: uint(kMaxBatchSize).default(kDefaultBatchSize).describe('read amplification, bytes, <= 256 MiB'),
      fs_prefetch: kFsPrefetchSchema.prefault({}),
      entry_timeout: z.number().min(0).max(2 ** 40).default(2 ** 32).describe('seconds the kernel may cache names (our extension)'),
      attr_timeout: z.number().min(0).max(2 ** 40).default(2 ** 32).describe('seconds the kernel may cache attributes (our extension)'),
    })
    .describe('nydusd configuration v1');
});

export type ConfigV1 = z.infer<ReturnType<typeof configV1Schema>>;
