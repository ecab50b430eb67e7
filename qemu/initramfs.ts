/**
 * The base initramfs: busybox-static, the kernel modules virtio-fs and virtio-blk need (with their
 * dependency closure) and an `/init` that loads them and runs the per-run script.
 *
 * It is built once per kernel with `cpio -o -H newc`, gzipped and cached next to the kernel as
 * `initramfs-<key>.cpio.gz`, where the key hashes every input (init text, module lists, busybox,
 * kernel version): change any of them and the next prepare builds a new one. Each run appends a
 * small uncompressed archive (see guest.ts), so the base is never rebuilt per run.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { gzipSync } from 'node:zlib';

import { NydusError } from '../src/util/errors.js';
import type { GuestKernel } from './kernel.js';
import { progress } from './kernel.js';
import { moduleClosure, modulesDep } from './modules.js';

export const kBusybox = '/bin/busybox';

/**
 * Loaded at every boot, in this order (with their dependencies first). The virtio_pci order is
 * required: virtio needs virtio_ring's symbols, virtio_pci needs both *_dev helpers.
 */
export const kLoadModules = [
  'virtio_ring', 'virtio', 'virtio_pci_legacy_dev', 'virtio_pci_modern_dev', 'virtio_pci',
  'fuse', 'virtiofs', 'virtio_blk', 'erofs',
];

/** Shipped but not loaded: a script can `modprobe loop` (e.g. EROFS from a file) or `overlay`. */
export const kExtraModules = ['loop', 'overlay'];

/** Where the guest's /init finds the per-run settings and script (written by guest.ts). */
export const kRunEnv = 'nydus/env';
export const kRunScript = 'nydus/run.sh';

/**
 * PID 1. Output of the script goes to the second serial port (ttyS1), framed by markers that
 * carry a per-run token, so the host gets the script's bytes without kernel messages and can
 * tell a finished script from a guest that died. The boot counter lives on a scratch virtio-blk
 * disk because nothing else survives `reboot -f`.
 */
export const kInit = `#!/bin/sh
export PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root TERM=dumb
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
log() { echo "nydus-init: $*"; }
rel=$(uname -r)
while read -r m; do
  insmod "/lib/modules/$rel/$m" || log "insmod $m failed"
done < /etc/nydus/load
if [ ! -f /${kRunEnv} ]; then
  log "no per-run archive (/${kRunEnv}); powering off"
  poweroff -f
fi
. /${kRunEnv}
out=/dev/ttyS1
stty -F $out raw -echo || log "stty $out failed"
BOOT=1
if [ -n "$NYDUS_BOOTDISK" ]; then
  prev=$(dd if="$NYDUS_BOOTDISK" bs=512 count=1 2>/dev/null | tr -cd 0-9)
  BOOT=$(( \${prev:-0} + 1 ))
  printf '%d\\n' "$BOOT" | dd of="$NYDUS_BOOTDISK" conv=notrunc,fsync 2>/dev/null || log "cannot update the boot counter"
fi
export BOOT
printf '\\036%s start %d\\036' "$NYDUS_TOKEN" "$BOOT" > $out
if [ "$BOOT" -gt $(( NYDUS_REBOOTS + 1 )) ]; then
  log "boot $BOOT is more than the $(( NYDUS_REBOOTS + 1 )) allowed; not running the script"
  rc=125
else
  log "boot $BOOT: running the script"
  (cd / && exec sh /${kRunScript}) < /dev/null > $out 2>&1
  rc=$?
  log "boot $BOOT: script exited with $rc"
fi
printf '\\036%s exit %d %d\\036' "$NYDUS_TOKEN" "$BOOT" "$rc" > $out
# stty applies settings with TCSADRAIN: it returns once the port has sent everything.
stty -F $out raw
sync
if [ "$rc" -eq 0 ] && [ "$BOOT" -le "$NYDUS_REBOOTS" ]; then
  reboot -f
fi
poweroff -f
`;

/** Bump when the archive layout changes in a way the other key inputs do not capture. */
const kBuilderVersion = 1;

export interface BaseInitramfs {
  path: string;
  key: string;
}

/** Hash of everything the base archive is made from (cheap: no file contents are read). */
export function baseInitramfsKey(kernel: GuestKernel): string {
  let bb = 'missing';
  try {
    const st = statSync(kBusybox);
    bb = `${st.size}:${st.mtimeMs}`;
  } catch {
    // Left as 'missing': the build then fails with a clear message.
  }
  return createHash('sha256')
    .update(JSON.stringify([kBuilderVersion, kInit, kLoadModules, kExtraModules, kernel.release, kernel.packageVersion, bb]))
    .digest('hex')
    .slice(0, 16);
}

export function baseInitramfsPath(kernel: GuestKernel): string {
  return join(kernel.dir, `initramfs-${baseInitramfsKey(kernel)}.cpio.gz`);
}

function listTree(dir: string, out: string[] = [], base = dir): string[] {
  for (const ent of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, ent.name);
    out.push(relative(base, p));
    if (ent.isDirectory()) listTree(p, out, base);
  }
  return out;
}

function stageBusybox(stage: string): void {
  if (!existsSync(kBusybox)) {
    throw new NydusError('ERR_GUEST_INITRAMFS', `${kBusybox} not found: install the busybox-static package`);
  }
  mkdirSync(join(stage, 'bin'), { recursive: true });
  copyFileSync(kBusybox, join(stage, 'bin', 'busybox'));
  const list = spawnSync(kBusybox, ['--list-full'], { encoding: 'utf8' });
  if (list.status !== 0) throw new NydusError('ERR_GUEST_INITRAMFS', `${kBusybox} --list-full failed`);
  for (const applet of list.stdout.split('\n').filter(Boolean)) {
    const p = join(stage, applet);
    if (existsSync(p) || applet.split('/').includes('..')) continue;
    mkdirSync(dirname(p), { recursive: true });
    symlinkSync('/bin/busybox', p);
  }
}

function stageModules(stage: string, kernel: GuestKernel): string[] {
  const loaded = moduleClosure(kernel.modulesDir, kLoadModules);
  const all = moduleClosure(kernel.modulesDir, [...kLoadModules, ...kExtraModules]);
  const modRoot = join(stage, 'lib', 'modules', kernel.release);
  for (const m of all) {
    mkdirSync(dirname(join(modRoot, m.path)), { recursive: true });
    copyFileSync(join(kernel.modulesDir, m.path), join(modRoot, m.path));
  }
  writeFileSync(join(modRoot, 'modules.dep'), modulesDep(all));
  for (const f of ['modules.builtin', 'modules.order']) {
    if (existsSync(join(kernel.modulesDir, f))) copyFileSync(join(kernel.modulesDir, f), join(modRoot, f));
  }
  mkdirSync(join(stage, 'etc', 'nydus'), { recursive: true });
  writeFileSync(join(stage, 'etc', 'nydus', 'load'), loaded.map((m) => `${m.path}\n`).join(''));
  return loaded.map((m) => m.name);
}

/** Builds (or finds in the cache) the base initramfs for `kernel`. */
export function ensureBaseInitramfs(kernel: GuestKernel): BaseInitramfs {
  const key = baseInitramfsKey(kernel);
  const path = baseInitramfsPath(kernel);
  if (existsSync(path)) return { path, key };

  progress(`building the base initramfs for ${kernel.release}`);
  const stage = mkdtempSync(join(kernel.dir, '.initramfs-'));
  try {
    for (const d of ['proc', 'sys', 'dev', 'tmp', 'mnt', 'run', 'root', 'etc', 'var']) mkdirSync(join(stage, d), { recursive: true });
    stageBusybox(stage);
    const loaded = stageModules(stage, kernel);
    writeFileSync(join(stage, 'init'), kInit, { mode: 0o755 });
    writeFileSync(join(stage, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
    writeFileSync(join(stage, 'etc', 'group'), 'root:x:0:\n');

    const names = listTree(stage).sort();
    const cpio = spawnSync('cpio', ['-o', '-H', 'newc', '-R', '0:0', '--reproducible', '--quiet'], {
      cwd: stage,
      input: `${names.join('\n')}\n`,
      maxBuffer: 1 << 30,
    });
    if (cpio.error || cpio.status !== 0) {
      throw new NydusError('ERR_GUEST_INITRAMFS',
        `cpio -o -H newc failed: ${cpio.error?.message ?? cpio.stderr.toString().trim()} (install the cpio package)`);
    }
    const gz = gzipSync(cpio.stdout, { level: 9 });
    // The kernel only recognises an uncompressed archive appended after this one when it starts
    // at a 4-byte aligned offset; zero padding between archives is skipped.
    const padded = Buffer.concat([gz, Buffer.alloc((4 - (gz.length % 4)) % 4)]);
    const tmp = `${path}.${process.pid}.tmp`;
    writeFileSync(tmp, padded);
    renameSync(tmp, path);
    progress(`base initramfs ready (${(padded.length / 1048576).toFixed(1)} MiB, loads ${loaded.join(' ')})`);
    return { path, key };
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
}
