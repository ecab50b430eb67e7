/**
 * The first-run scripts a newcomer meets: a missing system header stops the addon build with one
 * line naming the Debian package; a non-root user is told the exact apt-get line; the addon
 * loader fails with one error naming every path it tried.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';

import { projectRoot } from '../helpers/paths.js';

const work = mkdtempSync(join(tmpdir(), 'setup-scripts-'));
chmodSync(work, 0o755);
after(() => rmSync(work, { recursive: true, force: true }));

test('a missing lz4/zstd header stops the build with one line naming the package', () => {
  const cc = join(work, 'fake-cc');
  writeFileSync(cc, '#!/bin/sh\necho "<stdin>:1:10: fatal error: lz4.h: No such file or directory" >&2\nexit 1\n');
  chmodSync(cc, 0o755);
  const r = spawnSync(process.execPath, [join(projectRoot, 'scripts', 'build-addon.mjs')], { env: { ...process.env, CXX: cc }, encoding: 'utf8' });
  assert.equal(r.status, 1);
  assert.equal(r.stderr, 'nydusd build: missing C headers (liblz4-dev); install them with: apt-get install -y liblz4-dev\n');
});

test('as non-root, setup prints the exact apt-get line instead of failing obscurely', { skip: process.getuid?.() === 0 ? false : 'needs root to switch to an unprivileged user' }, () => {
  // A world-readable copy: the unprivileged user may not be able to read the checkout itself.
  const dir = join(work, 'scripts');
  mkdirSync(dir);
  chmodSync(dir, 0o755);
  copyFileSync(join(projectRoot, 'scripts', 'setup.mjs'), join(dir, 'setup.mjs'));
  chmodSync(join(dir, 'setup.mjs'), 0o644);
  const code = `import(${JSON.stringify(join(dir, 'setup.mjs'))}).then((m) => m.ensurePackages(['nydus-test-no-such-package']))`;
  const r = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, '-e', code], { encoding: 'utf8', cwd: work });
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /^setup: missing Debian packages: nydus-test-no-such-package$/m);
  assert.match(r.stderr, /^setup: run as root: apt-get update && apt-get install -y --no-install-recommends nydus-test-no-such-package$/m);
});

test('the addon loader fails with one error naming every path it tried', () => {
  const pkg = join(work, 'pkg');
  for (const d of ['dist/src/native', 'dist/src/util']) mkdirSync(join(pkg, d), { recursive: true });
  writeFileSync(join(pkg, 'package.json'), '{"type":"module"}');
  writeFileSync(join(pkg, 'binding.gyp'), '{}');
  copyFileSync(join(projectRoot, 'dist/src/native/binding.js'), join(pkg, 'dist/src/native/binding.js'));
  copyFileSync(join(projectRoot, 'dist/src/util/errors.js'), join(pkg, 'dist/src/util/errors.js'));
  const code = `import(${JSON.stringify(join(pkg, 'dist/src/native/binding.js'))}).then((m) => m.loadAddon()).catch((e) => { console.log(e.code); console.log(e.message); })`;
  const r = spawnSync(process.execPath, ['-e', code], { encoding: 'utf8', env: { ...process.env, NYDUS_NATIVE_ADDON: '' } });
  const [code0, message] = r.stdout.trim().split('\n');
  assert.equal(code0, 'ERR_NATIVE_ADDON');
  assert.ok(message?.includes(join(pkg, 'build/Release/nydus_native.node')), message);
  assert.ok(message?.includes(join(pkg, 'build/Debug/nydus_native.node')), message);
  assert.match(message ?? '', /npm run build:native/);
});
