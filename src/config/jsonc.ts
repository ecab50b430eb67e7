/**
 * JSON with what users paste from the nydusd docs: `//` and `/* *\/` comments, trailing commas,
 * and a missing comma between members that sit on separate lines (the upstream doc examples have
 * all three). Everything else is strict JSON. Strict JSON goes through JSON.parse; anything else
 * is scanned by jsonc-parser (loaded on first use, so a start with a strict JSON configuration
 * does not pay for it) and this module builds the value and words the errors.
 *
 * Why not JSON.parse alone: its messages quote the surrounding text, which may hold a secret (an
 * OSS key, a registry token); ours only say line and column, never a character of the input.
 */
import { createRequire } from 'node:module';

import type * as JsoncParser from 'jsonc-parser';

import { ConfigError } from './errors.js';

export interface JsoncResult {
  value: unknown;
  /** Tolerated deviations worth telling the user about (a missing comma). */
  notes: string[];
}

const kMaxDepth = 64;

// jsonc-parser's ParseErrorCode is an ambient const enum (not importable under
// verbatimModuleSyntax); these are its documented numbers.
const kCommaExpected = 6;
const kCloseBraceExpected = 7;
const kCloseBracketExpected = 8;
const kErrorText: Record<number, string> = {
  1: 'unexpected character or word',
  2: 'malformed number',
  3: 'expected a quoted member name',
  4: 'expected a value',
  5: 'expected ":" after a member name',
  10: 'malformed comment',
  11: 'unterminated /* comment',
  12: 'unterminated string',
  13: 'malformed number',
  14: 'bad \\u escape',
  15: 'bad escape in string',
  16: 'control character in string',
};

let visit: typeof JsoncParser.visit | undefined;

type Container = { kind: 'object'; value: Record<string, unknown>; key: string | undefined } | { kind: 'array'; value: unknown[] };

/** Whether no more than `room` arrays and objects nest in `v` (the limit the visitor enforces). */
function nestingWithin(v: unknown, room: number): boolean {
  if (v === null || typeof v !== 'object') return true;
  if (room === 0) return false;
  for (const x of Array.isArray(v) ? v : Object.values(v)) if (!nestingWithin(x, room - 1)) return false;
  return true;
}

/**
 * Strict JSON, what programs write (snapshotters, CI scripts, our tests), through JSON.parse:
 * the same value the visitor builds (a "__proto__" member stays data, the last of duplicate
 * members wins in the first one's place, numbers are Number()s), without loading jsonc-parser on
 * the start path (issue 13). Undefined for anything else, including a document too deep: the
 * visitor then takes it and words what it accepts or refuses. JSON.parse's own message is never
 * shown (it quotes the input).
 */
function strictJson(text: string): unknown {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return undefined;
  }
  return nestingWithin(v, kMaxDepth) ? v : undefined;
}

/** Parses JSON with comments. Throws ConfigError naming `source`, line and column. */
export function parseJsonc(text: string, source = 'config'): JsoncResult {
  const strict = strictJson(text);
  if (strict !== undefined) return { value: strict, notes: [] };
  visit ??= (createRequire(import.meta.url)('jsonc-parser') as typeof JsoncParser).visit;
  // A leading byte order mark is whitespace to us; a space keeps every offset where it was.
  const input = text.charCodeAt(0) === 0xfeff ? ` ${text.slice(1)}` : text;
  const notes: string[] = [];
  const stack: Container[] = [];
  let root: unknown;
  let haveRoot = false;
  /** Offset just past the last complete value: a missing comma is tolerated only across a newline. */
  let lastEnd = 0;
  const fail = (what: string, line: number, col: number): never => {
    throw new ConfigError(`${source}: invalid JSON at line ${line + 1} column ${col + 1}: ${what}`);
  };
  const put = (v: unknown, end: number): void => {
    lastEnd = end;
    const top = stack[stack.length - 1];
    if (top === undefined) {
      root = v;
      haveRoot = true;
    } else if (top.kind === 'array') {
      top.value.push(v);
    } else if (top.key !== undefined) {
      // defineProperty: a "__proto__" member must stay data, never reach the prototype.
      Object.defineProperty(top.value, top.key, { value: v, enumerable: true, writable: true, configurable: true });
      top.key = undefined;
    }
  };
  const open = (c: Container, line: number, col: number): void => {
    if (stack.length >= kMaxDepth) fail(`nesting deeper than ${kMaxDepth}`, line, col);
    stack.push(c);
  };
  const close = (end: number): void => {
    const c = stack.pop() as Container;
    put(c.value, end);
  };
  visit(
    input,
    {
      onObjectBegin: (_o, _l, line, col) => open({ kind: 'object', value: {}, key: undefined }, line, col),
      onObjectProperty: (name) => {
        const top = stack[stack.length - 1];
        if (top?.kind === 'object') top.key = name;
      },
      onObjectEnd: (offset, length) => close(offset + length),
      onArrayBegin: (_o, _l, line, col) => open({ kind: 'array', value: [] }, line, col),
      onArrayEnd: (offset, length) => close(offset + length),
      onLiteralValue: (value: unknown, offset, length) => put(value, offset + length),
      onError: (error, offset, _length, line, col) => {
        const code = error as number;
        const top = stack[stack.length - 1];
        const closer = top?.kind === 'array' ? ']' : '}';
        if (code === kCommaExpected) {
          const nextIsMember = top?.kind === 'array' || input[offset] === '"';
          if (nextIsMember && input.slice(lastEnd, offset).includes('\n')) {
            notes.push(`missing comma before line ${line + 1} column ${col + 1} (accepted)`);
            return;
          }
          fail(`expected "," or "${closer}"`, line, col);
        }
        if (offset >= input.length) fail('unexpected end of input', line, col);
        if (code === kCloseBraceExpected || code === kCloseBracketExpected) fail(`expected "," or "${closer}"`, line, col);
        if (haveRoot && stack.length === 0) fail('unexpected text after the top-level value', line, col);
        fail(kErrorText[code] ?? 'malformed JSON', line, col);
      },
    },
    { allowTrailingComma: true, disallowComments: false },
  );
  if (!haveRoot) fail('unexpected end of input', 0, 0);
  return { value: root, notes };
}

/** True when the text (after comments and whitespace) starts like a JSON document. */
export function looksLikeJson(text: string): boolean {
  const stripped = text.replace(/^(\s|\/\/[^\n]*\n?|\/\*[\s\S]*?\*\/)*/, '');
  return stripped.startsWith('{') || stripped.startsWith('[');
}
