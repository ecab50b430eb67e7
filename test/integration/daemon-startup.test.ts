/**
 * What a daemon start loads. Start-to-ready has a budget (issue 13: <= 80 ms; `npm run bench --
 * --only start` measures it), and most of a start is loading JavaScript, so a start runs the start
 * artefact (one bundled file with a V8 code cache, src/cli/launch.cts) and the libraries only some
 * starts need stay unloaded on the common path: yargs (help and unusual command lines), smol-toml
 * (TOML configurations), jsonc-parser (JSON with comments), undici (HTTP backends). They stay
 * outside the bundle, so the detector (helpers/script-trace.ts) sees them when a start does need
 * them: an absence below is real, not a blind spot. The plain path (no or a stale artefact)
 * keeps the same promise.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';

import { unixSocketListening } from '../../qemu/virtiofsd.js';
import { startDaemon } from '../helpers/daemon.js';
import { binDir, fixture, fixturesSkip, projectRoot } from '../helpers/paths.js';
import { scriptTraceEnv } from '../helpers/script-trace.js';
import { driverJson } from './driver-harness.js';

const work = mkdtempSync(join(tmpdir(), 'nydusd-startup-'));
after(() => rmSync(work, { recursive: true, force: true }));

const kOptional = /\/node_modules\/(yargs|yargs-parser|cliui|smol-toml|jsonc-parser|undici)\//;

function loaded(traceFile: string): string[] {
  return readFileSync(traceFile, 'utf8').split('\n').filter(Boolean);
}

function packages(scripts: string[]): Set<string> {
  return new Set(scripts.flatMap((u) => /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(u)?.[1] ?? []));
}

/** A v1 JSON configuration (the common case), the same with a comment (JSONC), or as v2 TOML. */
function config(name: string, format: 'json' | 'jsonc' | 'toml' = 'json'): string {
  const blobs = fixture('tests', 'texture', 'blobs');
  const cache = join(work, `${name}-cache`);
  const cfg = join(work, `${name}.${format}`);
  const json = JSON.stringify({ device: { backend: { type: 'localfs', config: { dir: blobs } }, cache: { type: 'blobcache', config: { work_dir: cache } } } });
  writeFileSync(
    cfg,
    format === 'json'
      ? json
      : format === 'jsonc'
        ? `// as the upstream docs write them\n${json}`
        : `version = 2\n[backend]\ntype = "localfs"\n[backend.localfs]\ndir = ${JSON.stringify(blobs)}\n` +
          `[cache]\ntype = "blobcache"\n[cache.filecache]\nwork_dir = ${JSON.stringify(cache)}\n`,
  );
  return cfg;
}

/**
 * Starts a plain virtiofs daemon, runs one driver session, stops it; returns the scripts it
 * compiled and its log. NYDUS_DEBUG_START=1 unless `env` says otherwise; `args` are added flags.
 */
async function serveOnce(name: string, env: NodeJS.ProcessEnv = {}, args: string[] = []): Promise<{ scripts: string[]; log: string }> {
  const trace = join(work, `${name}.trace`);
  const socket = join(work, `${name}.sock`);
  const boot = fixture('tests', 'texture', 'bootstrap', 'rafs-v6-2.2.boot');
  const d = await startDaemon(['virtiofs', '--config', config(name), '--bootstrap', boot, '--sock', socket, ...args], {
    env: { ...scriptTraceEnv(trace), NYDUS_DEBUG_START: '1', ...env },
  });
  try {
    for (let i = 0; i < 500 && !unixSocketListening(socket); i++) await new Promise((r) => setTimeout(r, 10));
    const info = await driverJson<{ init: { major: number }; getattr_root: string }>(socket, ['info']);
    assert.equal(info.init.major, 7);
    assert.equal(info.getattr_root, 'Success');
  } finally {
    assert.equal(await d.stop(), 0, d.log());
  }
  return { scripts: loaded(trace), log: d.log() };
}

test('a plain virtiofs start runs the start artefact with its code cache and loads no optional library', { skip: fixturesSkip(), timeout: 60_000 }, async () => {
  const { scripts, log } = await serveOnce('serve');
  // The artefact the build made is current, its code cache was taken after a real start and
  // session (so a start compiles almost nothing), and V8 took it (else starts are slow).
  assert.match(log, /start: bundle dist\/start\/nydusd\.cjs \(code cache\)/);
  const manifest = JSON.parse(readFileSync(join(projectRoot, 'dist', 'start', 'nydusd.manifest.json'), 'utf8')) as { cacheCovers: string[] };
  assert.deepEqual(manifest.cacheCovers, ['warm-up', 'virtiofs start', 'first session', 'cold read', 'stop']);
  assert.ok(scripts.some((u) => u.endsWith('/dist/start/nydusd.cjs')), scripts.slice(0, 20).join('\n'));
  const graph = scripts.filter((u) => u.includes('/dist/src/') && !u.endsWith('/dist/src/cli/launch.cjs'));
  assert.deepEqual(graph, [], 'modules of dist/src loaded besides the bundle');
  assert.deepEqual(scripts.filter((u) => kOptional.test(u)), []);
});

test('the plain path (no artefact) serves the same way and loads no optional library either', { skip: fixturesSkip(), timeout: 60_000 }, async () => {
  const { scripts, log } = await serveOnce('plain', { NYDUS_START_PLAIN: '1' });
  assert.match(log, /start: plain path/);
  // The detector sees our graph (loaded by require(esm)) and npm packages inside it.
  assert.ok(scripts.some((u) => u.endsWith('/dist/src/cli/nydusd.js')), scripts.slice(0, 20).join('\n'));
  assert.ok(packages(scripts).has('zod'), [...packages(scripts)].join(', '));
  assert.deepEqual(scripts.filter((u) => kOptional.test(u)), []);
});

test('with a stale or missing start artefact the daemon runs the modules of dist/src, serves, and says why at debug level', { skip: fixturesSkip(), timeout: 90_000 }, async () => {
  // The manifest is the artefact's only unkeyed file: rewriting it is all a test needs to make
  // the real artefact stale or missing, and writing the original text back makes it current
  // again. Should the test die in between, the artefact only looks stale: starts take the plain
  // path and the next setup (--if-stale) rebuilds it.
  const manifestFile = join(projectRoot, 'dist', 'start', 'nydusd.manifest.json');
  const original = readFileSync(manifestFile, 'utf8');
  const m = JSON.parse(original) as { inputs: [string, number, number, number][] };
  const [rel, size, mtime, ino] = m.inputs[0]!;
  const fellBack = (r: { scripts: string[]; log: string }): void => {
    assert.ok(r.scripts.some((u) => u.endsWith('/dist/src/cli/nydusd.js')), r.scripts.slice(0, 20).join('\n'));
    assert.ok(!r.scripts.some((u) => u.endsWith('/dist/start/nydusd.cjs')), 'the stale bundle ran');
  };
  try {
    // As after an edit of dist/ without a rebuild: one input is not the file the bundle was made from.
    writeFileSync(manifestFile, JSON.stringify({ ...m, inputs: [[rel, size, mtime + 1, ino], ...m.inputs.slice(1)] }));
    let r = await serveOnce('stale', { NYDUS_DEBUG_START: undefined }, ['--log-level', 'debug']);
    fellBack(r);
    assert.ok(r.log.includes(`start: plain path: stale: ${rel} changed since the bundle was built`), r.log);

    rmSync(manifestFile);
    r = await serveOnce('missing', { NYDUS_DEBUG_START: undefined }, ['--log-level', 'debug']);
    fellBack(r);
    assert.match(r.log, /start: plain path: no start artefact \(npm run build makes it\)/);
    // At the default level the fallback is not news: the log does not mention it.
    r = await serveOnce('missing-info', { NYDUS_DEBUG_START: undefined });
    fellBack(r);
    assert.doesNotMatch(r.log, /start: /);
  } finally {
    writeFileSync(manifestFile, original);
  }
  // Written back, the artefact runs again, and the debug log says so too.
  const r = await serveOnce('restored', { NYDUS_DEBUG_START: undefined }, ['--log-level', 'debug']);
  assert.match(r.log, /start: bundle dist\/start\/nydusd\.cjs \(code cache\)/);
});

test('--help loads yargs; TOML and JSONC configurations load their parsers (the detector sees them); --log-file loads no library', { skip: fixturesSkip(), timeout: 60_000 }, () => {
  const help = join(work, 'help.trace');
  let r = spawnSync(process.execPath, [join(binDir, 'nydusd'), '--help'], { encoding: 'utf8', env: { ...process.env, ...scriptTraceEnv(help) } });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /--bootstrap/);
  assert.ok(packages(loaded(help)).has('yargs'));
  assert.ok(!packages(loaded(help)).has('smol-toml'));

  const file = join(work, 'logfile.trace');
  const args = ['virtiofs', '--sock', join(work, 'f.sock'), '--bootstrap', join(work, 'none.boot'), '-C', config('logfile', 'toml'), '--log-file', join(work, 'd.log')];
  r = spawnSync(process.execPath, [join(binDir, 'nydusd'), ...args], { encoding: 'utf8', env: { ...process.env, ...scriptTraceEnv(file) } });
  assert.equal(r.status, 2, r.stderr);
  assert.match(readFileSync(join(work, 'd.log'), 'utf8'), /none\.boot: no such file/);
  const pk = packages(loaded(file));
  assert.ok(pk.has('smol-toml') && !pk.has('yargs'), [...pk].join(', '));

  const jsonc = join(work, 'jsonc.trace');
  r = spawnSync(process.execPath, [join(binDir, 'nydusd'), ...args.slice(0, 5), '-C', config('jsonc', 'jsonc')], {
    encoding: 'utf8',
    env: { ...process.env, ...scriptTraceEnv(jsonc) },
  });
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /none\.boot: no such file/);
  assert.ok(packages(loaded(jsonc)).has('jsonc-parser'), [...packages(loaded(jsonc))].join(', '));
});
