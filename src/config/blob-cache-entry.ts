/**
 * Blob cache entries (`BlobCacheEntry` in upstream api/src/config.rs): what `PUT /api/v2/blobs`
 * and `nydusd nbd`/`singleton` take. Not a nydusd configuration, but the samples ship next to
 * them and users confuse the two, so the loader recognises both. The legacy `config` form is
 * converted to `config_v2` as upstream does.
 */
import * as z from 'zod';

import { ConfigError } from './errors.js';
import { looksLikeJson, parseJsonc } from './jsonc.js';
import { parseWithSchema } from './load.js';
import { backendV2Schema, cacheV2Schema } from './schema-v2.js';
import { builtOnUse } from './schema-common.js';
import type { NydusConfig } from './schema-v2.js';
import { parseToml } from './toml.js';
import { configIssues } from './validate.js';

// Built on first use (all three), like the configuration schemas: most starts never read a blob cache entry.
export const blobCacheEntryConfigV2Schema = builtOnUse(() =>
  z
    .strictObject({
      version: z.literal(2).describe('must be 2'),
      id: z.string().default('').describe('factory identifier'),
      backend: backendV2Schema(),
      cache: cacheV2Schema().prefault({}),
      metadata_path: z.string().optional().describe('RAFS metadata file of the blob'),
    })
    .describe('blob cache entry configuration'),
);

const legacySchema = builtOnUse(() => z.strictObject({
  id: z.string().default(''),
  backend_type: z.string(),
  backend_config: z.record(z.string(), z.unknown()).default({}),
  cache_type: z.string().default(''),
  cache_config: z.record(z.string(), z.unknown()).default({}),
  prefetch_config: z
    .strictObject({
      enable: z.boolean().default(false),
      threads_count: z.number().int().min(0).default(0),
      merging_size: z.number().int().min(0).default(0),
      bandwidth_rate: z.number().int().min(0).default(0),
    })
    .prefault({}),
  metadata_path: z.string().optional(),
}));

const entrySchema = builtOnUse(() => z.strictObject({
  type: z.enum(['bootstrap', 'datablob']).describe('blob object type'),
  id: z.string().describe('blob id'),
  domain_id: z.string().default('').describe('management domain'),
  config: z.unknown().optional().describe('legacy configuration'),
  config_v2: z.unknown().optional().describe('configuration'),
}));

export type BlobCacheEntryConfigV2 = z.infer<ReturnType<typeof blobCacheEntryConfigV2Schema>>;

export interface BlobCacheEntry {
  type: 'bootstrap' | 'datablob';
  id: string;
  domainId: string;
  config: BlobCacheEntryConfigV2;
  warnings: string[];
}

function fromLegacy(raw: unknown, source: string, warnings: string[]): unknown {
  const l = parseWithSchema(legacySchema(), raw, `${source}: config`, warnings);
  const cacheSection = l.cache_type === 'fscache' ? 'fscache' : 'filecache';
  return {
    version: 2,
    id: l.id,
    backend: { type: l.backend_type, [l.backend_type]: l.backend_config },
    cache: {
      type: l.cache_type,
      ...(l.cache_type === '' || l.cache_type === 'dummycache' ? {} : { [cacheSection]: l.cache_config }),
      prefetch: {
        enable: l.prefetch_config.enable,
        threads: l.prefetch_config.threads_count,
        batch_size: l.prefetch_config.merging_size,
        bandwidth_limit: l.prefetch_config.bandwidth_rate,
        prefetch_all: true,
      },
    },
    ...(l.metadata_path === undefined ? {} : { metadata_path: l.metadata_path }),
  };
}

export function parseBlobCacheEntry(text: string, source = 'blob cache entry'): BlobCacheEntry {
  let doc: unknown;
  const warnings: string[] = [];
  if (looksLikeJson(text)) {
    doc = parseJsonc(text, source).value;
  } else {
    try {
      doc = parseToml(text);
    } catch (err) {
      throw new ConfigError(`${source}: invalid TOML: ${String((err as Error).message).split('\n')[0] ?? ''}`);
    }
  }
  const entry = parseWithSchema(entrySchema(), doc, source, warnings);
  let rawConfig: unknown;
  let at: string;
  if (entry.config_v2 !== undefined) {
    rawConfig = entry.config_v2;
    at = `${source}: config_v2`;
  } else if (entry.config !== undefined) {
    rawConfig = fromLegacy(entry.config, source, warnings);
    at = `${source}: config (converted)`;
  } else {
    throw new ConfigError(`${source}: config_v2 (or legacy config) is required`);
  }
  const config = parseWithSchema(blobCacheEntryConfigV2Schema(), rawConfig, at, warnings);
  const asNydus: NydusConfig = { version: 2, id: config.id, backend: config.backend, external_backends: [], cache: config.cache };
  const issues = configIssues(asNydus);
  if (issues.length > 0) throw new ConfigError(`${at}: ${issues.map((i) => `${i.path}: ${i.problem}`).join('; ')}`);
  return { type: entry.type, id: entry.id, domainId: entry.domain_id, config, warnings };
}
