/**
 * What a daemon start loads. Start-to-ready has a budget (issue 6: < 200 ms; `npm run bench --
 * --only start` measures it), and most of a start is loading JavaScript, so the libraries only
 * some starts need stay unloaded on the common path: yargs (help and unusual command lines),
 * smol-toml (TOML configurations), undici (HTTP backends). The detector
 * (helpers/script-trace.ts) sees them when a start does need them, so an absence below is
 * real, not a blind spot.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';

import { unixSocketListening } from '../../qemu/virtiofsd.js';
import { startDaemon } from '../helpers/daemon.js';
import { binDir, fixture, fixturesSkip } from '../helpers/paths.js';
import { scriptTraceEnv } from '../helpers/script-trace.js';
import { driverJson } from './driver-harness.js';

const work = mkdtempSync(join(tmpdir(), 'nydusd-startup-'));
after(() => rmSync(work, { recursive: true, force: true }));

const kOptional = /\/node_modules\/(yargs|yargs-parser|cliui|smol-toml|undici)\//;

function loaded(traceFile: string): string[] {
  return readFileSync(traceFile, 'utf8').split('\n').filter(Boolean);
}

function packages(scripts: string[]): Set<string> {
  return new Set(scripts.flatMap((u) => /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(u)?.[1] ?? []));
}

/** A v1 JSON configuration (the common case) or the same as v2 TOML. */
function config(name: string, format: 'json' | 'toml' = 'json'): string {
  const blobs = fixture('tests', 'texture', 'blobs');
  const cache = join(work, `${name}-cache`);
  const cfg = join(work, `${name}.${format}`);
  writeFileSync(
    cfg,
    format === 'json'
      ? JSON.stringify({ device: { backend: { type: 'localfs', config: { dir: blobs } }, cache: { type: 'blobcache', config: { work_dir: cache } } } })
      : `version = 2\n[backend]\ntype = "localfs"\n[backend.localfs]\ndir = ${JSON.stringify(blobs)}\n` +
          `[cache]\ntype = "blobcache"\n[cache.filecache]\nwork_dir = ${JSON.stringify(cache)}\n`,
  );
  return cfg;
}

test('a plain virtiofs start serves a first session without loading yargs, smol-toml or undici', { skip: fixturesSkip(), timeout: 60_000 }, async () => {
  const trace = join(work, 'serve.trace');
  const socket = join(work, 'serve.sock');
  const boot = fixture('tests', 'texture', 'bootstrap', 'rafs-v6-2.2.boot');
  const d = await startDaemon(['virtiofs', '--config', config('serve'), '--bootstrap', boot, '--sock', socket], { env: scriptTraceEnv(trace) });
  try {
    for (let i = 0; i < 500 && !unixSocketListening(socket); i++) await new Promise((r) => setTimeout(r, 10));
    const info = await driverJson<{ init: { major: number }; getattr_root: string }>(socket, ['info']);
    assert.equal(info.init.major, 7);
    assert.equal(info.getattr_root, 'Success');
  } finally {
    assert.equal(await d.stop(), 0, d.log());
  }
  const scripts = loaded(trace);
  // The detector sees our graph (loaded by require(esm)) and npm packages inside it.
  assert.ok(scripts.some((u) => u.endsWith('/dist/src/cli/nydusd.js')), scripts.slice(0, 20).join('\n'));
  assert.ok(packages(scripts).has('zod'), [...packages(scripts)].join(', '));
  assert.deepEqual(scripts.filter((u) => kOptional.test(u)), []);
});

test('--help loads yargs; a TOML configuration loads smol-toml (the detector sees them); --log-file loads no library', { skip: fixturesSkip(), timeout: 60_000 }, () => {
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
});
