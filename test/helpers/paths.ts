/** Paths shared by tests: the project root, built artefacts and the upstream fixtures. */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

function findRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (dir !== '/') {
    if (existsSync(join(dir, 'binding.gyp'))) return dir;
    dir = dirname(dir);
  }
  throw new Error('project root not found');
}

export const projectRoot = findRoot();
export const binDir = join(projectRoot, 'bin');

/** `../shared/fixtures/nydus` next to the project (CI has it; elsewhere tests skip). */
export const fixturesDir = join(projectRoot, '..', 'shared', 'fixtures', 'nydus');

/**
 * For `test(name, { skip: fixturesSkip() }, ...)`: false when the upstream fixtures are present,
 * otherwise the reason the test is skipped.
 */
export function fixturesSkip(): string | false {
  return existsSync(fixturesDir) ? false : `upstream fixtures not found at ${fixturesDir}`;
}

export function fixture(...parts: string[]): string {
  return join(fixturesDir, ...parts);
}

export function nativeBuildFile(name: string): string {
  for (const cfg of ['Release', 'Debug']) {
    const p = join(projectRoot, 'build', cfg, name);
    if (existsSync(p)) return p;
  }
  throw new Error(`${name} is not built (npm run build:native)`);
}
