/**
 * The configuration reference, generated from the v2 schema (every field's `.describe()`, type
 * and default), so the documentation cannot drift from what the parser accepts. README's
 * "Configuration reference" table is this output; a unit test keeps the two equal.
 */
import type { z } from 'zod';

import { configV2Schema } from './schema-v2.js';

export interface ReferenceRow {
  key: string;
  type: string;
  default: string;
  description: string;
}

interface Def {
  type: string;
  innerType?: z.ZodType;
  shape?: Record<string, z.ZodType>;
  element?: z.ZodType;
  entries?: Record<string, string>;
  values?: unknown[];
  defaultValue?: unknown;
}

function def(s: z.ZodType): Def {
  return (s as unknown as { def: Def }).def;
}

/** The schema itself for a section built on first use (z.lazy, schema-common.ts). */
function built(s: z.ZodType): z.ZodType {
  return def(s).type === 'lazy' ? built((s as z.ZodLazy<z.ZodType>).unwrap()) : s;
}

/** Strips optional/default/prefault wrappers, collecting the description and default on the way. */
function unwrap(s: z.ZodType): { core: z.ZodType; description: string | undefined; dflt: unknown; hasDefault: boolean } {
  let core = s;
  let description = s.description;
  let dflt: unknown;
  let hasDefault = false;
  for (;;) {
    const d = def(core);
    if ((d.type === 'optional' || d.type === 'default' || d.type === 'prefault') && d.innerType) {
      if (d.type === 'default') {
        dflt = d.defaultValue;
        hasDefault = true;
      }
      core = d.innerType;
      description ??= core.description;
      continue;
    }
    if (d.type === 'lazy') {
      core = built(core);
      description ??= core.description;
      continue;
    }
    return { core, description, dflt, hasDefault };
  }
}

function typeName(s: z.ZodType): string {
  const d = def(s);
  switch (d.type) {
    case 'enum':
      return Object.values(d.entries ?? {})
        .map((v) => (v === '' ? '""' : v))
        .join(' \\| ');
    case 'literal':
      return (d.values ?? []).map((v) => JSON.stringify(v)).join(' \\| ');
    case 'array':
      return d.element ? `${typeName(built(d.element))}[]` : 'array';
    case 'record':
      return 'object';
    case 'number':
      return 'integer';
    default:
      return d.type;
  }
}

function walk(s: z.ZodType, prefix: string, rows: ReferenceRow[]): void {
  const shape = def(s).shape ?? {};
  for (const [key, field] of Object.entries(shape)) {
    const { core, description, dflt, hasDefault } = unwrap(field);
    const path = prefix === '' ? key : `${prefix}.${key}`;
    if (def(core).type === 'object') {
      walk(core, path, rows);
      continue;
    }
    rows.push({
      key: path,
      type: typeName(core),
      default: hasDefault ? JSON.stringify(dflt) : '',
      description: description ?? '',
    });
    // Arrays of sections (mirrors) list their fields as `key[].field`.
    const array = def(core);
    const element = array.type === 'array' && array.element ? built(array.element) : undefined;
    if (element && def(element).type === 'object') walk(element, `${path}[]`, rows);
  }
}

export function configReferenceRows(): ReferenceRow[] {
  const rows: ReferenceRow[] = [];
  walk(configV2Schema(), '', rows);
  return rows;
}

/** Markdown table of every v2 key. */
export function configReferenceMarkdown(): string {
  const lines = ['| key | type | default | description |', '|---|---|---|---|'];
  for (const r of configReferenceRows()) {
    lines.push(`| \`${r.key}\` | ${r.type} | ${r.default === '' ? '' : `\`${r.default}\``} | ${r.description} |`);
  }
  return lines.join('\n');
}
