/**
 * The entry of nydusd's start artefact (scripts/build-start.mjs bundles this module's graph into
 * dist/start/nydusd.cjs; launch.cts runs it): what bin/nydusd needs, plus the warm-up the build
 * runs before it takes the V8 code cache, so the functions of a common start are in the cache
 * already compiled instead of being compiled lazily on every start.
 */
import { parseConfigText } from '../config/index.js';
import { main } from './nydusd.js';
import { parseNydusdArgsFast } from './nydusd-fast-args.js';
import { resolveNydusdArgs } from './nydusd-options.js';
import { runMain } from './run.js';

export { main, runMain };

/** A start's parsing, on the shapes users pass most (no file is read, nothing is started). */
export function warmUp(): void {
  const v1 = { backend: { type: 'localfs', config: { dir: '/nonexistent' } }, cache: { type: 'blobcache', config: { work_dir: '/nonexistent' } } };
  parseConfigText(JSON.stringify({ device: v1, mode: 'direct', digest_validate: false }), 'warm-up');
  parseConfigText(
    JSON.stringify({
      version: 2,
      backend: { type: 'localfs', localfs: { dir: '/nonexistent' } },
      cache: { type: 'blobcache', filecache: { work_dir: '/nonexistent' } },
      rafs: { mode: 'direct' },
    }),
    'warm-up',
  );
  const argv = ['virtiofs', '--localfs-dir', '/nonexistent', '--bootstrap', '/nonexistent.boot', '--sock', '/nonexistent.sock'];
  const args = parseNydusdArgsFast(argv);
  if (args !== undefined) resolveNydusdArgs(args, {});
}
