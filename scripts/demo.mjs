#!/usr/bin/env node
// `npm run demo`: the main job on a default that needs nothing else. See README.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

import { ensureAll, root, say } from './setup.mjs';

ensureAll('demo');
const demo = join(root, 'dist', 'qemu', 'demo.js');
if (!existsSync(demo)) {
  say('the demo is not built yet (qemu/demo.ts)');
  process.exit(1);
}
const res = spawnSync(process.execPath, [demo, ...process.argv.slice(2)], { stdio: 'inherit', cwd: root });
process.exit(res.status ?? 1);
