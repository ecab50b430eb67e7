/**
 * Loading a nydusd configuration: syntax, then schema, then translation, in upstream's order
 * (v2 JSON, v2 TOML, v1 JSON). A JSON document with `version` is v2, one with `device` is v1;
 * anything else is tried as TOML v2.
 *
 * Unknown keys are dropped with a warning naming them (upstream drops them silently). Messages
 * name the source, the key path and the problem, never a value, so secrets cannot leak.
 */
import { readFileSync, statSync } from 'node:fs';

import type { z } from 'zod';

import { ConfigError } from './errors.js';
import { looksLikeJson, parseJsonc } from './jsonc.js';
import { configV1Schema } from './schema-v1.js';
import { configV2Schema } from './schema-v2.js';
import type { NydusConfig } from './schema-v2.js';
import { parseToml } from './toml.js';
import { translateV1 } from './translate.js';
import { validateConfig } from './validate.js';
import type { ConfigOrigin } from './validate.js';

/** Upstream refuses configuration files above 1 MiB; so do we. */
export const kMaxConfigBytes = 0x100000;

export type ConfigFormat = 'v2-json' | 'v2-toml' | 'v1-json';

export interface LoadedConfig {
  config: NydusConfig;
  format: ConfigFormat;
  origin: ConfigOrigin;
  /** One line each: unknown keys, tolerated syntax. */
  warnings: string[];
  source: string;
}

// Keys users still have from older docs; the warning says why they do nothing.
const kKeyHints: Record<string, string> = {
  metadata_path: 'only blob cache entries use it',
  metadata_file: 'did you mean metadata_path?',
  prefetch_config: 'v1 configs take prefetch from fs_prefetch',
  compressed: 'did you mean device.cache.compressed?',
};

type Path = readonly PropertyKey[];

export function formatPath(path: Path): string {
  let s = '';
  for (const p of path) {
    if (typeof p === 'number') s += `[${p}]`;
    else s += s === '' ? String(p) : `.${String(p)}`;
  }
  return s === '' ? '(top level)' : s;
}

function valueAt(root: unknown, path: Path): unknown {
  let v = root;
  for (const p of path) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<PropertyKey, unknown>)[p];
  }
  return v;
}

function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (v instanceof Date) return 'date';
  return typeof v;
}

/** One issue as "path: problem", never quoting the input value. */
function describeIssue(issue: z.core.$ZodIssue, root: unknown): string {
  const path = formatPath(issue.path);
  const present = valueAt(root, issue.path);
  switch (issue.code) {
    case 'invalid_type': {
      if (present === undefined) return `${path}: required`;
      const expected = issue.expected === 'int' ? 'an integer' : issue.expected;
      return `${path}: expected ${expected}, got ${typeName(present)}`;
    }
    case 'invalid_value':
      if (issue.values.length === 1) return `${path}: must be ${JSON.stringify(issue.values[0])}`;
      return `${path}: expected one of ${issue.values.map((v) => String(v)).join(', ')}`;
    case 'invalid_union': {
      const options = (issue as { options?: unknown[] }).options;
      if (Array.isArray(options)) {
        const list = options.map((o) => (o === '' ? '""' : String(o))).join(', ');
        return present === undefined ? `${path}: required, one of ${list}` : `${path}: expected one of ${list}`;
      }
      return `${path}: invalid value`;
    }
    case 'too_big':
      return `${path}: must be <= ${String(issue.maximum)}`;
    case 'too_small':
      return `${path}: must be >= ${String(issue.minimum)}`;
    case 'not_multiple_of':
      return `${path}: must be a multiple of ${String(issue.divisor)}`;
    case 'custom':
    case 'invalid_element':
    case 'invalid_format':
    case 'invalid_key':
    case 'unrecognized_keys':
      return `${path}: ${issue.message}`;
  }
}

function deleteAt(root: unknown, path: Path, key: string): void {
  const parent = valueAt(root, path);
  if (parent !== null && typeof parent === 'object') delete (parent as Record<string, unknown>)[key];
}

/**
 * Parses `value` with a strict schema; unknown keys become warnings and are removed before a
 * second pass. Throws a ConfigError listing every other problem.
 */
export function parseWithSchema<T extends z.ZodType>(
  schema: T,
  value: unknown,
  source: string,
  warnings: string[],
): z.output<T> {
  const first = schema.safeParse(value);
  if (first.success) return first.data;
  const unknown = first.error.issues.filter((i) => i.code === 'unrecognized_keys');
  const problems = first.error.issues.filter((i) => i.code !== 'unrecognized_keys');
  for (const issue of unknown) {
    for (const key of issue.keys) {
      const at = formatPath([...issue.path, key]);
      const hint = Object.hasOwn(kKeyHints, key) ? kKeyHints[key] : undefined;
      warnings.push(`${source}: unknown key ${at} ignored${hint ? ` (${hint})` : ''}`);
    }
  }
  if (problems.length > 0) {
    throw new ConfigError(`${source}: ${problems.map((i) => describeIssue(i, value)).join('; ')}`);
  }
  const cleaned = structuredClone(value);
  for (const issue of unknown) for (const key of issue.keys) deleteAt(cleaned, issue.path, key);
  const second = schema.safeParse(cleaned);
  if (second.success) return second.data;
  throw new ConfigError(`${source}: ${second.error.issues.map((i) => describeIssue(i, cleaned)).join('; ')}`);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function rejectNonNydusd(doc: Record<string, unknown>, source: string): never {
  if ('type' in doc && ('config_v2' in doc || 'config' in doc)) {
    throw new ConfigError(`${source}: this is a blob cache entry (type/id/config), not a nydusd configuration`);
  }
  throw new ConfigError(`${source}: not a nydusd configuration: expected "version": 2 (v2) or a "device" section (v1)`);
}

function tomlError(err: unknown, source: string): ConfigError {
  // smol-toml appends a code block quoting the offending line; keep only the description.
  const e = err as { message?: string; line?: number; column?: number };
  const what = (e.message ?? 'syntax error').split('\n')[0]?.replace(/^Invalid TOML document: /, '') ?? 'syntax error';
  const at = e.line !== undefined ? ` at line ${e.line} column ${e.column ?? 0}` : '';
  return new ConfigError(`${source}: invalid TOML${at}: ${what}`, { cause: err });
}

/** Parses configuration text (no semantic validation; see validateConfig). */
export function parseConfigText(text: string, source = 'config'): LoadedConfig {
  if (Buffer.byteLength(text) > kMaxConfigBytes) {
    throw new ConfigError(`${source}: configuration file is larger than ${kMaxConfigBytes} bytes`);
  }
  const warnings: string[] = [];
  if (looksLikeJson(text)) {
    const { value, notes } = parseJsonc(text, source);
    for (const n of notes) warnings.push(`${source}: ${n}`);
    if (!isObject(value)) throw new ConfigError(`${source}: the configuration must be a JSON object`);
    if ('version' in value) {
      const config = parseWithSchema(configV2Schema(), value, source, warnings);
      return { config, format: 'v2-json', origin: 'v2', warnings, source };
    }
    if ('device' in value) {
      const v1 = parseWithSchema(configV1Schema(), value, source, warnings);
      return { config: translateV1(v1), format: 'v1-json', origin: 'v1', warnings, source };
    }
    return rejectNonNydusd(value, source);
  }
  let doc: Record<string, unknown>;
  try {
    doc = parseToml(text);
  } catch (err) {
    throw tomlError(err, source);
  }
  if (!('version' in doc)) return rejectNonNydusd(doc, source);
  const config = parseWithSchema(configV2Schema(), doc, source, warnings);
  return { config, format: 'v2-toml', origin: 'v2', warnings, source };
}

/** Reads, parses and validates a configuration file. */
export function loadConfigFile(path: string): LoadedConfig {
  let text: string;
  try {
    const st = statSync(path);
    if (!st.isFile()) throw new ConfigError(`${path}: not a regular file`);
    if (st.size > kMaxConfigBytes) throw new ConfigError(`${path}: configuration file is larger than ${kMaxConfigBytes} bytes`);
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    throw new ConfigError(`${path}: cannot read the configuration file (${code})`, { cause: err });
  }
  const loaded = parseConfigText(text, path);
  validateConfig(loaded.config, loaded.origin, path);
  return loaded;
}
