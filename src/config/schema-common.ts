/**
 * Field schemas shared by config v1 and v2: the backend sections (identical in both versions, v1
 * nests them under `device.backend.config`), the proxy sub-config, cache sections and numbers.
 * Defaults follow upstream `api/src/config.rs` (reference/nydusd-cli-api.md §1.4).
 *
 * Objects are strict so unknown keys surface as issues; the loader turns those into warnings
 * (upstream ignores them silently) and re-parses without them.
 */
import * as z from 'zod';

// zod compiles a fast path per object schema with new Function on its first parse: a
// configuration is parsed once per start (or per API mount), so that compiling cost ~5 ms of
// nydusd's start (issue 13) and never paid back.
z.config({ jitless: true });

export const kMaxBatchSize = 0x10000000;
export const kDefaultBatchSize = 1024 * 1024;
export const kBackendTypes = ['localfs', 'localdisk', 'oss', 's3', 'registry', 'http-proxy'] as const;
export type BackendType = (typeof kBackendTypes)[number];
export const kCacheTypes = ['blobcache', 'filecache', 'fscache', 'dummycache', ''] as const;
export type CacheType = (typeof kCacheTypes)[number];

/**
 * A schema built on its first use and kept: a start builds only the schemas of the configuration
 * version it reads (v1 or v2, not both), the larger part of its start-up JavaScript (issue 13).
 */
export function builtOnUse<T>(build: () => T): () => T {
  let schema: T | undefined;
  return () => (schema ??= build());
}

export function uint(max: number): z.ZodNumber {
  return z.number().int().min(0).max(max);
}
export const u8 = (): z.ZodNumber => uint(0xff);
export const u32 = (): z.ZodNumber => uint(0xffffffff);
export const u64 = (): z.ZodNumber => uint(Number.MAX_SAFE_INTEGER);

// The sections of backends and caches a start may not use (every one but localfs and the blob
// cache) are built on first use (z.lazy): building all of them was about half of the zod schemas
// a start constructed, the largest piece of nydusd's start-up JavaScript (issue 13).
export const kProxySchema = z.lazy(() => z
  .strictObject({
    url: z.string().default('').describe('proxy URL (e.g. Dragonfly dfdaemon); empty disables the proxy'),
    ping_url: z.string().default('').describe('health-check URL; empty disables health checks'),
    fallback: z.boolean().default(true).describe('go to the origin when the proxy fails or is unhealthy'),
    check_interval: u64().default(5).describe('health-check interval, seconds'),
    use_http: z.boolean().default(false).describe('rewrite https:// origin URLs to http:// through the proxy'),
    check_pause_elapsed: u64().default(300).describe('pause health checks after this many idle seconds'),
    dragonfly_scheduler_endpoint: z.string().default('').describe('Dragonfly scheduler endpoint (SDK mode)'),
  })
  .describe('HTTP proxy in front of the backend'));

export const kMirrorSchema = z.lazy(() => z
  .strictObject({
    host: z.string().describe('mirror base URL, scheme://host[:port] (e.g. a Dragonfly dfdaemon)'),
    ping_url: z.string().default('').describe('health-check URL of the mirror; empty: <host>/v2'),
    headers: z.record(z.string(), z.string()).default({}).describe('extra headers sent to this mirror (values are treated as secrets)'),
    health_check_interval: u64().default(5).describe('seconds between health checks of an unhealthy mirror'),
    failure_limit: u8().default(5).describe('failed requests before the mirror is skipped until its health check passes'),
    health_check_pause_elapsed: u64().default(300).describe('pause health checks after this many idle seconds'),
  })
  .describe('a mirror tried before the origin'));

/**
 * The seed's readahead log (reference/nydusd.md, localfs; removed upstream, kept here for every
 * backend): the ranges read in the first `readahead_sec` seconds are recorded next to the blob
 * cache and prefetched at the next start.
 */
function readaheadFields(): { readahead: z.ZodOptional<z.ZodBoolean>; readahead_sec: z.ZodOptional<z.ZodNumber> } {
  // Optional rather than defaulted, so backend sections built in code need not name them.
  return {
    readahead: z.boolean().optional().describe('record the ranges read after start and prefetch exactly them at the next start (needs a blob cache; default false)'),
    readahead_sec: uint(86400).optional().describe('seconds after start during which reads are recorded for readahead (default 10; 0: until the daemon stops)'),
  };
}

function netFields(): {
  readahead: z.ZodOptional<z.ZodBoolean>;
  readahead_sec: z.ZodOptional<z.ZodNumber>;
  skip_verify: z.ZodDefault<z.ZodBoolean>;
  ca_cert_files: z.ZodDefault<z.ZodArray<z.ZodString>>;
  timeout: z.ZodDefault<z.ZodNumber>;
  connect_timeout: z.ZodDefault<z.ZodNumber>;
  retry_limit: z.ZodDefault<z.ZodNumber>;
  proxy: z.ZodPrefault<typeof kProxySchema>;
  mirrors: z.ZodDefault<z.ZodArray<typeof kMirrorSchema>>;
} {
  return {
    ...readaheadFields(),
    skip_verify: z.boolean().default(false).describe('skip TLS certificate verification'),
    ca_cert_files: z.array(z.string()).default([]).describe('extra PEM CA certificate files to trust'),
    timeout: u32().default(5).describe('seconds a request may wait for the reply headers or for more body bytes'),
    connect_timeout: u32().default(5).describe('connection timeout, seconds'),
    retry_limit: u8().default(0).describe('retries of a failed read; on-demand reads always get at least 3 (upstream)'),
    proxy: kProxySchema.prefault({}),
    mirrors: z.array(kMirrorSchema).default([]).describe('mirrors tried in order before the origin (conflicts with proxy)'),
  };
}

export const kLocalFsSchema = z
  .strictObject({
    blob_file: z.string().default('').describe('one blob file serving every blob id (overrides dir)'),
    dir: z.string().default('').describe('directory holding blob files named by blob id'),
    alt_dirs: z.array(z.string()).default([]).describe('directories searched when the file in dir is missing or empty'),
    ...readaheadFields(),
  })
  .describe('local directory backend');

export const kLocalDiskSchema = z.lazy(() => z
  .strictObject({
    device_path: z.string().default('').describe('block device or disk image holding blobs as GPT partitions'),
    disable_gpt: z.boolean().default(false).describe('do not scan the GPT for blobs'),
    ...readaheadFields(),
  })
  .describe('local disk backend (experimental)'));

export const kOssSchema = z.lazy(() => z
  .strictObject({
    scheme: z.string().default('https').describe('http or https'),
    endpoint: z.string().default('').describe('OSS endpoint, e.g. region.aliyuncs.com'),
    bucket_name: z.string().default('').describe('bucket'),
    object_prefix: z.string().default('').describe('prefix of object keys, e.g. nydus/'),
    access_key_id: z.string().default('').describe('access key id (secret)'),
    access_key_secret: z.string().default('').describe('access key secret (secret)'),
    ...netFields(),
  })
  .describe('Aliyun OSS backend'));

export const kS3Schema = z.lazy(() => z
  .strictObject({
    scheme: z.string().default('https').describe('http or https'),
    endpoint: z.string().default('s3.amazonaws.com').describe('S3 endpoint'),
    region: z.string().default('').describe('region'),
    bucket_name: z.string().default('').describe('bucket'),
    object_prefix: z.string().default('').describe('prefix of object keys'),
    access_key_id: z.string().default('').describe('access key id (secret)'),
    access_key_secret: z.string().default('').describe('access key secret (secret)'),
    ...netFields(),
  })
  .describe('Amazon S3 backend'));

export const kRegistrySchema = z.lazy(() => z
  .strictObject({
    scheme: z.string().default('https').describe('http or https'),
    host: z.string().default('').describe('registry host[:port]'),
    repo: z.string().default('').describe('repository, namespace/repo (no tag)'),
    auth: z.string().optional().describe('base64(username:password) (secret); IMAGE_PULL_AUTH overrides it'),
    registry_token: z.string().optional().describe('bearer token (secret)'),
    blob_url_scheme: z.string().default('').describe('scheme for blob URLs after a redirect'),
    blob_redirected_host: z.string().default('').describe('host for blob URLs after a redirect'),
    ...netFields(),
  })
  .describe('OCI registry backend'));

export const kHttpProxySchema = z.lazy(() => z
  .strictObject({
    addr: z.string().default('').describe('http(s)://host[:port] or an absolute Unix socket path'),
    path: z.string().default('').describe('URL path prefix of blobs'),
    ...netFields(),
  })
  .describe('HTTP proxy backend (HEAD for size, GET with Range for data)'));

export const kFileCacheSchema = z
  .strictObject({
    work_dir: z.string().default('.').describe('directory of the cache files'),
    disable_indexed_map: z.boolean().default(false).describe('deprecated; keep false'),
    enable_encryption: z.boolean().default(false).describe('encrypt data in the cache files'),
    enable_convergent_encryption: z.boolean().default(false).describe('derive keys per chunk (allows dedup)'),
    encryption_key: z.string().default('').describe('hex of a 32-byte key (secret)'),
  })
  .describe('blob cache files');

export const kFsCacheSchema = z.lazy(() => z
  .strictObject({
    work_dir: z.string().default('.').describe('fscache working directory'),
  })
  .describe('Linux fscache (EROFS over fscache)'));

export const kPrefetchV2Schema = z
  .strictObject({
    enable: z.boolean().default(false).describe('enable prefetch'),
    threads: u64().default(8).describe('prefetch workers, 1..1024'),
    batch_size: u64().default(kDefaultBatchSize).describe('bytes per prefetch request, <= 256 MiB'),
    bandwidth_limit: u32().default(0).describe('bytes per second, 0 = unlimited'),
    prefetch_all: z.boolean().default(false).describe('prefetch the whole image'),
    stream_prefetch: z.boolean().default(false).describe('one rangeless GET per blob through Dragonfly'),
  })
  .describe('prefetch');

export type ProxyConfig = z.infer<typeof kProxySchema>;
export type MirrorConfig = z.infer<typeof kMirrorSchema>;
export type LocalFsConfig = z.infer<typeof kLocalFsSchema>;
export type LocalDiskConfig = z.infer<typeof kLocalDiskSchema>;
export type OssConfig = z.infer<typeof kOssSchema>;
export type S3Config = z.infer<typeof kS3Schema>;
export type RegistryConfig = z.infer<typeof kRegistrySchema>;
export type HttpProxyConfig = z.infer<typeof kHttpProxySchema>;
export type FileCacheConfig = z.infer<typeof kFileCacheSchema>;
export type FsCacheConfig = z.infer<typeof kFsCacheSchema>;
export type PrefetchConfig = z.infer<typeof kPrefetchV2Schema>;
