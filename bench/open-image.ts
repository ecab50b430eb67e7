/**
 * Bootstrap open cost of one image, measured in a fresh process (so the RSS delta is what the
 * open image costs, not what generated it): the first open (cold JIT, page-cached file), the
 * median of 15 more, the RSS growth the open image causes, and a full walk as a sanity check
 * that the image is what it claims. Prints one JSON line. Same method as bench/rafs-open.ts,
 * which does this for synthetic v5/v6 bootstraps.
 *
 *   node --expose-gc dist/bench/open-image.js BOOTSTRAP
 */
import { openBootstrap } from '../src/rafs/index.js';
import { median } from './lib/stats.js';

const gc = (globalThis as { gc?: () => void }).gc;

function rssMiB(): number {
  gc?.();
  return process.memoryUsage().rss / 2 ** 20;
}

function ms(t0: bigint): number {
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

function main(): void {
  const path = process.argv[2];
  if (path === undefined) {
    process.stderr.write('usage: open-image BOOTSTRAP\n');
    process.exit(2);
  }
  const rss0 = rssMiB();
  let t0 = process.hrtime.bigint();
  const img = openBootstrap(path);
  const firstMs = ms(t0);
  const rss1 = rssMiB();
  const opens: number[] = [];
  for (let i = 0; i < 15; i++) {
    t0 = process.hrtime.bigint();
    openBootstrap(path).close();
    opens.push(ms(t0));
  }
  t0 = process.hrtime.bigint();
  let inodes = 0;
  img.walk(() => {
    inodes++;
  });
  const walkMs = ms(t0);
  const rss2 = rssMiB();
  img.close();
  process.stdout.write(`${JSON.stringify({
    bootstrap: path, first_open_ms: firstMs, open_ms: median(opens), open_ms_all: opens, inodes, walk_ms: walkMs,
    rss_before_mib: rss0, rss_open_delta_mib: rss1 - rss0, rss_after_walk_mib: rss2,
  })}\n`);
}

main();
