#!/usr/bin/env node
// `npm run lint`: TypeScript type check, ESLint, and clang-format (dry run) over native sources.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

import { ensureNodeModules, ensurePackages, root } from './setup.mjs';

ensurePackages(['clang-format']);
ensureNodeModules();

let failed = false;
function step(name, cmd, args) {
  process.stderr.write(`lint: ${name}\n`);
  const res = spawnSync(cmd, args, { stdio: 'inherit', cwd: root });
  if (res.status !== 0) failed = true;
}

// Not incremental: a --noEmit run would record dist/ as up to date and a later build would
// skip emitting (npm test then ran stale dist/ after a lint).
step('tsc --noEmit', process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json', '--noEmit', '--incremental', 'false']);
step('eslint', process.execPath, [join(root, 'node_modules', 'eslint', 'bin', 'eslint.js'), '--max-warnings=0', '.']);
const files = spawnSync('git', ['ls-files', 'native/*.cc', 'native/*.h', 'native/**/*.cc', 'native/**/*.h'], { cwd: root, encoding: 'utf8' })
  .stdout.split('\n').filter(Boolean);
if (files.length > 0) step(`clang-format (${files.length} files)`, 'clang-format', ['--dry-run', '--Werror', ...files]);
process.exit(failed ? 1 : 0);
