/**
 * Semantic checks of a parsed configuration, the rules of upstream `ConfigV2::validate()`:
 * required backend fields per type, the cache section matching the cache type, prefetch limits.
 * Paths are v2 paths; for a v1 file they are mapped back to the keys the user wrote.
 *
 * Kept apart from parsing so the sample configs that are templates (nydus-snapshotter fills in
 * the registry host and repo) still parse, and the daemon rejects them with a precise message.
 */
import { ConfigError } from './errors.js';
import { kMaxBatchSize } from './schema-common.js';
import type { MirrorConfig, PrefetchConfig, ProxyConfig } from './schema-common.js';
import type { NydusConfig } from './schema-v2.js';

export interface ConfigIssue {
  path: string;
  problem: string;
}

export type ConfigOrigin = 'v1' | 'v2';

function prefetchIssues(p: PrefetchConfig, at: string, out: ConfigIssue[]): void {
  if (!p.enable) return;
  if (p.batch_size > kMaxBatchSize) out.push({ path: `${at}.batch_size`, problem: `must be <= ${kMaxBatchSize}` });
  if (p.threads < 1 || p.threads > 1024) out.push({ path: `${at}.threads`, problem: 'must be 1..1024 when prefetch is enabled' });
}

function required(v: string, path: string, out: ConfigIssue[], why = 'required'): void {
  if (v === '') out.push({ path, problem: why });
}

const kHttpUrl = /^https?:\/\/[^/]/;

/** The fields every network backend shares: scheme, proxy, mirrors. */
function netIssues(n: { scheme?: string; proxy: ProxyConfig; mirrors: MirrorConfig[] }, at: string, out: ConfigIssue[]): void {
  if (n.scheme !== undefined && n.scheme !== '' && n.scheme !== 'http' && n.scheme !== 'https') {
    out.push({ path: `${at}.scheme`, problem: 'must be "http" or "https"' });
  }
  if (n.proxy.url !== '' && !kHttpUrl.test(n.proxy.url)) out.push({ path: `${at}.proxy.url`, problem: 'must be an http:// or https:// URL' });
  if (n.proxy.ping_url !== '' && !kHttpUrl.test(n.proxy.ping_url)) out.push({ path: `${at}.proxy.ping_url`, problem: 'must be an http:// or https:// URL' });
  if (n.proxy.url !== '' && n.mirrors.length > 0) out.push({ path: `${at}.mirrors`, problem: 'proxy and mirrors cannot be configured at the same time' });
  n.mirrors.forEach((m, i) => {
    if (!kHttpUrl.test(m.host)) out.push({ path: `${at}.mirrors[${i}].host`, problem: 'must be an http:// or https:// URL' });
    if (m.ping_url !== '' && !kHttpUrl.test(m.ping_url)) out.push({ path: `${at}.mirrors[${i}].ping_url`, problem: 'must be an http:// or https:// URL' });
  });
}

/** All semantic issues of `cfg`, with v2 paths. */
export function configIssues(cfg: NydusConfig): ConfigIssue[] {
  const out: ConfigIssue[] = [];
  const b = cfg.backend;
  if (b) {
    const t = b.type;
    const at = `backend.${t}`;
    switch (t) {
      case 'localfs':
        if (!b.localfs) out.push({ path: at, problem: `section required when backend.type is "${t}"` });
        else if (b.localfs.dir === '' && b.localfs.blob_file === '') out.push({ path: `${at}.dir`, problem: 'required (or blob_file)' });
        break;
      case 'localdisk':
        if (!b.localdisk) out.push({ path: at, problem: `section required when backend.type is "${t}"` });
        else required(b.localdisk.device_path, `${at}.device_path`, out);
        break;
      case 'oss':
        if (!b.oss) out.push({ path: at, problem: `section required when backend.type is "${t}"` });
        else {
          required(b.oss.endpoint, `${at}.endpoint`, out);
          required(b.oss.bucket_name, `${at}.bucket_name`, out);
          netIssues(b.oss, at, out);
        }
        break;
      case 's3':
        if (!b.s3) out.push({ path: at, problem: `section required when backend.type is "${t}"` });
        else {
          required(b.s3.region, `${at}.region`, out);
          required(b.s3.bucket_name, `${at}.bucket_name`, out);
          netIssues(b.s3, at, out);
        }
        break;
      case 'registry':
        if (!b.registry) out.push({ path: at, problem: `section required when backend.type is "${t}"` });
        else {
          required(b.registry.host, `${at}.host`, out);
          required(b.registry.repo, `${at}.repo`, out);
          netIssues(b.registry, at, out);
        }
        break;
      case 'http-proxy': {
        const h = b['http-proxy'];
        if (!h) out.push({ path: at, problem: `section required when backend.type is "${t}"` });
        else if (!/^https?:\/\//.test(h.addr) && !h.addr.startsWith('/')) {
          out.push({ path: `${at}.addr`, problem: 'must be http://, https:// or an absolute Unix socket path' });
        } else {
          netIssues(h, at, out);
        }
        break;
      }
    }
  }
  const c = cfg.cache;
  if (c) {
    if (c.type === 'blobcache' || c.type === 'filecache') {
      if (!c.filecache) out.push({ path: 'cache.filecache', problem: `section required when cache.type is "${c.type}"` });
      else required(c.filecache.work_dir, 'cache.filecache.work_dir', out, 'must not be empty');
    } else if (c.type === 'fscache') {
      if (!c.fscache) out.push({ path: 'cache.fscache', problem: 'section required when cache.type is "fscache"' });
      else required(c.fscache.work_dir, 'cache.fscache.work_dir', out, 'must not be empty');
    }
    prefetchIssues(c.prefetch, 'cache.prefetch', out);
  }
  if (cfg.rafs) prefetchIssues(cfg.rafs.prefetch, 'rafs.prefetch', out);
  return out;
}

const kV1Prefetch: Record<string, string> = {
  threads: 'threads_count',
  batch_size: 'merging_size',
  bandwidth_limit: 'bandwidth_rate',
};

/** Maps a v2 path to the v1 key the user wrote (v1 files are translated before checking). */
export function v1Path(path: string): string {
  const parts = path.split('.');
  const [a, b, c] = parts;
  if (a === 'backend' && b !== undefined) return ['device.backend.config', ...parts.slice(2)].join('.');
  if (a === 'cache' && (b === 'filecache' || b === 'fscache')) return ['device.cache.config', ...parts.slice(2)].join('.');
  if ((a === 'cache' || a === 'rafs') && b === 'prefetch') return `fs_prefetch${c ? `.${kV1Prefetch[c] ?? c}` : ''}`;
  if (a === 'rafs' && b === 'batch_size') return 'amplify_io';
  if (a === 'rafs' && b === 'mode') return 'mode';
  if (a === 'rafs' && b === 'validate') return 'digest_validate';
  if (a === 'rafs' && b !== undefined) return b;
  return path;
}

/** Throws one ConfigError naming every issue (`source: path: problem; ...`). */
export function validateConfig(cfg: NydusConfig, origin: ConfigOrigin, source: string): void {
  const issues = configIssues(cfg);
  if (issues.length === 0) return;
  const seen = new Set<string>();
  const parts: string[] = [];
  for (const i of issues) {
    const line = `${origin === 'v1' ? v1Path(i.path) : i.path}: ${i.problem}`;
    if (seen.has(line)) continue;
    seen.add(line);
    parts.push(line);
  }
  throw new ConfigError(`${source}: ${parts.join('; ')}`);
}
