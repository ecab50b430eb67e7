/**
 * Start-up fast path for the nydusd command line. Loading yargs costs ~50 ms, a quarter of the
 * start-to-ready budget (issue 6: < 200 ms), and launchers (QEMU descriptors, systemd units,
 * snapshotters) always pass the same plain shape:
 *
 *   [fuse|virtiofs|...] (--flag value | --flag=value | -X value)...
 *
 * each flag once, with values that need no interpretation. Those are read straight from the flag
 * table into the object yargs would return (same keys, camelCase copies, defaults, `$0`).
 * Anything else returns undefined and the full parser (nydusd-args.ts) decides, so every
 * message, help text and unusual spelling stays yargs' own: booleans (--help, --version, ...),
 * repeated flags, `--`, bundled short flags, values starting with '-' or a quote or empty,
 * numbers other than plain decimals, values outside `choices`, conflicts and implications.
 */
import { kConflicts, kImplies, kNydusdFlags, kSubcommands } from './nydusd-flags.js';
import type { FlagSpec } from './nydusd-flags.js';
import type { NydusdArgs } from './nydusd-options.js';

/** A plain decimal yargs reads exactly as Number() does (no sign, hex, exponent or leading 0). */
const kPlainNumber = /^(0|[1-9][0-9]{0,14})$/;

function camelCase(name: string): string {
  return name.replace(/-([a-z])/g, (_m, c: string) => c.toUpperCase());
}

/** `--long` and `-X` spellings -> canonical flag name. */
function spellings(): Map<string, string> {
  const m = new Map<string, string>();
  for (const [name, spec] of Object.entries(kNydusdFlags)) {
    m.set(`--${name}`, name);
    if (spec.alias !== undefined) m.set(spec.alias.length === 1 ? `-${spec.alias}` : `--${spec.alias}`, name);
  }
  return m;
}

/** The value as yargs would store it, or undefined when only yargs should decide. */
function plainValue(spec: FlagSpec, raw: string | undefined): string | number | undefined {
  if (raw === undefined || raw === '' || /^['"-]/.test(raw)) return undefined;
  if (spec.type === 'number') return kPlainNumber.test(raw) ? Number(raw) : undefined;
  if (spec.choices !== undefined) return spec.choices.includes(raw) ? raw : undefined;
  return spec.type === 'string' ? raw : undefined;
}

/** Parses a plain command line as yargs would, or returns undefined (use the full parser). */
export function parseNydusdArgsFast(argv: readonly string[]): NydusdArgs | undefined {
  const names = spellings();
  const given = new Map<string, string | number>();
  const positional: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const tok = argv[i] ?? '';
    if (!tok.startsWith('-')) {
      if (positional.length > 0 || !(kSubcommands as readonly string[]).includes(tok)) return undefined;
      positional.push(tok);
      continue;
    }
    const eq = tok.startsWith('--') ? tok.indexOf('=') : -1;
    const name = names.get(eq < 0 ? tok : tok.slice(0, eq));
    const spec = name === undefined ? undefined : kNydusdFlags[name];
    if (name === undefined || spec === undefined || given.has(name)) return undefined;
    const value = plainValue(spec, eq < 0 ? argv[++i] : tok.slice(eq + 1));
    if (value === undefined) return undefined;
    given.set(name, value);
  }
  for (const [a, b] of kConflicts) if (given.has(a) && given.has(b)) return undefined;
  for (const [a, b] of kImplies) if (given.has(a) && !given.has(b)) return undefined;

  const args: NydusdArgs = { _: positional, $0: 'nydusd' };
  for (const [name, spec] of Object.entries(kNydusdFlags)) {
    const v = given.get(name) ?? spec.default;
    if (v === undefined) continue;
    args[name] = v;
    if (name.includes('-')) args[camelCase(name)] = v;
  }
  return args;
}
