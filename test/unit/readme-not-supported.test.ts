/**
 * The README's "Not supported yet" list against the code: every `new NotSupportedError(...)` in
 * src/ refuses something, and each thing it can refuse must be named in the list (between the
 * not-supported markers; backticks are ignored). Literal subjects are taken as written, without a
 * trailing "(why)"; computed ones are expanded from the table or condition they come from, and a
 * computed subject the test cannot expand fails the test until a resolver is added below.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { test } from 'node:test';

import { projectRoot } from '../helpers/paths.js';

function sources(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) sources(p, out);
    else if (p.endsWith('.ts')) out.push(p);
  }
  return out;
}

/** The argument source text of every `new NotSupportedError(...)` call (balanced parentheses). */
function refusalArguments(text: string): string[] {
  const out: string[] = [];
  const re = /new NotSupportedError\(/g;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    let depth = 1;
    let i = re.lastIndex;
    let quote: string | undefined;
    for (; i < text.length && depth > 0; i++) {
      const c = text[i] as string;
      if (quote) {
        if (c === '\\') i++;
        else if (c === quote) quote = undefined;
      } else if (c === "'" || c === '"' || c === '`') quote = c;
      else if (c === '(') depth++;
      else if (c === ')') depth--;
    }
    out.push(text.slice(re.lastIndex, i - 1).trim());
  }
  return out;
}

const strip = (s: string): string => s.replace(/\s*\([^()]*\)\s*$/, '').trim();

/** Subjects of literal and simple template arguments; undefined when only a resolver can tell. */
function literalSubjects(arg: string): string[] | undefined {
  const lit = /^(['"`])([\s\S]*)\1$/.exec(arg);
  if (!lit) return undefined;
  const body = lit[2] as string;
  if (lit[1] !== '`' || !body.includes('${')) return [strip(body)];
  const statics = strip(body.replace(/\$\{[^}]*\}\s*-?[\w-]*/g, '\0'))
    .split('\0')
    .map((s) => s.trim())
    .filter((s) => s.length >= 6);
  return statics.length > 0 ? statics : undefined;
}

const all = (text: string, re: RegExp): string[] => [...text.matchAll(re)].map((m) => m[1] as string);

/** Computed subjects: where the values come from, per file and argument. */
const kResolvers: Record<string, (file: string) => string[]> = {
  'src/cli/nydusd-options.ts|what': (f) => all(f.slice(f.indexOf('const kLaterFlags')), /\['[\w-]+', '([^']+)'\]/g).map(strip),
  'src/cli/nydusd-options.ts|`nydusd ${sub}`': (f) => all(f, /sub === '(\w+)'/g).filter((s) => !['fuse', 'virtiofs'].includes(s)),
  'src/cli/nydus-image.ts|`nydus-image ${cmd}`': (f) => all(/kUnsupported = new Set\(\[([^\]]*)\]/.exec(f)?.[1] ?? '', /'([\w-]+)'/g),
  'src/cli/nydus-image-create.ts|`--${flag}`': (f) => all(/for \(const flag of \[([^\]]*)\]/.exec(f)?.[1] ?? '', /'([\w-]+)'/g).map((x) => `--${x}`),
  'src/storage/service.ts|`backend ${b.type}`': (f) => all(f.slice(f.indexOf('export async function createBackend')), /case '([\w-]+)':/g).filter((t) => t !== 'localfs'),
  'src/storage/service.ts|`blob ${info.blobId}: ${what}`': (f) => all(f, /\[kBlobFeatures\.\w+, '([^']+)'\]/g),
};

function readmeList(): string {
  const readme = readFileSync(join(projectRoot, 'README.md'), 'utf8');
  const begin = readme.indexOf('<!-- not-supported:begin -->');
  const end = readme.indexOf('<!-- not-supported:end -->');
  assert.ok(begin > 0 && end > begin, 'README.md has no not-supported markers');
  return readme.slice(begin, end).replace(/`/g, '').replace(/\s+/g, ' ');
}

test('README: every refusal in the code is in the "Not supported yet" list', () => {
  const list = readmeList();
  const missing: string[] = [];
  const unresolved: string[] = [];
  let subjects = 0;
  for (const path of sources(join(projectRoot, 'src'))) {
    const file = relative(projectRoot, path).split(sep).join('/');
    const text = readFileSync(path, 'utf8');
    for (const arg of refusalArguments(text)) {
      if (file === 'src/util/errors.ts') continue;
      const resolver = kResolvers[`${file}|${arg}`];
      const subs = resolver ? resolver(text) : literalSubjects(arg);
      if (!subs || subs.length === 0) {
        unresolved.push(`${file}: new NotSupportedError(${arg})`);
        continue;
      }
      for (const s of subs) {
        subjects++;
        if (!list.includes(s.replace(/\s+/g, ' '))) missing.push(`${file}: "${s}"`);
      }
    }
  }
  assert.deepEqual(unresolved, [], 'refusals whose subject the test cannot tell: add a resolver');
  // A sanity floor for the scanner (39 refusals once --writable was built, two fewer with the
  // compressed and encrypted caches): far fewer means it broke.
  assert.ok(subjects >= 30, `only ${subjects} refused things found`);
  assert.deepEqual(missing, [], 'refused in the code but missing from the README list');
});

test('README check: a refusal missing from the list or not understood is reported', () => {
  assert.deepEqual(refusalArguments("throw new NotSupportedError(`x ${f(1)} y`); new NotSupportedError('a (b)')"), ['`x ${f(1)} y`', "'a (b)'"]);
  assert.deepEqual(literalSubjects("'cache encryption (enable_encryption)'"), ['cache encryption']);
  assert.deepEqual(literalSubjects('`exporting tarfs images (${n}-byte blocks)`'), ['exporting tarfs images']);
  assert.deepEqual(literalSubjects('`--type ${type}`'), ['--type']);
  assert.equal(literalSubjects('what'), undefined);
  assert.equal(literalSubjects('`--${flag}`'), undefined);
});
