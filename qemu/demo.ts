/**
 * `npm run demo`: boots a QEMU guest that mounts a shared tree over virtio-fs
 * (`mount -t virtiofs nydus /mnt`), lists it, reads a file, and prints what the guest saw.
 *
 * The backend is QEMU's C virtiofsd serving a tiny generated sample tree until our nydusd can
 * serve an image; switching is confined to startBackend() below.
 */
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { NydusError } from '../src/util/errors.js';
import { guestAvailable, runGuest } from './guest.js';
import { prepareGuest } from './prepare.js';
import { startVirtiofsd } from './virtiofsd.js';

/** The mount tag the guest uses; upstream nydusd documents `nydus`. */
const kTag = 'nydus';

function say(msg: string): void {
  process.stdout.write(`demo: ${msg}\n`);
}

/** A small tree with a file, a subdirectory and a symlink: enough to show lookup, readdir, read. */
function makeSampleTree(root: string): void {
  mkdirSync(join(root, 'etc'), { recursive: true });
  writeFileSync(join(root, 'hello.txt'), 'Hello from the host, served over vhost-user virtio-fs!\n');
  writeFileSync(join(root, 'etc', 'os-release'), 'NAME="nydusd-node demo"\nID=demo\n');
  symlinkSync('etc/os-release', join(root, 'os-release'));
}

interface Backend {
  /** vhost-user socket the guest's vhost-user-fs-pci device connects to. */
  socket: string;
  /** One line saying what serves the files. */
  what: string;
  stop(): Promise<void>;
}

/**
 * Starts the vhost-user-fs backend and returns once its socket listens.
 *
 * SWITCH TO OUR DAEMON HERE: once `bin/nydusd` serves vhost-user, replace the virtiofsd start
 * with `bin/nydusd --sock <socket> --bootstrap <image bootstrap> --config <config>` (e.g. an
 * upstream fixture image), wait for the socket the same way, and drop makeSampleTree(); the guest
 * script and the rest of the demo stay as they are.
 */
async function startBackend(work: string): Promise<Backend> {
  const tree = join(work, 'sample');
  makeSampleTree(tree);
  const vfsd = await startVirtiofsd({ source: tree, socketPath: join(work, 'vhost-user-fs.sock') });
  return {
    socket: vfsd.socket,
    what: `QEMU's virtiofsd serving a sample tree (${tree}); our nydusd replaces it later`,
    stop: () => vfsd.stop(),
  };
}

const kGuestScript = `
run() { echo "guest# $*"; "$@"; }
run mount -t virtiofs ${kTag} /mnt || exit 1
run ls -la /mnt
run cat /mnt/hello.txt
run cat /mnt/os-release
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
    say('starting the vhost-user-fs backend...');
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
