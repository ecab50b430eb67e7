/**
 * What the addon ships: the core library it links (one static library, built once) without the
 * test-only vhost-user frontend (native/driver/frontend, linked only into the driver tools and
 * the core tests), and without the dropped request thread pool.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';

import { nativeBuildFile, projectRoot } from '../helpers/paths.js';

function symbols(file: string): string {
  const r = spawnSync('nm', ['-C', file], { encoding: 'utf8', maxBuffer: 256 << 20 });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout;
}

test('the addon has the core but no frontend or thread-pool symbols', () => {
  const addon = symbols(nativeBuildFile('nydus_native.node'));
  // The scan sees the core (a positive control: an empty nm output must not pass).
  assert.match(addon, /nydus::fuse::FuseSession::OnRequest/);
  assert.match(addon, /nydus::vhost::VhostUserFsBackend::Start/);
  const leaked = addon.split('\n').filter((l) => /nydus::driver::|::frontend::|FsFrontendSession|DriverQueue|GuestRam|FrontendClient|RequestThreadPool/.test(l));
  assert.deepEqual(leaked.slice(0, 10), [], `${leaked.length} frontend/pool symbols in the addon`);
});

test('the driver tool has the frontend (the symbol scan would see it)', () => {
  assert.match(symbols(nativeBuildFile('nydus_vu_driver')), /nydus::driver::frontend::FsFrontendSession/);
});

test('native/core is compiled once, into the one core library every binary links', () => {
  const build = join(projectRoot, 'build');
  const makefiles = readdirSync(build).filter((f) => f.endsWith('.target.mk'));
  assert.ok(makefiles.includes('nydus_core.target.mk'), `no core library target in ${makefiles.join(', ')}`);
  for (const mk of makefiles) {
    const text = readFileSync(join(build, mk), 'utf8');
    const objs = /^OBJS := \\\n((?:\t.*\n)*)/m.exec(text)?.[1] ?? '';
    const coreObjs = objs.split('\n').filter((l) => l.includes('native/core/'));
    if (mk === 'nydus_core.target.mk') assert.ok(coreObjs.length > 20, 'the core library compiles native/core');
    else {
      assert.deepEqual(coreObjs, [], `${mk} compiles native/core itself`);
      // Binaries link the library; other static libraries (the frontend) are linked beside it.
      if (!/call create_archive/.test(text)) assert.match(text, /nydus_core\.a/, `${mk} links the core library`);
    }
  }
});
