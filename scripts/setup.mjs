#!/usr/bin/env node
// First-run setup shared by `npm run demo`, `npm test` and .ci/run. Plain Node (no npm
// dependencies): it is what installs them. Each step says what it does and is skipped when its
// result is already there.
//
//   node scripts/setup.mjs [--build-only] [--profile=build|test|demo]
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = fileURLToPath(new URL('..', import.meta.url));

/** Debian packages each profile needs (beyond what a fresh machine has: node, g++, make, python3). */
export const kPackages = {
  // The addon: codecs, OpenSSL's libcrypto (SHA-256) and the reference BLAKE3 C sources, which
  // binding.gyp compiles from where librust-blake3-dev installs them.
  build: ['liblz4-dev', 'libzstd-dev', 'libssl-dev', 'librust-blake3-dev'],
  demo: ['qemu-system-x86', 'qemu-system-common', 'busybox-static', 'cpio'],
  test: [
    'qemu-system-x86', 'qemu-system-common', 'busybox-static', 'cpio', 'fuse3', 'erofs-utils',
    'clang-16', 'libfuzzer-16-dev', 'libclang-rt-16-dev', 'clang-format', 'debootstrap',
    // Remote storage backends: real servers the tests start, certificates, GPT disk images,
    // an independent SigV4 signer (curl --aws-sigv4).
    'docker-registry', 'nginx', 'gdisk', 'openssl', 'curl',
    // The bench's shaped link: ip and tc in a network namespace of its own.
    'iproute2',
    // Real Debian files (zone data: symlinks, many small files) for the passthrough untar tests.
    'tzdata',
    // An independent BLAKE3 (Rust) the digest tests and the bench compare with (sha256sum is
    // coreutils, always there).
    'b3sum',
  ],
};

export function say(msg) {
  process.stderr.write(`setup: ${msg}\n`);
}

function run(cmd, args, opts = {}) {
  const res = spawnSync(cmd, args, { stdio: 'inherit', cwd: root, ...opts });
  if (res.error) throw res.error;
  return res.status ?? 1;
}

function missingPackages(pkgs) {
  return pkgs.filter((p) => {
    const r = spawnSync('dpkg-query', ['-W', '-f=${Status}', p], { encoding: 'utf8' });
    return r.status !== 0 || !r.stdout.includes('install ok installed');
  });
}

export function ensurePackages(pkgs) {
  const missing = missingPackages([...new Set(pkgs)]);
  if (missing.length === 0) return;
  const line = `apt-get install -y --no-install-recommends ${missing.join(' ')}`;
  if (process.getuid?.() !== 0) {
    say(`missing Debian packages: ${missing.join(' ')}`);
    say(`run as root: apt-get update && ${line}`);
    process.exit(1);
  }
  say(`installing Debian packages: ${missing.join(' ')}`);
  // RUNLEVEL=1: package scripts do not start services (nginx, docker-registry would otherwise
  // listen on their default ports); the tests start their own instances.
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive', RUNLEVEL: '1' };
  if (run('apt-get', ['install', '-y', '-q', '--no-install-recommends', ...missing], { env, stdio: ['ignore', 'ignore', 'inherit'] }) !== 0) {
    say('apt-get install failed; refreshing the package lists and retrying');
    if (run('apt-get', ['update', '-q'], { env, stdio: ['ignore', 'ignore', 'inherit'] }) !== 0 ||
        run('apt-get', ['install', '-y', '-q', '--no-install-recommends', ...missing], { env, stdio: ['ignore', 'ignore', 'inherit'] }) !== 0) {
      say(`could not install ${missing.join(' ')}; run: apt-get update && ${line}`);
      process.exit(1);
    }
  }
}

function mtime(p) {
  return existsSync(p) ? statSync(p).mtimeMs : 0;
}

export function ensureNodeModules() {
  const marker = join(root, 'node_modules', '.package-lock.json');
  if (existsSync(marker) && mtime(marker) >= mtime(join(root, 'package-lock.json'))) return;
  say('installing npm dependencies (npm ci; this also builds the native addon)');
  if (run('npm', ['ci', '--no-audit', '--no-fund', '--loglevel=error']) !== 0) {
    say('npm ci failed');
    process.exit(1);
  }
}

export function ensureAddon() {
  if (run(process.execPath, [join(root, 'scripts', 'build-addon.mjs'), '--if-stale']) !== 0) process.exit(1);
}

function newestTs(dir, acc = 0) {
  if (!existsSync(dir)) return acc;
  for (const ent of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, ent.name);
    if (ent.isDirectory()) acc = newestTs(p, acc);
    else if (/\.c?ts$/.test(ent.name)) acc = Math.max(acc, statSync(p).mtimeMs);
  }
  return acc;
}

export function ensureTypeScript() {
  const stamp = join(root, 'dist', '.tsbuildinfo');
  const newest = Math.max(
    ...['src', 'test', 'bench', 'qemu'].map((d) => newestTs(join(root, d))),
    mtime(join(root, 'tsconfig.json')),
  );
  if (existsSync(stamp) && mtime(stamp) >= newest) return;
  say('compiling TypeScript (tsc)');
  const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
  if (run(process.execPath, [tsc, '-p', 'tsconfig.json']) !== 0) {
    say('TypeScript compilation failed');
    process.exit(1);
  }
}

/** nydusd's start artefact (bundle + V8 code cache, see src/cli/launch.cts), rebuilt when stale. */
export function ensureStartArtefact() {
  if (run(process.execPath, [join(root, 'scripts', 'build-start.mjs'), '--if-stale']) !== 0) {
    say('building the start artefact failed');
    process.exit(1);
  }
}

/** Everything the given profile needs, in dependency order. */
export function ensureAll(profile) {
  const pkgs = [...kPackages.build, ...(profile === 'build' ? [] : kPackages[profile] ?? [])];
  ensurePackages(pkgs);
  ensureNodeModules();
  ensureAddon();
  ensureTypeScript();
  ensureStartArtefact();
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const profileArg = process.argv.find((a) => a.startsWith('--profile='));
  const profile = process.argv.includes('--build-only') ? 'build' : profileArg ? profileArg.slice(10) : 'test';
  ensureAll(profile);
  say('ready');
}
