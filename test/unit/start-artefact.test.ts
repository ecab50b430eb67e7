/**
 * nydusd's start artefact (src/cli/launch.cts, scripts/build-start.mjs) on a small tree of its own
 * laid out like the project: the bundle runs, with its V8 code cache, only while everything it was
 * made from is unchanged; otherwise the plain path runs the current code. The tree's modules print
 * what they are, so a stale bundle that ran would show in the output.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { appendFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';

import { projectRoot } from '../helpers/paths.js';

const root = mkdtempSync(join(tmpdir(), 'nydusd-start-artefact-'));
after(() => rmSync(root, { recursive: true, force: true }));

const cli = join(root, 'dist', 'src', 'cli');
const start = join(root, 'dist', 'start');

function write(file: string, text: string): void {
  mkdirSync(join(file, '..'), { recursive: true });
  writeFileSync(file, text);
}

write(join(root, 'package.json'), '{ "type": "module", "dependencies": {} }\n');
write(join(cli, 'run.js'), 'export function runMain(program, main) { main(process.argv.slice(2)).then((c) => { process.exitCode = c; }); }\n');
write(join(cli, 'nydusd.js'), [
  "import { version, where } from './version.js';",
  "export async function main(argv) { process.stdout.write(`${version()} ${argv.join(' ')} ${where}\\n`); return 0; }",
  '',
].join('\n'));
// import.meta.url of a bundled module must still name its own file in dist/.
write(join(cli, 'version.js'), "export function version() { return 'one'; }\nexport const where = new URL(import.meta.url).pathname;\n");
write(join(cli, 'nydusd-bundle.js'), "export { main } from './nydusd.js';\nexport { runMain } from './run.js';\nexport function warmUp() {}\n");
write(join(root, 'bin', 'package.json'), '{ "type": "commonjs" }\n');
write(join(root, 'bin', 'nydusd'), `require(${JSON.stringify(join(projectRoot, 'dist', 'src', 'cli', 'launch.cjs'))}).launch('nydusd', ${JSON.stringify(root)});\n`);

function build(...args: string[]): void {
  const r = spawnSync(process.execPath, [join(projectRoot, 'scripts', 'build-start.mjs'), '--root', root, ...args], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
}

/** Runs the tree's nydusd; returns what it printed and the launcher's account of the path taken. */
function run(nodeArgs: string[] = []): { out: string; how: string } {
  const r = spawnSync(process.execPath, [...nodeArgs, join(root, 'bin', 'nydusd'), 'hello'], {
    encoding: 'utf8',
    env: { ...process.env, NYDUS_DEBUG_START: '1', NODE_OPTIONS: '' },
  });
  assert.equal(r.status, 0, r.stderr);
  return { out: r.stdout, how: r.stderr };
}

const expected = (v: string): string => `${v} hello ${join(cli, 'version.js')}\n`;

test('without an artefact the plain path runs the ES modules of dist/', () => {
  const r = run();
  assert.equal(r.out, expected('one'));
  assert.match(r.how, /plain path: no start artefact/);
});

test('a current artefact runs from its bundle with its code cache; --if-stale leaves it alone', () => {
  build();
  const r = run();
  assert.equal(r.out, expected('one'));
  assert.match(r.how, /start: bundle dist\/start\/nydusd\.cjs \(code cache\)/);
  const manifest = readFileSync(join(start, 'nydusd.manifest.json'), 'utf8');
  build('--if-stale');
  assert.equal(readFileSync(join(start, 'nydusd.manifest.json'), 'utf8'), manifest);
});

test('a changed input (same size) sends the start down the plain path, never to the stale bundle', () => {
  build();
  write(join(cli, 'version.js'), "export function version() { return 'two'; }\nexport const where = new URL(import.meta.url).pathname;\n");
  let r = run();
  assert.equal(r.out, expected('two'));
  assert.match(r.how, /plain path: stale: dist\/src\/cli\/version\.js changed/);
  build('--if-stale');
  r = run();
  assert.equal(r.out, expected('two'));
  assert.match(r.how, /start: bundle .*\(code cache\)/);
});

test('a bundle, manifest or cache that is not the one built is never trusted', () => {
  build();
  appendFileSync(join(start, 'nydusd.cjs'), '\n');
  let r = run();
  assert.equal(r.out, expected('two'));
  assert.match(r.how, /plain path: the bundle is not the one the manifest names/);

  build();
  writeFileSync(join(start, 'nydusd.manifest.json'), '{ "format": 1, ');
  r = run();
  assert.match(r.how, /plain path: unreadable manifest/);

  // A cache that does not match its manifest entry is not read; the bundle still runs, compiled.
  build();
  writeFileSync(join(start, 'nydusd.cjs.v8cache'), 'not a code cache');
  r = run();
  assert.equal(r.out, expected('two'));
  assert.match(r.how, /start: bundle .*\(no code cache\)/);

  // Built by another Node: the cache is not even offered to V8.
  build();
  const m = JSON.parse(readFileSync(join(start, 'nydusd.manifest.json'), 'utf8')) as Record<string, unknown>;
  writeFileSync(join(start, 'nydusd.manifest.json'), JSON.stringify({ ...m, v8: '0.0.0' }));
  r = run();
  assert.match(r.how, /start: bundle .*\(no code cache\)/);
});

test('a cache V8 refuses (other V8 flags) costs only its speed', () => {
  build();
  const r = run(['--no-lazy-feedback-allocation']);
  assert.equal(r.out, expected('two'));
  assert.match(r.how, /start: bundle .*\(code cache rejected by V8\)/);
});
