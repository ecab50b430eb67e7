/**
 * The view of a configuration that may be logged or returned by the API: secrets replaced by
 * "<redacted>" (upstream `clone_without_secrets` blanks OSS keys and registry auth; we also cover
 * S3 keys, the cache encryption key, mirror header values and credentials embedded in URLs).
 */
export const kRedacted = '<redacted>';

const kSecretKeys = new Set(['access_key_id', 'access_key_secret', 'auth', 'registry_token', 'encryption_key', 'registry_auth']);

function redactUrl(s: string): string {
  // scheme://user:pass@host -> scheme://<redacted>@host
  return s.replace(/^([a-zA-Z][a-zA-Z0-9+.-]*:\/\/)[^/@]+@/, `$1${kRedacted}@`);
}

/** Header maps (mirror `headers`): names stay, every value may be a credential. */
function redactHeaders(h: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, val] of Object.entries(h)) out[k] = typeof val === 'string' && val !== '' ? kRedacted : val;
  return out;
}

function walk(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(walk);
  if (v !== null && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, val] of Object.entries(v)) {
      if (kSecretKeys.has(k) && typeof val === 'string') out[k] = val === '' ? '' : kRedacted;
      else if (k === 'headers' && val !== null && typeof val === 'object' && !Array.isArray(val)) out[k] = redactHeaders(val as Record<string, unknown>);
      else out[k] = walk(val);
    }
    return out;
  }
  if (typeof v === 'string') return redactUrl(v);
  return v;
}

/** A deep copy of `value` with every secret replaced; safe to log or serve. */
export function redactConfig<T>(value: T): T {
  return walk(value) as T;
}

/** Header values may carry tokens: only names are ever logged. */
export function describeHeaders(headers: Readonly<Record<string, string>>): string {
  return Object.keys(headers).join(', ');
}
