/**
 * Fetches the guest kernel: Debian's cloud kernel package (the one `linux-image-cloud-amd64`
 * points at), unpacked with `dpkg -x` into a cache folder outside the repository:
 * `${XDG_CACHE_HOME:-$HOME/.cache}/nydusd-node/guest/<kernel release>/`.
 *
 * Only apt's own tools are used (apt-cache, apt-get download, dpkg -x), so it works wherever the
 * machine can install Debian packages. Progress goes to stderr.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

import { NydusError } from '../src/util/errors.js';

/** The meta-package whose dependency names the current versioned kernel. */
export const kKernelMetaPackage = 'linux-image-cloud-amd64';

export interface GuestKernel {
  /** e.g. `6.1.0-56-cloud-amd64` (the `uname -r` of the guest). */
  release: string;
  /** Debian package version, e.g. `6.1.192-2`. */
  packageVersion: string;
  /** Folder holding `boot/` and `lib/modules/<release>/` as unpacked from the .deb. */
  dir: string;
  vmlinuz: string;
  modulesDir: string;
}

export function progress(msg: string): void {
  process.stderr.write(`guest: ${msg}\n`);
}

/** `${XDG_CACHE_HOME:-$HOME/.cache}/nydusd-node/guest`; NYDUS_GUEST_CACHE overrides it. */
export function guestCacheRoot(): string {
  const override = process.env['NYDUS_GUEST_CACHE'];
  if (override) return override;
  const xdg = process.env['XDG_CACHE_HOME'];
  return join(xdg && xdg.startsWith('/') ? xdg : join(homedir(), '.cache'), 'nydusd-node', 'guest');
}

interface RunResult {
  status: number;
  stdout: string;
  stderr: string;
}

function run(cmd: string, args: string[], cwd?: string): RunResult {
  const res = spawnSync(cmd, args, {
    cwd,
    encoding: 'utf8',
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive', LC_ALL: 'C' },
    maxBuffer: 64 << 20,
  });
  if (res.error) {
    throw new NydusError('ERR_GUEST_KERNEL', `cannot run ${cmd}: ${res.error.message}`, { cause: res.error });
  }
  return { status: res.status ?? 1, stdout: res.stdout, stderr: res.stderr };
}

function isRoot(): boolean {
  return process.getuid?.() === 0;
}

let aptUpdated = false;

/** Refreshes apt's package lists once per process (root only; otherwise says what to run). */
function aptUpdate(why: string): void {
  if (aptUpdated) return;
  aptUpdated = true;
  if (!isRoot()) {
    throw new NydusError('ERR_GUEST_KERNEL', `${why}; as root run: apt-get update`);
  }
  progress(`${why}; refreshing the package lists (apt-get update)`);
  const res = run('apt-get', ['update', '-q']);
  if (res.status !== 0) {
    throw new NydusError('ERR_GUEST_KERNEL', `apt-get update failed:\n${res.stderr.trim()}`);
  }
}

/**
 * Parses `apt-cache show --no-all-versions linux-image-cloud-amd64`: the meta-package depends on
 * the versioned image package, pinned with `(= version)`.
 */
export function parseMetaPackage(text: string): { pkg: string; release: string; version: string } | undefined {
  const dep = /^Depends:.*?\b(linux-image-(\d+\.\d+\.\d+-\d+-cloud-amd64))(?:\s*\(=\s*([^)\s]+)\))?/m.exec(text);
  const version = dep?.[3] ?? /^Version:\s*(\S+)\s*$/m.exec(text)?.[1];
  if (!dep?.[1] || !dep[2] || !version) return undefined;
  return { pkg: dep[1], release: dep[2], version };
}

/** The versioned package apt would install now, e.g. `linux-image-6.1.0-56-cloud-amd64` `6.1.192-2`. */
export function resolveKernelPackage(): { pkg: string; release: string; version: string } {
  for (let attempt = 0; ; attempt++) {
    const show = run('apt-cache', ['show', '--no-all-versions', kKernelMetaPackage]);
    const found = show.status === 0 ? parseMetaPackage(show.stdout) : undefined;
    if (found) return found;
    if (attempt > 0) {
      throw new NydusError('ERR_GUEST_KERNEL',
        `apt does not know ${kKernelMetaPackage} (apt-cache show said: ${(show.stderr || show.stdout).trim() || 'nothing'})`);
    }
    aptUpdate(`apt-cache does not list ${kKernelMetaPackage}`);
  }
}

function kernelAt(dir: string, release: string, packageVersion: string): GuestKernel {
  return {
    release,
    packageVersion,
    dir,
    vmlinuz: join(dir, 'boot', `vmlinuz-${release}`),
    modulesDir: join(dir, 'lib', 'modules', release),
  };
}

const kStamp = 'kernel.json';

/** A kernel already unpacked in the cache (complete: the stamp is written last), newest first. */
export function cachedKernels(): GuestKernel[] {
  const root = guestCacheRoot();
  if (!existsSync(root)) return [];
  const out: GuestKernel[] = [];
  for (const name of readdirSync(root)) {
    const stamp = join(root, name, kStamp);
    if (!existsSync(stamp)) continue;
    try {
      const meta = JSON.parse(readFileSync(stamp, 'utf8')) as { release?: unknown; packageVersion?: unknown };
      if (typeof meta.release !== 'string' || typeof meta.packageVersion !== 'string') continue;
      const k = kernelAt(join(root, name), meta.release, meta.packageVersion);
      if (existsSync(k.vmlinuz) && existsSync(k.modulesDir)) out.push(k);
    } catch {
      // A torn stamp means an interrupted fetch: ignore that folder, the next fetch redoes it.
    }
  }
  return out.sort((a, b) => b.release.localeCompare(a.release, 'en', { numeric: true }));
}

function downloadDeb(pkg: string, version: string, into: string): string {
  // As root apt would drop to the _apt user, which cannot write into our private folder.
  const sandbox = isRoot() ? ['-o', 'APT::Sandbox::User=root'] : [];
  let res = run('apt-get', [...sandbox, 'download', '-q', `${pkg}=${version}`], into);
  if (res.status !== 0) {
    // Stale lists name a version the mirror no longer has: refresh once, then re-resolve.
    aptUpdate(`apt-get download ${pkg}=${version} failed (${res.stderr.trim().split('\n').pop() ?? ''})`);
    const again = resolveKernelPackage();
    res = run('apt-get', [...sandbox, 'download', '-q', `${again.pkg}=${again.version}`], into);
    if (res.status !== 0) {
      throw new NydusError('ERR_GUEST_KERNEL', `apt-get download ${again.pkg} failed:\n${res.stderr.trim()}`);
    }
  }
  const deb = readdirSync(into).find((f) => f.endsWith('.deb'));
  if (!deb) throw new NydusError('ERR_GUEST_KERNEL', `apt-get download ${pkg} produced no .deb`);
  return join(into, deb);
}

/**
 * Returns the guest kernel, fetching it when the cache lacks the version apt currently offers.
 * Without a usable apt (offline, no lists) it falls back to the newest cached kernel.
 */
export function ensureKernel(): GuestKernel {
  let wanted: { pkg: string; release: string; version: string };
  try {
    wanted = resolveKernelPackage();
  } catch (err) {
    const cached = cachedKernels()[0];
    if (cached) {
      progress(`cannot ask apt for the current kernel (${(err as Error).message}); using cached ${cached.release}`);
      return cached;
    }
    throw err;
  }
  const root = guestCacheRoot();
  const dir = join(root, wanted.release);
  const have = cachedKernels().find((k) => k.dir === dir);
  if (have && have.packageVersion === wanted.version) return have;

  progress(`fetching guest kernel ${wanted.pkg} ${wanted.version} into ${dir}`);
  mkdirSync(root, { recursive: true });
  // Unpack beside the final folder and rename, so a killed fetch never leaves a half kernel.
  const work = mkdtempSync(join(root, '.fetch-'));
  try {
    const deb = downloadDeb(wanted.pkg, wanted.version, work);
    const tree = join(work, 'tree');
    mkdirSync(tree);
    const x = run('dpkg', ['-x', deb, tree]);
    if (x.status !== 0) throw new NydusError('ERR_GUEST_KERNEL', `dpkg -x ${deb} failed:\n${x.stderr.trim()}`);
    const version = /_([^_]+)_amd64\.deb$/.exec(deb)?.[1]?.replace('%3a', ':') ?? wanted.version;
    const release = readdirSync(join(tree, 'lib', 'modules'))[0];
    if (!release) throw new NydusError('ERR_GUEST_KERNEL', `${deb} has no lib/modules/<release>`);
    writeFileSync(join(tree, kStamp), `${JSON.stringify({ release, packageVersion: version, package: wanted.pkg })}\n`);
    const finalDir = join(root, release);
    rmSync(finalDir, { recursive: true, force: true });
    renameSync(tree, finalDir);
    progress(`guest kernel ${release} ready`);
    return kernelAt(finalDir, release, version);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
