#!/usr/bin/env node
// `npm run bench`: sets up what the benchmarks need (Debian packages, npm deps, the addon and
// the frontend driver, compiled TypeScript; the guest kernel and initramfs for --guest), then
// runs bench/suite.ts. Options are passed through: `npm run bench -- --quick`, `-- --guest`,
// `-- --help`. See README "Benchmarks".
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

import { ensureAll, root, say } from './setup.mjs';

const argv = process.argv.slice(2);
if (!argv.includes('--help') && !argv.includes('--report')) {
  ensureAll('test');
  if (argv.includes('--guest')) {
    const res = spawnSync(process.execPath, [join(root, 'dist', 'qemu', 'prepare.js')], { stdio: 'inherit', cwd: root });
    if (res.status !== 0) {
      say('preparing the guest kernel and initramfs failed');
      process.exit(1);
    }
  }
} else {
  ensureAll('build');
}
const res = spawnSync(process.execPath, [join(root, 'dist', 'bench', 'suite.js'), ...argv], { stdio: 'inherit', cwd: root });
process.exit(res.status ?? 1);
