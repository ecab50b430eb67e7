/**
 * How the executables in bin/ load the CLI. nydusd's start-to-ready budget (issue 13: 80 ms, of
 * which Node's own start is ~50 ms) has no room for loading ~190 ES modules one by one: resolving,
 * reading and compiling them was most of a start. So the build (scripts/build-start.mjs) also makes
 * a start artefact in dist/start/: the start graph bundled into one CommonJS file, a V8 code cache
 * of it taken after a real start (its functions need no parsing or compiling), and a manifest of
 * what both were made from.
 *
 * launch() runs the artefact only while the manifest still holds: the same Node and V8, and every
 * input file (dist/ modules, bundled packages), the bundle and the cache exactly as they were when
 * it was built (size, mtime, inode). Anything else (no artefact, a stale or damaged one) takes the
 * plain path, require() of the ES module graph in dist/src: the artefact never runs code older than
 * dist/. A cache V8 rejects (other V8 flags) only costs its speed.
 *
 * CommonJS (.cts) because an ES module here would start Node's ES module loader (~10 ms) before a
 * line of ours ran. `NYDUS_DEBUG_START=1` prints which path a start took and why, with timings;
 * `NYDUS_START_PLAIN=1` takes the plain path whatever the artefact (debugging dist/ itself).
 */
import fs = require('node:fs');
import nodeModule = require('node:module');
import path = require('node:path');
import url = require('node:url');
import vm = require('node:vm');

type Program = 'nydusd' | 'nydus-image';
type Main = (argv: string[]) => Promise<number>;
type RunMain = (program: string, main: Main) => void;

interface CliExports {
  main: Main;
  runMain: RunMain;
  /** Exercises the start path without side effects, so the code cache covers it (build only). */
  warmUp?: () => void;
}

/** [size, mtimeMs, inode]: a file is the one the manifest names only while all three match. */
type FileKey = [number, number, number];

interface Manifest {
  format: 1;
  program: Program;
  node: string;
  v8: string;
  arch: string;
  /** Root-relative paths of every file the bundle was made from, with their keys at build time. */
  inputs: [string, ...FileKey][];
  bundle: FileKey;
  cache: FileKey | null;
  /** What ran before the cache was taken (scripts/train-start.mjs): its functions are in it, compiled. */
  cacheCovers?: string[];
}

const kFormat = 1;
/** Node's own CommonJS wrapper: the bundle runs as a module would, with require relative to it. */
const kWrapHead = '(function (exports, require, module, __filename, __dirname) { ';
const kWrapTail = '\n})';

/** The project root: this file is src/cli/launch.cts, compiled to dist/src/cli/launch.cjs. */
function projectRoot(): string {
  return path.resolve(__dirname, '..', '..', '..');
}

function artefactPaths(root: string, program: Program): { bundle: string; cache: string; manifest: string } {
  const dir = path.join(root, 'dist', 'start');
  return {
    bundle: path.join(dir, `${program}.cjs`),
    cache: path.join(dir, `${program}.cjs.v8cache`),
    manifest: path.join(dir, `${program}.manifest.json`),
  };
}

function fileKey(file: string): FileKey | undefined {
  const st = fs.statSync(file, { throwIfNoEntry: false });
  return st === undefined ? undefined : [st.size, st.mtimeMs, st.ino];
}

function sameKey(a: readonly number[] | undefined, b: readonly number[] | null | undefined): boolean {
  return a !== undefined && b != null && a.length === 3 && a[0] === b[0] && a[1] === b[1] && a[2] === b[2];
}

function runtimeId(): Pick<Manifest, 'node' | 'v8' | 'arch'> {
  return { node: process.version, v8: process.versions.v8, arch: process.arch };
}

type Check = { ok: true; manifest: Manifest; useCache: boolean } | { ok: false; reason: string };

/** Whether the artefact of `program` under `root` may run, and whether its code cache applies. */
function checkArtefact(root: string, program: Program): Check {
  const p = artefactPaths(root, program);
  let m: Manifest;
  try {
    m = JSON.parse(fs.readFileSync(p.manifest, 'utf8')) as Manifest;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return { ok: false, reason: code === 'ENOENT' ? 'no start artefact (npm run build makes it)' : 'unreadable manifest' };
  }
  if (m?.format !== kFormat || m.program !== program || !Array.isArray(m.inputs)) return { ok: false, reason: 'manifest of another format' };
  if (!sameKey(fileKey(p.bundle), m.bundle)) return { ok: false, reason: 'the bundle is not the one the manifest names' };
  // Plain concatenation: the paths are the build's normalized relative ones, and path.join's
  // normalization of ~200 of them cost more than their stat() calls.
  const prefix = root + path.sep;
  for (const [rel, ...key] of m.inputs) {
    if (!sameKey(fileKey(prefix + rel), key)) return { ok: false, reason: `stale: ${rel} changed since the bundle was built` };
  }
  const id = runtimeId();
  const sameRuntime = m.node === id.node && m.v8 === id.v8 && m.arch === id.arch;
  return { ok: true, manifest: m, useCache: sameRuntime && sameKey(fileKey(p.cache), m.cache) };
}

/** Compiles the bundle source as V8 sees it both when the cache is made and when it is used. */
function compileBundle(file: string, cachedData?: Buffer): vm.Script {
  // The build keeps the bundle ASCII, so latin1 is exact and gives V8 a one-byte string.
  const source = kWrapHead + fs.readFileSync(file, 'latin1') + kWrapTail;
  return new vm.Script(source, cachedData === undefined ? { filename: file } : { filename: file, cachedData });
}

function runBundle(script: vm.Script, file: string): CliExports {
  const fn = script.runInThisContext() as (e: unknown, r: NodeJS.Require, m: { exports: unknown }, f: string, d: string) => void;
  const mod = { exports: {} as unknown };
  fn(mod.exports, nodeModule.createRequire(file), mod, file, path.dirname(file));
  return mod.exports as CliExports;
}

/** Where launch() leaves how this start loaded the CLI; nydusd logs it at debug level (kStartPathKey in nydusd.ts). */
const kStartPathKey = Symbol.for('nydusd-node.start-path');

/**
 * Tells how this start loaded the CLI: kept for the daemon's debug log (`--log-level debug`), and
 * printed at once under NYDUS_DEBUG_START (with timings; before any logger exists).
 */
function debug(program: Program, line: string): void {
  (globalThis as Record<symbol, unknown>)[kStartPathKey] = line;
  if (process.env['NYDUS_DEBUG_START'] !== undefined) process.stderr.write(`${program}: start: ${line}\n`);
}

/** The artefact's exports, or undefined (with the reason told under NYDUS_DEBUG_START) when it cannot be used. */
function loadArtefact(root: string, program: Program): CliExports | undefined {
  if (process.env['NYDUS_START_PLAIN'] === '1') {
    debug(program, 'plain path: NYDUS_START_PLAIN=1');
    return undefined;
  }
  // Timing only when asked: the first performance.now() loads perf_hooks.
  const timed = process.env['NYDUS_DEBUG_START'] !== undefined;
  const entered = timed ? performance.now() : 0;
  const check = checkArtefact(root, program);
  const checked = timed ? performance.now() : 0;
  if (!check.ok) {
    debug(program, `plain path: ${check.reason}`);
    return undefined;
  }
  const p = artefactPaths(root, program);
  let script: vm.Script;
  let cache = 'no code cache';
  try {
    const cachedData = check.useCache ? fs.readFileSync(p.cache) : undefined;
    script = compileBundle(p.bundle, cachedData);
    if (cachedData !== undefined) cache = script.cachedDataRejected === true ? 'code cache rejected by V8' : 'code cache';
  } catch (err) {
    debug(program, `plain path: the bundle does not compile (${(err as Error).message})`);
    return undefined;
  }
  // Past this point the bundle is ours and current: what it throws is a real failure.
  if (!timed) {
    debug(program, `bundle ${path.relative(root, p.bundle)} (${cache})`);
    return runBundle(script, p.bundle);
  }
  const compiled = performance.now();
  const cli = runBundle(script, p.bundle);
  const ms = (t: number): string => t.toFixed(1);
  debug(
    program,
    `bundle ${path.relative(root, p.bundle)} (${cache}); ms since the process started: Node ready ${ms(performance.nodeTiming.bootstrapComplete)}, ` +
      `launcher ${ms(entered)}, checked ${ms(checked)}, compiled ${ms(compiled)}, evaluated ${ms(performance.now())}`,
  );
  return cli;
}

/** The plain path: the ES module graph of dist/src, read synchronously by require(esm). */
function loadPlain(root: string, program: Program): CliExports | Promise<CliExports> | undefined {
  const entry = path.join(root, 'dist', 'src', 'cli', `${program}.js`);
  const runner = path.join(root, 'dist', 'src', 'cli', 'run.js');
  if (!fs.existsSync(entry) || !fs.existsSync(runner)) return undefined;
  const load = (file: string): unknown => {
    try {
      return require(file) as unknown;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      // import() stays the fallback should require() refuse the graph (top-level await).
      if (code !== 'ERR_REQUIRE_ESM' && code !== 'ERR_REQUIRE_ASYNC_MODULE') throw err;
      return import(url.pathToFileURL(file).href);
    }
  };
  const parts = [load(entry), load(runner)];
  const join = ([e, r]: unknown[]): CliExports => ({ main: (e as CliExports).main, runMain: (r as CliExports).runMain });
  return parts.some((x) => x instanceof Promise) ? Promise.all(parts).then(join) : join(parts);
}

/** What bin/ launchers set instead of NODE_EXTRA_CA_CERTS (see bin/nydusd). */
const kDeferredEnv = 'NYDUS_DEFERRED_EXTRA_CA_CERTS';
/** Where adoptDeferredCaFile() leaves that file for the HTTP client (src/storage/http/trust.ts). */
const kDeferredCaKey = Symbol.for('nydusd-node.deferred-extra-ca-certs');

/**
 * Takes back the NODE_EXTRA_CA_CERTS file the launcher kept from Node's start: into process.env
 * again (children and anything reading the environment see what the user set) and, for the HTTP
 * client to trust at its first TLS connection, into a global. Set in an environment where Node
 * parsed NODE_EXTRA_CA_CERTS itself (a launcher variable passed on by hand), it is only dropped.
 */
function adoptDeferredCaFile(): void {
  const file = process.env[kDeferredEnv];
  if (file === undefined) return;
  delete process.env[kDeferredEnv];
  if (file === '' || process.env['NODE_EXTRA_CA_CERTS'] !== undefined) return;
  process.env['NODE_EXTRA_CA_CERTS'] = file;
  (globalThis as Record<symbol, unknown>)[kDeferredCaKey] = file;
}

/** Runs `program` with this process's arguments: the start artefact when current, else the plain path. */
function launch(program: Program, root = projectRoot()): void {
  adoptDeferredCaFile();
  const cli = (program === 'nydusd' ? loadArtefact(root, program) : undefined) ?? loadPlain(root, program);
  if (cli === undefined) {
    process.stderr.write(`${program}: not built yet; run: npm run build\n`);
    process.exit(1);
  }
  const run = (c: CliExports): void => c.runMain(program, c.main);
  if (cli instanceof Promise) void cli.then(run);
  else run(cli);
}

/**
 * Build side (scripts/train-start.mjs, in a fresh Node without flags): compiles the bundle, runs
 * it, its warm-up and `train` (a real start), and returns the code cache with every function they
 * compiled.
 */
async function makeCodeCache(bundle: string, train?: (cli: CliExports) => Promise<void>): Promise<Buffer> {
  const script = compileBundle(bundle);
  const cli = runBundle(script, bundle);
  cli.warmUp?.();
  if (train !== undefined) await train(cli);
  return script.createCachedData();
}

export = { launch, checkArtefact, artefactPaths, fileKey, runtimeId, makeCodeCache, kFormat };
