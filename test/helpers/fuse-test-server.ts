/**
 * A process hosting a FuseSession with the in-memory test filesystem (mem-fuse-fs.ts), for tests
 * that need the server in another process (signal handling, the virtio frontend driver, QEMU).
 *
 *   node dist/test/helpers/fuse-test-server.js --tmp DIR (--mount DIR | --socket PATH)
 *        [--threads N] [--hang-open NAME] [--exit]
 *
 * Prints one line `READY {json}` on stdout once serving, and `CLOSED {json}` when the session
 * ends. Exits on SIGTERM (the session unmounts first: stopOnSignal) or when stdin closes
 * (--socket mode); `--exit` calls process.exit(0) right after READY (the exit hook must unmount).
 */
import { parseArgs } from 'node:util';

import { stopOnSignal } from '../../src/daemon/stop-on-signal.js';
import { FuseSession } from '../../src/fuse/index.js';
import { createMemFs } from './mem-fuse-fs.js';

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      tmp: { type: 'string' },
      mount: { type: 'string' },
      socket: { type: 'string' },
      threads: { type: 'string' },
      'hang-open': { type: 'string' },
      exit: { type: 'boolean' },
    },
  });
  if (values.tmp === undefined || (values.mount === undefined) === (values.socket === undefined)) {
    process.stderr.write('usage: fuse-test-server --tmp DIR (--mount DIR | --socket PATH)\n');
    process.exit(2);
  }
  const mem = await createMemFs(values.tmp);
  if (values['hang-open'] !== undefined) mem.hangOpenOf = values['hang-open'];
  const session = new FuseSession(mem.fs, {
    logger: { error: (m) => process.stderr.write(`server error: ${m}\n`), warn: (m) => process.stderr.write(`server warn: ${m}\n`) },
  });
  mem.bind(session);
  let info: unknown;
  if (values.mount !== undefined) {
    info = session.mount(values.mount, { threads: Number(values.threads ?? '4') });
    stopOnSignal(session);
  } else {
    session.attachVirtio({ socketPath: values.socket as string });
    info = { socket: values.socket };
    process.stdin.on('end', () => session.stop());
    process.stdin.resume();
  }
  process.stdout.write(`READY ${JSON.stringify({ pid: process.pid, ...(info as object) })}\n`);
  if (values.exit === true) process.exit(0);
  const closed = await session.closed;
  mem.close();
  process.stdout.write(`CLOSED ${JSON.stringify({ ...closed, counters: mem.counters })}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`fuse-test-server: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
