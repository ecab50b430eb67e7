/**
 * Environment variables nydusd honours (reference/nydusd-cli-api.md §1.1):
 * - IMAGE_PULL_AUTH: base64(user:pass), overrides the registry backend's `auth`;
 * - NYDUS_HEADER_<Name>=<value>: an extra HTTP header on every backend request (the registry,
 *   OSS, S3 and http-proxy backends use them; `User-Agent: nydusd/1.0.0` is always sent).
 */
import type { NydusConfig } from './schema-v2.js';

export const kUserAgent = 'nydusd/1.0.0';
const kHeaderPrefix = 'NYDUS_HEADER_';
const kTokenRe = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

export interface BackendEnvironment {
  /** Headers for backend requests, User-Agent first; env entries may override it. */
  headers: Record<string, string>;
  /** Names of NYDUS_HEADER_* variables skipped because the name or value is not a valid header. */
  rejected: string[];
  imagePullAuth: string | undefined;
}

export function readBackendEnvironment(env: NodeJS.ProcessEnv = process.env): BackendEnvironment {
  const headers: Record<string, string> = { 'User-Agent': kUserAgent };
  const rejected: string[] = [];
  for (const [key, value] of Object.entries(env)) {
    if (!key.startsWith(kHeaderPrefix) || value === undefined) continue;
    const name = key.slice(kHeaderPrefix.length);
    // Header values: visible ASCII and tabs/spaces, no CR/LF (no header injection).
    if (!kTokenRe.test(name) || !/^[\t\x20-\x7e]*$/.test(value)) {
      rejected.push(key);
      continue;
    }
    headers[name] = value;
  }
  const auth = env['IMAGE_PULL_AUTH'];
  return { headers, rejected, imagePullAuth: auth === undefined || auth === '' ? undefined : auth };
}

/** Returns the config with IMAGE_PULL_AUTH applied (only when a registry section exists, as upstream). */
export function applyImagePullAuth(cfg: NydusConfig, auth: string | undefined): NydusConfig {
  if (auth === undefined || !cfg.backend?.registry) return cfg;
  return { ...cfg, backend: { ...cfg.backend, registry: { ...cfg.backend.registry, auth } } };
}
