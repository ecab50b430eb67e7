/**
 * Boots a throwaway QEMU guest (TCG) that runs one busybox sh script as root and reports its exit
 * status and output. This is what the end-to-end tests and the demo build on.
 *
 * Per run, only a small uncompressed cpio archive (script, settings, extra files) is appended
 * after the cached base initramfs (initramfs.ts); the kernel unpacks concatenated archives in
 * order. The script's stdout+stderr go to the second serial port, framed by markers carrying a
 * random per-run token; the first serial port is the kernel console. QEMU runs in its own process
 * group under `setpriv --pdeathsig KILL`, so a timeout, an abort or the death of this process
 * never leaves a guest behind.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';

import { NydusError } from '../src/util/errors.js';
import { filesToEntries, writeNewc } from './cpio.js';
import { baseInitramfsPath, kRunEnv, kRunScript } from './initramfs.js';
import type { GuestKernel } from './kernel.js';
import { cachedKernels } from './kernel.js';

export interface VirtiofsShare {
  /** The backend's vhost-user socket; it must already be listening (QEMU blocks until it answers). */
  socket: string;
  /** Mount tag the guest uses: `mount -t virtiofs TAG /mnt`. */
  tag: string;
  /** Virtqueue size; default 1024 (allows 1 MiB FUSE reads, see vhost-user-fs.md §3.2). */
  queueSize?: number;
}

/** A raw image attached as virtio-blk: /dev/vda, /dev/vdb, ... in the order given. */
export interface GuestDisk {
  path: string;
  readonly?: boolean;
}

export interface GuestOptions {
  /** busybox sh script, run as root with `$BOOT` set (1, 2, ...); stdin is /dev/null. */
  script: string;
  virtiofs?: VirtiofsShare[];
  disks?: GuestDisk[];
  /** Extra files (guest path -> content, mode 0644) unpacked into the guest's root before /init runs. */
  files?: Record<string, string | Buffer>;
  /** Guest RAM, memfd-backed with share=on (vhost-user needs it); default 512. */
  memoryMiB?: number;
  /** Default 1. */
  cpus?: number;
  /** QEMU is killed after this; default 120000. */
  timeoutMs?: number;
  /**
   * After the script exits 0 the guest does `reboot -f`, this many times (same QEMU process, same
   * vhost-user connections), then `poweroff -f`. A non-zero exit ends the run at once.
   */
  reboots?: number;
  extraQemuArgs?: string[];
  /** Aborting kills QEMU; runGuest then rejects with the signal's reason. */
  signal?: AbortSignal;
}

export interface GuestResult {
  /** The script's exit status on the last boot that ran it; -1 when it did not finish. */
  exitCode: number;
  /** What the script wrote to stdout and stderr (all boots, in order), without kernel messages. */
  output: string;
  /** The serial console: kernel messages and /init's progress lines (`nydus-init: ...`). */
  consoleLog: string;
  durationMs: number;
  timedOut: boolean;
  /** How many boots started the script. */
  boots: number;
  /** What QEMU itself printed on stderr (warnings, vhost-user errors). */
  qemuStderr: string;
  /** QEMU's pid (it has exited when runGuest resolves). */
  qemuPid: number;
}

export const kQemuBinary = 'qemu-system-x86_64';
const kSetpriv = '/usr/bin/setpriv';
const kMaxStderr = 256 * 1024;
// A boot takes about 2 s under TCG; the default leaves room for slow scripts and a loaded host.
const kDefaultTimeoutMs = 120_000;

/** Kernel parameters: quiet console, reboot on panic (QEMU then exits under -no-reboot). */
export const kKernelCmdline = 'console=ttyS0 quiet panic=-1 oops=panic tsc=reliable no_timer_check ' +
  'i8042.noaux i8042.nomux i8042.nopnp i8042.dumbkbd mitigations=off';

function findOnPath(bin: string): string | undefined {
  for (const dir of (process.env['PATH'] ?? '/usr/bin:/bin').split(delimiter)) {
    const p = join(dir, bin);
    if (dir !== '' && existsSync(p)) return p;
  }
  return undefined;
}

interface GuestAssets {
  kernel: GuestKernel;
  initramfs: string;
  qemu: string;
}

function findAssets(): GuestAssets | string {
  const qemu = findOnPath(kQemuBinary);
  if (!qemu) return `${kQemuBinary} not found (apt-get install qemu-system-x86)`;
  const kernels = cachedKernels();
  if (kernels.length === 0) return 'guest kernel not fetched yet (run: node dist/qemu/prepare.js)';
  for (const kernel of kernels) {
    const initramfs = baseInitramfsPath(kernel);
    if (existsSync(initramfs)) return { kernel, initramfs, qemu };
  }
  return 'guest initramfs is missing or out of date (run: node dist/qemu/prepare.js)';
}

/** false when guests can boot; otherwise why not (for `test(..., { skip: guestAvailable() })`). */
export function guestAvailable(): string | false {
  const a = findAssets();
  return typeof a === 'string' ? a : false;
}

function optionError(msg: string): NydusError {
  return new NydusError('ERR_GUEST_OPTIONS', msg);
}

function intIn(name: string, v: number | undefined, def: number, min: number, max: number): number {
  const n = v ?? def;
  if (!Number.isInteger(n) || n < min || n > max) throw optionError(`${name} must be an integer in [${min}, ${max}], got ${String(v)}`);
  return n;
}

/** QEMU's option parser splits on commas; a literal comma is written twice. */
function qemuPath(p: string): string {
  return p.replace(/,/g, ',,');
}

function diskName(i: number): string {
  return `/dev/vd${String.fromCharCode(0x61 + i)}`;
}

interface Parsed {
  output: string;
  boots: number;
  exitCode: number;
}

/** Splits the script channel into output and the start/exit markers /init wrote around it. */
export function parseScriptChannel(raw: string, token: string): Parsed {
  const re = new RegExp(`\\x1e${token} (?:start (\\d+)|exit (\\d+) (\\d+))\\x1e`, 'g');
  let output = '';
  let last = 0;
  let boots = 0;
  let lastStart = 0;
  let lastExit: { boot: number; rc: number } | undefined;
  for (const m of raw.matchAll(re)) {
    output += raw.slice(last, m.index);
    last = m.index + m[0].length;
    if (m[1] !== undefined) {
      boots++;
      lastStart = Number(m[1]);
    } else {
      lastExit = { boot: Number(m[2]), rc: Number(m[3]) };
    }
  }
  output += raw.slice(last);
  const finished = lastExit !== undefined && lastExit.boot === lastStart;
  return { output, boots, exitCode: finished && lastExit ? lastExit.rc : -1 };
}

function validate(opts: GuestOptions): void {
  if (typeof opts.script !== 'string') throw optionError('script must be a string');
  for (const [i, share] of (opts.virtiofs ?? []).entries()) {
    const tagBytes = Buffer.byteLength(share.tag);
    // Linux refuses empty tags and tags with a newline; the config field is 36 bytes.
    if (tagBytes === 0 || tagBytes > 36 || /[\n,]/.test(share.tag)) throw optionError(`virtiofs[${i}].tag ${JSON.stringify(share.tag)} must be 1..36 bytes without newline or comma`);
    intIn(`virtiofs[${i}].queueSize`, share.queueSize, 1024, 2, 1024);
    let isSocket = false;
    try {
      isSocket = statSync(share.socket).isSocket();
    } catch {
      // reported below
    }
    if (!isSocket) throw optionError(`virtiofs[${i}].socket ${share.socket} is not a listening Unix socket (start the backend first)`);
  }
  for (const [i, d] of (opts.disks ?? []).entries()) {
    if (!existsSync(d.path)) throw optionError(`disks[${i}].path ${d.path} does not exist`);
  }
  if ((opts.disks?.length ?? 0) > 20) throw optionError('at most 20 disks');
}

const live = new Set<number>();
let exitHookInstalled = false;

function killGroup(pid: number): void {
  for (const target of [-pid, pid]) {
    try {
      process.kill(target, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // setpriv's pdeathsig covers a killed Node; this covers a normal exit with guests still running.
  process.on('exit', () => {
    for (const pid of live) killGroup(pid);
  });
}

function buildArgs(opts: GuestOptions, a: GuestAssets, dir: string, bootDisk: string | undefined): string[] {
  const mem = intIn('memoryMiB', opts.memoryMiB, 512, 64, 16384);
  const cpus = intIn('cpus', opts.cpus, 1, 1, 16);
  const args = [
    '-accel', 'tcg', '-nodefaults', '-no-user-config', '-display', 'none',
    '-m', `${mem}M`, '-smp', String(cpus),
    '-object', `memory-backend-memfd,id=mem,size=${mem}M,share=on`, '-numa', 'node,memdev=mem',
    '-kernel', qemuPath(a.kernel.vmlinuz), '-initrd', qemuPath(join(dir, 'initrd.img')),
    '-append', kKernelCmdline,
    '-chardev', `file,id=con,path=${qemuPath(join(dir, 'console.log'))}`, '-serial', 'chardev:con',
    '-chardev', `file,id=out,path=${qemuPath(join(dir, 'output.log'))}`, '-serial', 'chardev:out',
  ];
  if (!bootDisk) args.push('-no-reboot');
  for (const [i, s] of (opts.virtiofs ?? []).entries()) {
    args.push('-chardev', `socket,id=vfs${i},path=${qemuPath(s.socket)}`,
      '-device', `vhost-user-fs-pci,chardev=vfs${i},tag=${s.tag},queue-size=${s.queueSize ?? 1024}`);
  }
  const disks = [...(opts.disks ?? []), ...(bootDisk ? [{ path: bootDisk }] : [])];
  for (const [i, d] of disks.entries()) {
    args.push('-drive', `file=${qemuPath(d.path)},if=none,id=disk${i},format=raw${d.readonly ? ',readonly=on' : ''}`,
      '-device', `virtio-blk-pci,drive=disk${i}`);
  }
  args.push(...(opts.extraQemuArgs ?? []));
  return args;
}

/** Boots a guest that runs `opts.script`; resolves when QEMU has exited. */
export async function runGuest(opts: GuestOptions): Promise<GuestResult> {
  opts.signal?.throwIfAborted();
  validate(opts);
  const assets = findAssets();
  if (typeof assets === 'string') throw new NydusError('ERR_GUEST_UNAVAILABLE', assets);
  const timeoutMs = intIn('timeoutMs', opts.timeoutMs, kDefaultTimeoutMs, 1, 24 * 3600 * 1000);
  const reboots = intIn('reboots', opts.reboots, 0, 0, 1000);

  const dir = mkdtempSync(join(tmpdir(), 'nydus-guest-'));
  try {
    const token = randomBytes(8).toString('hex');
    let bootDisk: string | undefined;
    if (reboots > 0) {
      bootDisk = join(dir, 'boot-counter.img');
      writeFileSync(bootDisk, Buffer.alloc(4096));
    }
    const env = `NYDUS_TOKEN=${token}\nNYDUS_REBOOTS=${reboots}\nNYDUS_BOOTDISK=${bootDisk ? diskName(opts.disks?.length ?? 0) : ''}\n`;
    const run = writeNewc([
      ...filesToEntries(opts.files ?? {}),
      ...filesToEntries({ [kRunEnv]: env }),
      ...filesToEntries({ [kRunScript]: opts.script }, 0o755),
    ]);
    // The base archive is padded to 4 bytes, so this uncompressed one starts aligned.
    writeFileSync(join(dir, 'initrd.img'), Buffer.concat([readFileSync(assets.initramfs), run]));
    const args = buildArgs(opts, assets, dir, bootDisk);
    return await launch(assets.qemu, args, dir, token, timeoutMs, opts.signal);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function launch(qemu: string, args: string[], dir: string, token: string, timeoutMs: number,
  signal: AbortSignal | undefined): Promise<GuestResult> {
  const withPdeath = existsSync(kSetpriv);
  const cmd = withPdeath ? kSetpriv : qemu;
  const argv = withPdeath ? ['--pdeathsig', 'KILL', '--', qemu, ...args] : args;
  const started = Date.now();
  installExitHook();
  return new Promise<GuestResult>((resolve, reject) => {
    const child = spawn(cmd, argv, { detached: true, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    let timedOut = false;
    let aborted = false;
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (s: string) => {
      if (stderr.length < kMaxStderr) stderr += s.slice(0, kMaxStderr - stderr.length);
    });
    const kill = (): void => {
      if (child.pid !== undefined) killGroup(child.pid);
    };
    const timer = setTimeout(() => {
      timedOut = true;
      kill();
    }, timeoutMs);
    const onAbort = (): void => {
      aborted = true;
      kill();
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    if (child.pid !== undefined) live.add(child.pid);
    child.on('error', (err) => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      reject(new NydusError('ERR_GUEST_QEMU', `cannot start ${qemu}: ${err.message}`, { cause: err }));
    });
    child.on('close', (code, sig) => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      const pid = child.pid ?? -1;
      live.delete(pid);
      // Nothing else may still hold the group (QEMU forks no helpers here), but make sure.
      if (pid > 0) killGroup(pid);
      if (aborted) {
        reject(signal?.reason instanceof Error ? signal.reason : new NydusError('ERR_ABORTED', 'guest run aborted'));
        return;
      }
      const read = (f: string): string => {
        try {
          return readFileSync(join(dir, f), 'utf8');
        } catch {
          return '';
        }
      };
      const parsed = parseScriptChannel(read('output.log'), token);
      if (!timedOut && code !== 0 && parsed.boots === 0) {
        reject(new NydusError('ERR_GUEST_QEMU',
          `${kQemuBinary} exited with ${code !== null ? `status ${code}` : `signal ${String(sig)}`} before the guest ran the script:\n${stderr.trim()}`));
        return;
      }
      resolve({
        exitCode: parsed.exitCode,
        output: parsed.output,
        consoleLog: read('console.log').replace(/\r\n/g, '\n'),
        durationMs: Date.now() - started,
        timedOut,
        boots: parsed.boots,
        qemuStderr: stderr,
        qemuPid: pid,
      });
    });
  });
}
