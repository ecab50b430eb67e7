#!/usr/bin/env node
// The child of scripts/build-start.mjs that makes nydusd's V8 code cache, started without Node or
// V8 flags (V8 refuses a cache made under other flags). It compiles the bundle and runs its
// warm-up, then one real start the way a frontend meets it: `nydus-image create` builds a small
// image, nydusd serves it over vhost-user in this process, the frontend driver runs one `info`
// session (vhost-user setup, FUSE INIT, GETATTR, STATFS, DESTROY) and one cold read of a file
// from the empty cache (READ misses and their fills), SIGTERM stops it. Every
// function that start compiled is then in the cache, so a real start compiles almost nothing.
// A step that cannot run here (the driver is not built, the image tool fails) is skipped and said:
// the cache then covers less, and starts are only that much slower.
//
//   node scripts/train-start.mjs ROOT BUNDLE OUT
import { execFile, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const [root, bundle, out] = process.argv.slice(2);
const self = fileURLToPath(new URL('..', import.meta.url));
const launch = createRequire(import.meta.url)(join(self, 'dist', 'src', 'cli', 'launch.cjs'));

/** What the cache covers, for the manifest (printed on stdout at the end). */
const covers = ['warm-up'];

function note(msg) {
  process.stderr.write(`train-start: ${msg}\n`);
}

function driverPath() {
  return ['Release', 'Debug'].map((c) => join(root, 'build', c, 'nydus_vu_driver')).find((p) => existsSync(p));
}

/** One `info` session; a connect before listen() is refused, so that is retried (never a hang). */
async function session(driver, sock) {
  for (let i = 0; i < 2000; i++) {
    const r = await new Promise((resolve) => execFile(driver, ['--socket', sock, 'info'], { timeout: 10_000 }, (err, _o, stderr) => resolve({ err, stderr })));
    if (!r.err) return;
    if (!/refused|No such file|ENOENT/i.test(`${r.stderr}`)) throw new Error(`the driver session failed: ${`${r.stderr}`.trim() || r.err.message}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  throw new Error(`${sock} never listened`);
}

async function train(cli) {
  const tool = join(root, 'bin', 'nydus-image');
  if (!existsSync(tool)) return note('no bin/nydus-image here: the cache covers the warm-up only');
  const work = mkdtempSync(join(tmpdir(), 'nydusd-train-'));
  try {
    const src = join(work, 'src');
    mkdirSync(join(src, 'dir'), { recursive: true });
    writeFileSync(join(src, 'hello.txt'), 'nydusd\n');
    writeFileSync(join(src, 'dir', 'data.bin'), Buffer.alloc(64 * 1024, 7));
    // Two 1 MiB chunks for the cold-read step: a miss each, filled from the empty cache.
    writeFileSync(join(src, 'dir', 'cold.bin'), Buffer.from(Array.from({ length: 2 << 20 }, (_, i) => (i * 2654435761) >>> 27)));
    const boot = join(work, 'image.boot');
    const blobs = join(work, 'blobs');
    const made = spawnSync(process.execPath, [tool, 'create', '--fs-version', '6', '--compressor', 'zstd', '-B', boot, '-D', blobs, src], { encoding: 'utf8' });
    if (made.status !== 0) return note(`nydus-image create failed (${made.stderr.trim()}): the cache covers the warm-up only`);
    const cfg = join(work, 'config.json');
    writeFileSync(cfg, JSON.stringify({
      device: { backend: { type: 'localfs', config: { dir: blobs } }, cache: { type: 'blobcache', config: { work_dir: join(work, 'cache') } } },
    }));
    const sock = join(work, 'vhost.sock');
    const served = cli.main(['virtiofs', '--config', cfg, '--bootstrap', boot, '--sock', sock]);
    const driver = driverPath();
    const client = driver === undefined ? new Promise((resolve) => setTimeout(resolve, 200)) : session(driver, sock);
    if (driver === undefined) note('the frontend driver is not built: the cache covers the start, not the first session');
    // A daemon that fails to start ends `served` first; its error is the one to tell.
    await Promise.race([client, served.then((code) => Promise.reject(new Error(`nydusd exited with ${code} before serving`)))]);
    covers.push('virtiofs start', ...(driver === undefined ? [] : ['first session']));
    if (driver !== undefined) {
      // The miss path (parked READ, fetch plan, native fill, answer) as a cold read meets it.
      const read = await new Promise((resolve) => execFile(driver, ['--socket', sock, 'bench', 'read', '--path', '/dir/cold.bin', '--size', '1M', '--qd', '1', '--passes', '1'], { timeout: 10_000 }, (err, _o, stderr) => resolve({ err, stderr })));
      if (read.err) note(`the cold read failed (${`${read.stderr}`.trim() || read.err.message}): the cache covers no miss`);
      else covers.push('cold read');
    }
    process.kill(process.pid, 'SIGTERM');
    const code = await served;
    if (code !== 0) throw new Error(`nydusd stopped with status ${code}`);
    covers.push('stop');
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

try {
  writeFileSync(out, await launch.makeCodeCache(bundle, train));
  process.stdout.write(`${JSON.stringify({ covers })}\n`);
} catch (err) {
  note(`${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
}
process.exit(0);
