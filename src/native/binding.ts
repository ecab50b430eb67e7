/**
 * The only module that loads the compiled addon (style rule 5; ESLint forbids `.node` imports
 * elsewhere). It tries the release build, then the debug build, and fails with one error that
 * names every path it tried. Everything else imports the typed surface from `./index.js`.
 */
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { NativeError, NydusError } from '../util/errors.js';
import type { NativeAddon } from './types.js';

/** Project root: this file is src/native/binding.ts, compiled to dist/src/native/binding.js. */
function projectRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'binding.gyp'))) return dir;
    dir = dirname(dir);
  }
  return resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
}

let cached: NativeAddon | undefined;

export function candidatePaths(): string[] {
  const root = projectRoot();
  const fromEnv = process.env['NYDUS_NATIVE_ADDON'];
  const paths = [
    join(root, 'build', 'Release', 'nydus_native.node'),
    join(root, 'build', 'Debug', 'nydus_native.node'),
  ];
  return fromEnv ? [fromEnv, ...paths] : paths;
}

export function loadAddon(): NativeAddon {
  if (cached) return cached;
  const tried: string[] = [];
  for (const p of candidatePaths()) {
    if (!existsSync(p)) {
      tried.push(`${p} (missing)`);
      continue;
    }
    try {
      // process.dlopen, not require(): require() first resolves the path and reads the
      // package.json scope above it, which cost a start 2-14 ms; the path is final already.
      const mod = { exports: {} as unknown };
      process.dlopen(mod, p);
      const addon = mod.exports as NativeAddon;
      addon.initialize({ NativeError });
      cached = addon;
      return addon;
    } catch (err) {
      tried.push(`${p} (${(err as Error).message.split('\n')[0] ?? 'load failed'})`);
    }
  }
  throw new NydusError(
    'ERR_NATIVE_ADDON',
    `cannot load the native addon; tried: ${tried.join('; ')}. Build it with: npm run build:native`,
  );
}
