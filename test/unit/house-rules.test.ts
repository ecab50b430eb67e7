/**
 * House rules, checked on the source tree itself (GUIDE.md "How we write code", issue 9):
 * - no source file over 700 lines;
 * - no import circle between folders of src/ (every folder at any depth is a node; `import`,
 *   `import type`, `export ... from` and `import()` are edges);
 * - every dependency in package.json is used: runtime dependencies are imported by src/, bin/,
 *   scripts/ (or required by binding.gyp), dev dependencies are imported by the code or its
 *   tests and configs, run as a tool by scripts/, or are the type package of something used.
 * Each check reports every offender at once, with the files that make it so.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { dirname, extname, join, relative, resolve, sep } from 'node:path';
import { test } from 'node:test';

import { projectRoot } from '../helpers/paths.js';

const kMaxLines = 700;
const kSourceDirs = ['src', 'native', 'test', 'bin', 'qemu', 'bench', 'scripts'];
const kSourceExts = new Set(['.ts', '.cc', '.h', '.mjs']);

/**
 * Folder circles another change is removing (none now: the native log bridge moved to daemon/,
 * which broke util <-> native). An entry that no longer occurs fails the test, so it cannot
 * outlive its fix.
 */
const kKnownCircles: readonly { folders: readonly string[]; why: string }[] = [];

/**
 * Dependencies kept for work in flight on another branch. undici (GUIDE: the HTTP library) is
 * imported by the remote storage backends (registry, S3, OSS, http-proxy) another engineer is
 * writing; the lead deletes this entry when that lands. A stale entry fails the test.
 */
const kKnownUnused: readonly { name: string; why: string }[] = [];

function walk(dir: string, keep: (path: string) => boolean, out: string[] = []): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return out;
  }
  for (const name of names.sort()) {
    if (name === 'node_modules' || name.startsWith('.')) continue;
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p, keep, out);
    else if (keep(p)) out.push(p);
  }
  return out;
}

const rel = (p: string): string => relative(projectRoot, p).split(sep).join('/');

/** Source text without comments, so a doc comment quoting an import is not taken for one. */
function code(path: string): string {
  return readFileSync(path, 'utf8')
    .replace(/\/\*[\s\S]*?\*\//g, '')
    .replace(/^\s*\/\/.*$/gm, '');
}

/** Every module specifier a file names: static imports and re-exports, import(), require(). */
function specifiers(text: string): string[] {
  const out: string[] = [];
  const patterns = [
    /(?:^|[\s;}])(?:import|export)\s+(?:type\s+)?[^'";]*?\bfrom\s*['"]([^'"]+)['"]/g,
    /(?:^|[\s;])import\s*['"]([^'"]+)['"]/g,
    /\bimport\s*\(\s*['"]([^'"]+)['"]\s*\)/g,
    /\brequire\s*\(\s*['"]([^'"]+)['"]\s*\)/g,
    // createRequire(import.meta.url)('pkg'): a package loaded on first use.
    /\)\s*\(\s*['"]([^'"./][^'"]*)['"]\s*\)/g,
  ];
  for (const re of patterns) for (const m of text.matchAll(re)) out.push(m[1] as string);
  return out;
}

/** The npm package a bare specifier names (`@scope/name/sub` -> `@scope/name`), or undefined. */
function packageOf(spec: string): string | undefined {
  if (spec.startsWith('.') || spec.startsWith('/') || spec.startsWith('node:')) return undefined;
  const parts = spec.split('/');
  const name = spec.startsWith('@') ? parts.slice(0, 2).join('/') : (parts[0] as string);
  return builtinModules.includes(name) ? undefined : name;
}

test('house rules: no source file is longer than 700 lines', () => {
  const files = kSourceDirs.flatMap((d) => walk(join(projectRoot, d), (p) => kSourceExts.has(extname(p)) || d === 'bin'));
  assert.ok(files.length > 100, `found only ${files.length} source files under ${projectRoot}`);
  const long = files
    .map((p) => ({ file: rel(p), lines: readFileSync(p, 'utf8').split('\n').length - 1 }))
    .filter((f) => f.lines > kMaxLines)
    .map((f) => `${f.file}: ${f.lines} lines`);
  assert.deepEqual(long, [], `files over ${kMaxLines} lines:\n${long.join('\n')}`);
});

interface FolderGraph {
  /** folder -> folder -> files of the first folder importing the second. */
  edges: Map<string, Map<string, string[]>>;
}

function folderGraph(srcDir: string): FolderGraph {
  const edges = new Map<string, Map<string, string[]>>();
  const folderOf = (file: string): string => relative(srcDir, dirname(file)).split(sep).join('/') || '.';
  for (const file of walk(srcDir, (p) => p.endsWith('.ts'))) {
    const from = folderOf(file);
    for (const spec of specifiers(code(file))) {
      if (!spec.startsWith('.')) continue;
      const target = resolve(dirname(file), spec);
      if (relative(srcDir, target).startsWith('..')) continue;
      const to = folderOf(target);
      if (to === from) continue;
      const row = edges.get(from) ?? new Map<string, string[]>();
      edges.set(from, row);
      const files = row.get(to) ?? [];
      row.set(to, files);
      if (!files.includes(rel(file))) files.push(rel(file));
    }
  }
  return { edges };
}

/** Strongly connected components with more than one folder (Tarjan), each sorted. */
function folderCircles(g: FolderGraph): string[][] {
  const nodes = new Set<string>();
  for (const [a, row] of g.edges) {
    nodes.add(a);
    for (const b of row.keys()) nodes.add(b);
  }
  let next = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const out: string[][] = [];
  const visit = (v: string): void => {
    index.set(v, next);
    low.set(v, next);
    next++;
    stack.push(v);
    onStack.add(v);
    for (const w of g.edges.get(v)?.keys() ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v)!, index.get(w)!));
      }
    }
    if (low.get(v) === index.get(v)) {
      const scc: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        scc.push(w);
      } while (w !== v);
      if (scc.length > 1) out.push(scc.sort());
    }
  };
  for (const v of [...nodes].sort()) if (!index.has(v)) visit(v);
  return out.sort((a, b) => a.join().localeCompare(b.join()));
}

function describeCircle(g: FolderGraph, folders: readonly string[]): string {
  const lines: string[] = [];
  for (const a of folders) {
    for (const b of folders) {
      const files = g.edges.get(a)?.get(b);
      if (files) lines.push(`  src/${a} -> src/${b}: ${files.slice(0, 3).join(', ')}${files.length > 3 ? ` (+${files.length - 3})` : ''}`);
    }
  }
  return `${folders.map((f) => `src/${f}`).join(' <-> ')}\n${lines.join('\n')}`;
}

test('house rules: the folder graph finds a circle in a planted tree (the check can fail)', () => {
  const g: FolderGraph = {
    edges: new Map([
      ['a', new Map([['b', ['src/a/x.ts']]])],
      ['b', new Map([['c', ['src/b/y.ts']]])],
      ['c', new Map([['a', ['src/c/z.ts']]])],
      ['d', new Map([['a', ['src/d/w.ts']]])],
    ]),
  };
  assert.deepEqual(folderCircles(g), [['a', 'b', 'c']]);
  assert.match(describeCircle(g, ['a', 'b', 'c']), /src\/c -> src\/a: src\/c\/z\.ts/);
  // `import type`, multi-line named imports, re-exports and import() are all edges.
  const text = "import type { A } from '../a/x.js';\nimport {\n  B,\n  C,\n} from '../b/y.js';\nexport { D } from '../d/w.js';\nconst m = await import('../e/v.js');\n// import { Z } from '../z/z.js';";
  assert.deepEqual(specifiers(text.replace(/^\s*\/\/.*$/gm, '')).sort(), ['../a/x.js', '../b/y.js', '../d/w.js', '../e/v.js']);
});

test('house rules: no import circle between folders of src/', (t) => {
  const g = folderGraph(join(projectRoot, 'src'));
  assert.ok(g.edges.size >= 5, 'the folder graph of src/ is implausibly small');
  const circles = folderCircles(g);
  for (const c of circles) t.diagnostic(`folder circle: ${describeCircle(g, c)}`);
  const key = (folders: readonly string[]): string => [...folders].sort().join(' ');
  const known = new Set(kKnownCircles.map((k) => key(k.folders)));
  const unexpected = circles.filter((c) => !known.has(key(c)));
  assert.deepEqual(unexpected.map((c) => describeCircle(g, c)), [], 'import circles between folders of src/');
  const stale = kKnownCircles.filter((k) => !circles.some((c) => key(c) === key(k.folders)));
  assert.deepEqual(stale.map((k) => `${k.folders.join(' <-> ')} (${k.why})`), [], 'known circles that are gone: delete them from kKnownCircles');
});

test('house rules: every package.json dependency is used', () => {
  const pkg = JSON.parse(readFileSync(join(projectRoot, 'package.json'), 'utf8')) as {
    dependencies?: Record<string, string>;
    devDependencies?: Record<string, string>;
  };
  const usedBy = (dirs: string[], extra: string[] = []): Set<string> => {
    const files = dirs.flatMap((d) => walk(join(projectRoot, d), (p) => /\.(ts|mjs|js)$/.test(p) || d === 'bin')).concat(extra.map((f) => join(projectRoot, f)));
    const used = new Set<string>();
    for (const f of files) for (const s of specifiers(code(f))) if (packageOf(s)) used.add(packageOf(s)!);
    return used;
  };
  // binding.gyp pulls node-addon-api's headers in with require().
  const runtime = usedBy(['src', 'bin', 'scripts'], ['binding.gyp']);
  const waived = new Set(kKnownUnused.map((k) => k.name));
  const unusedRuntime = Object.keys(pkg.dependencies ?? {}).filter((d) => !runtime.has(d));
  assert.deepEqual(unusedRuntime.filter((d) => !waived.has(d)), [], 'dependencies nothing in src/, bin/, scripts/ or binding.gyp imports');
  const stale = kKnownUnused.filter((k) => !unusedRuntime.includes(k.name)).map((k) => `${k.name} (${k.why})`);
  assert.deepEqual(stale, [], 'known unused dependencies that are used now (or gone): delete them from kKnownUnused');

  const anywhere = usedBy(['src', 'bin', 'scripts', 'test', 'bench', 'qemu'], ['eslint.config.mjs', 'binding.gyp']);
  const scripts = walk(join(projectRoot, 'scripts'), (p) => p.endsWith('.mjs')).map((p) => readFileSync(p, 'utf8')).join('\n');
  const runAsTool = (d: string): boolean => scripts.includes(`'node_modules', '${d}'`);
  const typesFor = (d: string): boolean => {
    if (!d.startsWith('@types/')) return false;
    const of = d.slice('@types/'.length);
    return of === 'node' || anywhere.has(of) || Object.keys(pkg.dependencies ?? {}).includes(of);
  };
  const unusedDev = Object.keys(pkg.devDependencies ?? {}).filter((d) => !anywhere.has(d) && !runAsTool(d) && !typesFor(d));
  assert.deepEqual(unusedDev, [], 'devDependencies that nothing imports, runs or types');
});

/** Whether version `v` (x.y.z) satisfies an npm `engines` range of the forms package-locks hold. */
function satisfies(v: string, range: string): boolean {
  const [maj, min, pat] = v.split('.').map(Number) as [number, number, number];
  const cmp = (parts: number[]): number => {
    const want = [parts[0] ?? 0, parts[1] ?? 0, parts[2] ?? 0];
    return maj - want[0]! || min - want[1]! || pat - want[2]!;
  };
  const one = (c: string): boolean => {
    if (c === '*' || c === 'x') return true;
    const m = /^(>=|<=|>|<|\^|=)?v?(\d+)(?:\.(\d+|\*|x))?(?:\.(\d+|\*|x))?$/.exec(c);
    if (!m) throw new Error(`engines range not understood: ${range}`);
    const parts = [m[2], m[3], m[4]].filter((p) => p !== undefined && p !== '*' && p !== 'x').map(Number);
    switch (m[1] ?? '=') {
      case '>=':
        return cmp(parts) >= 0;
      case '>':
        return cmp(parts) > 0;
      case '<=':
        return cmp(parts) <= 0;
      case '<':
        return cmp(parts) < 0;
      case '^':
        return maj === parts[0] && cmp(parts) >= 0;
      default:
        // A bare or partial version: the parts given must match.
        return parts.every((p, i) => [maj, min, pat][i] === p);
    }
  };
  return range.split('||').some((alt) => {
    const comps = alt.trim().replace(/(>=|<=|>|<|\^|=)\s+/g, '$1').split(/\s+/).filter(Boolean);
    return comps.length === 0 || comps.every(one);
  });
}

test('house rules: every locked package supports the Node versions package.json names (npm ci prints no EBADENGINE)', () => {
  assert.equal(satisfies('20.19.0', '^20.17.0 || >=22.9.0'), true);
  assert.equal(satisfies('20.19.0', '^22.22.2 || ^24.15.0 || >=26.0.0'), false);
  assert.equal(satisfies('20.19.0', '>=16 || 14 >=14.17'), true);
  assert.equal(satisfies('20.19.0', '6.* || 8.* || >= 10.*'), true);
  assert.equal(satisfies('20.19.0', '18 || 20 || >=22'), true);
  assert.equal(satisfies('20.19.0', '>=20.19.1'), false);
  assert.equal(satisfies('20.19.0', '*'), true);
  const pkg = JSON.parse(readFileSync(join(projectRoot, 'package.json'), 'utf8')) as { engines: { node: string } };
  const min = /^>=\s*(\d+\.\d+\.\d+)$/.exec(pkg.engines.node)?.[1];
  assert.ok(min, `engines.node should be ">=x.y.z", is ${pkg.engines.node}`);
  const lock = JSON.parse(readFileSync(join(projectRoot, 'package-lock.json'), 'utf8')) as { packages: Record<string, { engines?: unknown }> };
  const bad: string[] = [];
  for (const [name, p] of Object.entries(lock.packages)) {
    const node = p.engines !== null && typeof p.engines === 'object' && !Array.isArray(p.engines) ? (p.engines as { node?: string }).node : undefined;
    if (node === undefined) continue;
    for (const v of [min, process.version.slice(1)]) if (!satisfies(v, node)) bad.push(`${name || 'nydusd-node'}: node ${node} excludes ${v}`);
  }
  assert.deepEqual(bad, []);
});
