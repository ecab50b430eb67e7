/**
 * How the digests are built: the reference BLAKE3 C implementation compiled from Debian's
 * librust-blake3-dev with every SIMD level beside its dispatch, SHA-256 from the OpenSSL Node
 * already carries (no second libcrypto in the process), and one clear line naming the package
 * when a build machine lacks one.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';

import { nativeBuildFile, projectRoot } from '../helpers/paths.js';

const work = mkdtempSync(join(tmpdir(), 'digest-build-'));
after(() => rmSync(work, { recursive: true, force: true }));

function run(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 256 << 20 });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout;
}

test('the addon holds the reference BLAKE3: dispatch plus every SIMD level of this architecture', () => {
  const syms = run('nm', ['--defined-only', nativeBuildFile('nydus_native.node')]);
  const want = process.arch === 'x64'
    ? ['blake3_hash_many_portable', 'blake3_hash_many_sse2', 'blake3_hash_many_sse41', 'blake3_hash_many_avx2', 'blake3_hash_many_avx512']
    : process.arch === 'arm64' ? ['blake3_hash_many_portable', 'blake3_hash_many_neon'] : ['blake3_hash_many_portable'];
  for (const s of [...want, 'blake3_simd_degree', 'blake3_hasher_update']) {
    assert.match(syms, new RegExp(` T ${s}$`, 'm'), `${s} is not in the addon`);
  }
});

test('the addon loads no libcrypto of its own: its OpenSSL calls resolve to the copy Node exports', () => {
  const addon = nativeBuildFile('nydus_native.node');
  const needed = run('readelf', ['-d', addon]);
  assert.match(needed, /NEEDED.*libzstd/, 'positive control: the dynamic section lists libraries');
  assert.doesNotMatch(needed, /libcrypto/);
  assert.match(run('nm', ['-D', '--undefined-only', addon]), /^\s+U EVP_Digest$/m);
  // The core tests and tools, which have no Node underneath, link the system libcrypto.
  assert.match(run('readelf', ['-d', nativeBuildFile('nydus_core_tests')]), /NEEDED.*libcrypto\.so/);
});

test('missing BLAKE3 sources stop the build with one line naming librust-blake3-dev', () => {
  const r = spawnSync(process.execPath, [join(projectRoot, 'scripts', 'build-addon.mjs')], {
    env: { ...process.env, NYDUS_BLAKE3_DIR: join(work, 'no-such-dir') },
    encoding: 'utf8',
  });
  assert.equal(r.status, 1);
  assert.equal(r.stderr, 'nydusd build: missing C headers (librust-blake3-dev); install them with: apt-get install -y librust-blake3-dev\n');
  const gyp = spawnSync(process.execPath, [join(projectRoot, 'scripts', 'blake3-sources.mjs'), '--dir'], {
    env: { ...process.env, NYDUS_BLAKE3_DIR: join(work, 'no-such-dir') },
    encoding: 'utf8',
  });
  assert.equal(gyp.status, 1);
  assert.match(gyp.stderr, /install them with: apt-get install -y librust-blake3-dev$/m);
});

test('a missing OpenSSL header stops the build with one line naming libssl-dev', () => {
  const cc = join(work, 'fake-cc');
  writeFileSync(cc, '#!/bin/sh\ncat >/dev/null\necho "<stdin>:3:10: fatal error: openssl/evp.h: No such file or directory" >&2\nexit 1\n');
  chmodSync(cc, 0o755);
  const r = spawnSync(process.execPath, [join(projectRoot, 'scripts', 'build-addon.mjs')], { env: { ...process.env, CXX: cc }, encoding: 'utf8' });
  assert.equal(r.status, 1);
  assert.equal(r.stderr, 'nydusd build: missing C headers (libssl-dev); install them with: apt-get install -y libssl-dev\n');
});
