/**
 * Config v2 (JSON or TOML, `version = 2`), the normalized form the rest of the daemon reads: a v1
 * file is translated into this shape (translate.ts). Mirrors upstream `ConfigV2`.
 *
 * `backend` keeps upstream's shape (`type` plus one section per backend type, several sections
 * may coexist and only the one named by `type` is used); `resolveBackend()` turns it into a
 * discriminated union for the code that builds the backend.
 */
import * as z from 'zod';

import {
  kBackendTypes,
  kCacheTypes,
  kDefaultBatchSize,
  kFileCacheSchema,
  kFsCacheSchema,
  kHttpProxySchema,
  kLocalDiskSchema,
  kLocalFsSchema,
  kMaxBatchSize,
  kOssSchema,
  kPrefetchV2Schema,
  kRegistrySchema,
  kS3Schema,
  builtOnUse,
  uint,
} from './schema-common.js';
import type {
  HttpProxyConfig,
  LocalDiskConfig,
  LocalFsConfig,
  OssConfig,
  RegistryConfig,
  S3Config,
} from './schema-common.js';

export const backendV2Schema = builtOnUse(() =>
  z
    .strictObject({
      type: z.enum(kBackendTypes).describe('storage backend type'),
      localfs: kLocalFsSchema.optional(),
      localdisk: kLocalDiskSchema.optional(),
      oss: kOssSchema.optional(),
      s3: kS3Schema.optional(),
      registry: kRegistrySchema.optional(),
      'http-proxy': kHttpProxySchema.optional(),
    })
    .describe('storage backend: `type` selects the section that is used'),
);

export const cacheV2Schema = builtOnUse(() =>
  z
    .strictObject({
      type: z.enum(kCacheTypes).default('').describe('blobcache|filecache (cache files), dummycache|"" (no cache), fscache'),
      compressed: z.boolean().default(false).describe('cache compressed chunks (.blob.raw)'),
      validate: z.boolean().default(false).describe('validate chunk digests'),
      prefetch: kPrefetchV2Schema.prefault({}),
      filecache: kFileCacheSchema.optional(),
      fscache: kFsCacheSchema.optional(),
    })
    .describe('blob cache'),
);

/** The image is immutable, so kernel caches may keep names and attributes (practically) forever. */
export const kDefaultFsTimeout = 2 ** 32;

export const rafsV2Schema = builtOnUse(() =>
  z
    .strictObject({
      mode: z.enum(['direct', 'cached']).default('direct').describe('metadata mode; "cached" is v5-only'),
      batch_size: uint(kMaxBatchSize).default(kDefaultBatchSize).describe('read amplification (amplify_io), bytes, <= 256 MiB'),
      validate: z.boolean().default(false).describe('validate chunk digests'),
      enable_xattr: z.boolean().default(false).describe('expose extended attributes'),
      iostats_files: z.boolean().default(false).describe('per-file I/O statistics'),
      access_pattern: z.boolean().default(false).describe('record the access pattern'),
      latest_read_files: z.boolean().default(false).describe('record recently read files'),
      entry_timeout: z.number().min(0).max(2 ** 40).default(kDefaultFsTimeout).describe('seconds the kernel may cache names, incl. missing ones (our extension; upstream fixes 2^32)'),
      attr_timeout: z.number().min(0).max(2 ** 40).default(kDefaultFsTimeout).describe('seconds the kernel may cache attributes (our extension; upstream fixes 2^32)'),
      prefetch: kPrefetchV2Schema.prefault({}),
    })
    .describe('RAFS filesystem'),
);

export const overlaySchema = builtOnUse(() =>
  z
    .strictObject({
      upper_dir: z.string().default('').describe('writable upper directory'),
      work_dir: z.string().default('').describe('overlay work directory'),
    })
    .describe('writable overlay'),
);

/** The v2 schema, built on first use (a v1 start builds only the v1 schema). */
export const configV2Schema = builtOnUse(() =>
  z
    .strictObject({
      version: z.literal(2).describe('configuration format version, must be 2'),
      id: z.string().default('').describe('instance identifier'),
      backend: backendV2Schema().optional(),
      external_backends: z.array(z.record(z.string(), z.unknown())).default([]).describe('external blob backends'),
      cache: cacheV2Schema().optional(),
      rafs: rafsV2Schema().optional(),
      overlay: overlaySchema().optional(),
    })
    .describe('nydusd configuration v2'),
);

export type BackendConfigV2 = z.infer<ReturnType<typeof backendV2Schema>>;
export type CacheConfigV2 = z.infer<ReturnType<typeof cacheV2Schema>>;
export type RafsConfigV2 = z.infer<ReturnType<typeof rafsV2Schema>>;
/** The normalized configuration (v2 shape) every consumer reads. */
export type NydusConfig = z.infer<ReturnType<typeof configV2Schema>>;

/** The backend section selected by `type`, as a discriminated union. */
export type ResolvedBackend =
  | { type: 'localfs'; config: LocalFsConfig }
  | { type: 'localdisk'; config: LocalDiskConfig }
  | { type: 'oss'; config: OssConfig }
  | { type: 's3'; config: S3Config }
  | { type: 'registry'; config: RegistryConfig }
  | { type: 'http-proxy'; config: HttpProxyConfig };

/** undefined when the section named by `type` is absent (validateConfig reports that). */
export function resolveBackend(b: BackendConfigV2): ResolvedBackend | undefined {
  switch (b.type) {
    case 'localfs':
      return b.localfs && { type: 'localfs', config: b.localfs };
    case 'localdisk':
      return b.localdisk && { type: 'localdisk', config: b.localdisk };
    case 'oss':
      return b.oss && { type: 'oss', config: b.oss };
    case 's3':
      return b.s3 && { type: 's3', config: b.s3 };
    case 'registry':
      return b.registry && { type: 'registry', config: b.registry };
    case 'http-proxy':
      return b['http-proxy'] && { type: 'http-proxy', config: b['http-proxy'] };
  }
}
