#!/usr/bin/env node
// Builds the native addon (and the core test executable) with node-gyp. Runs as the package's
// `install` script, so `npm install` / `npm ci` build it. Before compiling it checks for the
// system headers the addon links against, so a missing package is one clear line instead of a
// wall of compiler errors.
//
//   node scripts/build-addon.mjs [--debug] [--if-stale]
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { blake3Dir, kBlake3Package } from './blake3-sources.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const debug = process.argv.includes('--debug');
const ifStale = process.argv.includes('--if-stale');
const config = debug ? 'Debug' : 'Release';
const product = join(root, 'build', config, 'nydus_native.node');

function newestSource() {
  let newest = statSync(join(root, 'binding.gyp')).mtimeMs;
  const walk = (d) => {
    for (const ent of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, ent.name);
      if (ent.isDirectory()) walk(p);
      else if (/\.(cc|h)$/.test(ent.name)) newest = Math.max(newest, statSync(p).mtimeMs);
    }
  };
  walk(join(root, 'native'));
  return newest;
}

if (ifStale && existsSync(product) && statSync(product).mtimeMs >= newestSource()) {
  process.exit(0);
}

function fail(line) {
  process.stderr.write(`nydusd build: ${line}\n`);
  process.exit(1);
}

const cxx = process.env.CXX || 'c++';
const probe = spawnSync(cxx, ['-E', '-x', 'c++', '-'], {
  input: '#include <lz4.h>\n#include <zstd.h>\n#include <openssl/evp.h>\n',
  encoding: 'utf8',
});
// EPIPE only means the compiler stopped reading its input early (it failed on the first
// #include): its exit status and stderr below still say why.
if (probe.error && probe.error.code !== 'EPIPE') {
  fail(`no C++ compiler (${cxx}) could be run (${probe.error.code ?? probe.error.message}); install it with: apt-get install -y g++ make python3`);
}
// The BLAKE3 C sources (blake3.h and its .c/.S files) are not on the include path:
// binding.gyp compiles them from where librust-blake3-dev installs them.
const missing = blake3Dir() ? [] : [kBlake3Package];
if (probe.status !== 0) {
  if (/lz4\.h/.test(probe.stderr)) missing.unshift('liblz4-dev');
  else if (/zstd\.h/.test(probe.stderr)) missing.unshift('libzstd-dev');
  else if (/openssl/.test(probe.stderr)) missing.unshift('libssl-dev');
  else missing.unshift('liblz4-dev', 'libzstd-dev', 'libssl-dev');
}
if (missing.length > 0) {
  fail(
    `missing C headers (${missing.join(', ')}); ` +
      `install them with: apt-get install -y ${missing.join(' ')}`,
  );
}

function findNodeGyp() {
  const candidates = [
    process.env.npm_config_node_gyp,
    join(root, 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
    join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
  ];
  return candidates.find((c) => c && existsSync(c));
}

const gyp = findNodeGyp();
if (!gyp) fail('node-gyp not found (run npm ci first, or install npm with its bundled node-gyp)');
if (!existsSync(join(root, 'node_modules', 'node-addon-api'))) {
  fail('node-addon-api is missing: run npm ci first');
}

process.stderr.write(`nydusd build: compiling the native addon (${config}) with node-gyp...\n`);
const args = [gyp, 'rebuild', '--jobs=max'];
if (debug) args.push('--debug');
// Build against the headers that came with this Node (no network: node-gyp must not download).
const prefix = dirname(dirname(process.execPath));
if (!process.env.npm_config_nodedir && existsSync(join(prefix, 'include', 'node', 'common.gypi'))) {
  args.push(`--nodedir=${prefix}`);
}
const res = spawnSync(process.execPath, args, { cwd: root, encoding: 'utf8', maxBuffer: 64 << 20 });
if (res.status !== 0) {
  process.stderr.write(res.stdout.split('\n').slice(-40).join('\n'));
  process.stderr.write(res.stderr.split('\n').slice(-60).join('\n'));
  fail('node-gyp failed (compiler output above)');
}
const warnings = (res.stderr.match(/warning:/g) || []).length;
process.stderr.write(
  `nydusd build: built build/${config}/nydus_native.node and build/${config}/nydus_core_tests` +
    (warnings ? ` (${warnings} compiler warnings; run node-gyp rebuild to see them)` : '') +
    '\n',
);
