/**
 * Process-wide stop policy for embedders that serve a FUSE mount without a daemon lifecycle
 * (test servers, small tools): the sessions given here are stopped — and so unmounted — on
 * SIGTERM, SIGINT or SIGHUP and when the process exits. The daemon itself does not use it: its
 * lifecycle (lifecycle.ts) handles signals and stops its session in order.
 *
 * After stopping the sessions on a signal, the signal is raised again when nobody else listens
 * for it, so the process dies the way the signal would have killed it.
 */
import type { FuseSession } from '../fuse/index.js';

const kSignals: readonly NodeJS.Signals[] = ['SIGTERM', 'SIGINT', 'SIGHUP'];
const kActive = new Set<FuseSession>();
let listening = false;

function stopAll(): void {
  for (const s of [...kActive]) s.stop();
  kActive.clear();
  listen(false);
}

function onSignal(sig: NodeJS.Signals): void {
  stopAll();
  if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
}

// process.exit() skips the addon's environment cleanup hooks on the main thread, so mounts are
// also undone from the 'exit' event (synchronous, which is all stop() needs).
function onExit(): void {
  stopAll();
}

function listen(on: boolean): void {
  if (on === listening) return;
  listening = on;
  for (const sig of kSignals) {
    if (on) process.on(sig, onSignal);
    else process.removeListener(sig, onSignal);
  }
  if (on) process.on('exit', onExit);
  else process.removeListener('exit', onExit);
}

/** Stops `session` on SIGTERM/SIGINT/SIGHUP and at process exit, until it stops otherwise. */
export function stopOnSignal(session: FuseSession): void {
  if (session.stopped) return;
  kActive.add(session);
  listen(true);
  void session.closed.then(() => {
    kActive.delete(session);
    if (kActive.size === 0) listen(false);
  });
}
