/**
 * TOML parsing for configurations and blob cache entries, with smol-toml loaded on first use:
 * most configurations are JSON, and its nine modules cost ~5 ms of every daemon start otherwise.
 * createRequire keeps the callers synchronous (smol-toml ships a CommonJS build).
 */
import { createRequire } from 'node:module';

import type * as SmolToml from 'smol-toml';

let parse: typeof SmolToml.parse | undefined;

/** smol-toml's parse(): a TOML table, or its error (message, line, column) on bad syntax. */
export function parseToml(text: string): Record<string, unknown> {
  parse ??= (createRequire(import.meta.url)('smol-toml') as typeof SmolToml).parse;
  return parse(text);
}
