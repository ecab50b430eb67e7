/**
 * `npm run demo`: the product end to end on a default that needs nothing else. It builds the
 * bundled sample tree (qemu/sample) into a RAFS v6 image with `nydus-image create`, serves it
 * with `nydusd virtiofs --sock`, boots a QEMU guest that runs `mount -t virtiofs nydus /mnt`,
 * lists the mount, reads files, and prints what the guest saw.
 */
import type { ChildProcess } from 'node:child_process';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { NydusError } from '../src/util/errors.js';
import { guestAvailable, runGuest } from './guest.js';
import { prepareGuest } from './prepare.js';

/** The mount tag the guest uses; upstream nydusd documents `nydus`. */
const kTag = 'nydus';

function say(msg: string): void {
  process.stdout.write(`demo: ${msg}\n`);
}

function projectRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'binding.gyp'))) {
    const up = dirname(dir);
    if (up === dir) throw new NydusError('ERR_DEMO', 'project root not found');
    dir = up;
  }
  return dir;
}

interface Backend {
  /** vhost-user socket the guest's vhost-user-fs-pci device connects to. */
  socket: string;
  /** One line saying what serves the files. */
  what: string;
  stop(): Promise<void>;
}

/** Waits until nydusd logs that it is ready (it listens from then on), or fails with its log. */
function waitReady(proc: ChildProcess, log: () => string): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new NydusError('ERR_DEMO', `nydusd did not get ready:\n${log()}`)), 20_000);
    const check = (): void => {
      if (/ready in [\d.]+ ms/.test(log())) {
        clearTimeout(timer);
        resolve();
      }
    };
    proc.stderr?.on('data', check);
    proc.once('exit', (code) => {
      clearTimeout(timer);
      reject(new NydusError('ERR_DEMO', `nydusd exited with ${String(code)}:\n${log()}`));
    });
  });
}

/** Builds the sample image and starts our nydusd on a vhost-user socket. */
async function startBackend(work: string): Promise<Backend> {
  const root = projectRoot();
  const sample = join(root, 'qemu', 'sample');
  const blobs = join(work, 'blobs');
  mkdirSync(blobs);
  const boot = join(work, 'sample.boot');
  say(`building a RAFS v6 image of ${sample} (nydus-image create)...`);
  const built = spawnSync(process.execPath, [join(root, 'bin', 'nydus-image'), 'create', '--bootstrap', boot, '--blob-dir', blobs, sample], { encoding: 'utf8' });
  if (built.status !== 0) throw new NydusError('ERR_DEMO', `nydus-image create failed:\n${built.stderr}`);
  for (const line of `${built.stdout}${built.stderr}`.trim().split('\n')) say(`  ${line}`);
  const socket = join(work, 'vhost-user-fs.sock');
  const args = ['virtiofs', '--sock', socket, '--bootstrap', boot, '--localfs-dir', blobs];
  say(`starting: nydusd ${args.join(' ')}`);
  const proc = spawn(process.execPath, [join(root, 'bin', 'nydusd'), ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  proc.stderr.setEncoding('utf8').on('data', (d: string) => (log += d));
  await waitReady(proc, () => log);
  return {
    socket,
    what: `our nydusd (pid ${String(proc.pid)}) serving the image on ${socket}`,
    stop: async () => {
      if (proc.exitCode !== null) return;
      const exited = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGTERM');
      await exited;
    },
  };
}

const kGuestScript = `
run() { echo "guest# $*"; "$@"; }
run mount -t virtiofs ${kTag} /mnt || exit 1
run ls -la /mnt
run ls -la /mnt/etc /mnt/docs
run cat /mnt/hello.txt
run cat /mnt/os-release
run df -h /mnt
`;

async function main(): Promise<number> {
  const t0 = Date.now();
  say('fetching guest kernel and building the initramfs (cached after the first run)...');
  prepareGuest();
  const why = guestAvailable();
  if (why) throw new NydusError('ERR_GUEST_UNAVAILABLE', why);

  const work = mkdtempSync(join(tmpdir(), 'nydus-demo-'));
  let backend: Backend | undefined;
  try {
        backend = await startBackend(work);
    say(`backend: ${backend.what}`);
    say(`booting guest (QEMU TCG, virtio-fs tag "${kTag}")...`);
    const r = await runGuest({ script: kGuestScript, virtiofs: [{ socket: backend.socket, tag: kTag }], timeoutMs: 90_000 });
    process.stdout.write('\n---------------- guest says: ----------------\n');
    process.stdout.write(r.output.endsWith('\n') || r.output === '' ? r.output : `${r.output}\n`);
    process.stdout.write('---------------------------------------------\n\n');
    if (r.timedOut || r.exitCode !== 0) {
      say(r.timedOut ? 'the guest timed out' : `the guest script failed with status ${r.exitCode}`);
      process.stdout.write(`guest console:\n${r.consoleLog}\n${r.qemuStderr}`);
      return 1;
    }
    say(`guest booted, read the share and powered off in ${(r.durationMs / 1000).toFixed(1)} s ` +
      `(demo total ${((Date.now() - t0) / 1000).toFixed(1)} s)`);
    return 0;
  } finally {
    await backend?.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

main().then((code) => process.exit(code), (err: unknown) => {
  process.stderr.write(`demo: ${NydusError.is(err) ? err.message : String(err)}\n`);
  process.exit(1);
});
