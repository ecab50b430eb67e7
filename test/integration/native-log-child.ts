/**
 * Child process (and Worker) side of native-log.test.ts: each mode drives the bridge from the
 * native core's log to a JavaScript handler (native/binding/log_binding.cc) and prints one JSON
 * line when the process exits on its own (the test fails if it never does).
 */
import { isMainThread, Worker, workerData } from 'node:worker_threads';

import { loadAddon } from '../../src/native/binding.js';

const addon = loadAddon();
type Rec = [number, string, string];

/** Sets `handler` and keeps the loop alive until `done()` holds (the bridge itself does not). */
function collect(done: (got: Rec[]) => boolean): { got: Rec[]; finished: Promise<void>; release: () => void } {
  const got: Rec[] = [];
  let release = (): void => undefined;
  const finished = new Promise<void>((resolve) => {
    const keepAlive = setInterval(() => undefined, 60_000);
    release = (): void => {
      clearInterval(keepAlive);
      resolve();
    };
  });
  addon.setLogHandler((level, module, message) => {
    got.push([level, module, message]);
    if (done(got)) release();
  });
  return { got, finished, release: () => release() };
}

/** Per producer thread of a burst: how many records arrived and the first out of order (-1: none). */
function perThread(got: Rec[], module: string, threads: number): { count: number; firstOutOfOrder: number }[] {
  const seqs: number[][] = Array.from({ length: threads }, () => []);
  for (const [, m, msg] of got) {
    if (m !== module) continue;
    const [t, i] = msg.split(' ').map(Number);
    if (t !== undefined && i !== undefined) seqs[t]?.push(i);
  }
  return seqs.map((s) => ({ count: s.length, firstOutOfOrder: s.findIndex((v, i) => v !== i) }));
}

async function main(mode: string): Promise<void> {
  addon.setLogLevel(2);
  if (mode === 'order') {
    // Three native threads at once between two records of this thread: every record once, each
    // thread's in its order, after the first and before the last, none during the call.
    const threads = 3;
    const count = 20_000;
    const total = threads * count + 2;
    const c = collect((got) => got.length === total);
    addon.nativeLog(2, 'js', 'first');
    addon.nativeLogBurst(threads, count, 'burst');
    addon.nativeLog(2, 'js', 'last');
    const duringCall = c.got.length;
    await c.finished;
    addon.setLogHandler(null);
    console.log(JSON.stringify({ duringCall, total: c.got.length, first: c.got[0]?.[2], last: c.got.at(-1)?.[2], threads: perThread(c.got, 'burst', threads) }));
  } else if (mode === 'replace') {
    // Records queued before the handler is replaced still reach the old one; later ones the new.
    const old = collect(() => false);
    for (let i = 0; i < 100; i++) addon.nativeLog(2, 'r', String(i));
    const next = collect((got) => got.length === 100);
    for (let i = 100; i < 200; i++) addon.nativeLog(2, 'r', String(i));
    await next.finished;
    old.release();
    addon.setLogHandler(null);
    const seq = (got: Rec[]): number[] => got.map((r) => Number(r[2]));
    console.log(JSON.stringify({ old: seq(old.got), next: seq(next.got) }));
  } else if (mode === 'worker-exit') {
    // A Worker takes the log, queues 100000 records from native threads and exits from inside
    // the first delivery: its teardown drops the rest, and this thread can take the log again.
    const w = new Worker(new URL(import.meta.url), { workerData: { mode: 'worker-side' } });
    const code = await new Promise<number>((resolve) => w.once('exit', resolve));
    const c = collect((got) => got.length === 1001);
    addon.nativeLog(2, 'after', 'x');
    addon.nativeLogBurst(1, 1000, 'after');
    await c.finished;
    addon.setLogHandler(null);
    console.log(JSON.stringify({ code, after: c.got.length, foreign: c.got.filter((r) => r[1] !== 'after').length }));
  } else if (mode === 'exit') {
    // Records still queued when the process ends by itself: the bridge does not hold it open.
    let got = 0;
    addon.setLogHandler(() => got++);
    addon.nativeLogBurst(2, 1000, 'exit');
    process.on('exit', () => console.log(JSON.stringify({ exited: true, got })));
  } else {
    throw new Error(`unknown mode ${mode}`);
  }
}

if (isMainThread) {
  await main(process.argv[2] ?? '');
} else if ((workerData as { mode: string }).mode === 'worker-side') {
  addon.setLogLevel(2);
  addon.setLogHandler(() => process.exit(0));
  addon.nativeLogBurst(2, 50_000, 'w');
}
