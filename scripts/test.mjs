#!/usr/bin/env node
// `npm test`: sets up what the tests need (Debian packages, npm deps, the addon, compiled
// TypeScript, the guest kernel and initramfs), then runs every test layer in one `node --test`
// run so the output ends with the runner's pass/fail summary.
//
//   npm test                 all layers: unit, integration, e2e
//   npm test -- unit e2e     only those layers
//   npm test -- --grep NAME  only test files whose path contains NAME
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

import { ensureAll, root, say } from './setup.mjs';

const argv = process.argv.slice(2);
const layers = ['unit', 'integration', 'e2e'].filter((l) => argv.includes(l));
const grepAt = argv.indexOf('--grep');
const grep = grepAt >= 0 ? argv[grepAt + 1] : undefined;
const selected = layers.length > 0 ? layers : ['unit', 'integration', 'e2e'];

ensureAll('test');

if (selected.includes('e2e') || selected.includes('integration')) {
  const prepare = join(root, 'dist', 'qemu', 'prepare.js');
  if (existsSync(prepare)) {
    const res = spawnSync(process.execPath, [prepare], { stdio: 'inherit', cwd: root });
    if (res.status !== 0) {
      say('preparing the guest kernel and initramfs failed');
      process.exit(1);
    }
  }
}

function collect(dir, out) {
  if (!existsSync(dir)) return out;
  for (const ent of readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    const p = join(dir, ent.name);
    if (ent.isDirectory()) collect(p, out);
    else if (ent.name.endsWith('.test.js')) out.push(p);
  }
  return out;
}

let files = selected.flatMap((l) => collect(join(root, 'dist', 'test', l), []));
if (grep) files = files.filter((f) => f.includes(grep));
if (files.length === 0) {
  say('no test files selected');
  process.exit(1);
}
say(`running ${files.length} test files (${selected.join(', ')})`);
const res = spawnSync(
  process.execPath,
  ['--test', '--test-reporter=spec', '--test-concurrency=1', ...files],
  { stdio: 'inherit', cwd: root, env: { ...process.env, NYDUS_PROJECT_ROOT: root } },
);
process.exit(res.status ?? 1);
