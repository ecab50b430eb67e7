/**
 * Native log records reach the JavaScript logger through our own queue and loop wake
 * (native/binding/log_binding.cc), not a thread-safe function: every record once, each producer's
 * in order, asynchronously; records queued before the handler is replaced still reach the old
 * handler; a Worker that took the log and exits mid-stream drops its records and leaves the log
 * usable; the bridge never keeps a process alive.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';

import { projectRoot } from '../helpers/paths.js';

const child = join(projectRoot, 'dist', 'test', 'integration', 'native-log-child.js');

/** Runs one mode; the child must exit by itself (the timeout only keeps a hang from blocking the run). */
function run(mode: string): unknown {
  const r = spawnSync(process.execPath, [child, mode], { encoding: 'utf8', timeout: 120_000 });
  assert.equal(r.signal, null, `${mode}: the child did not exit by itself (${r.signal}); stderr: ${r.stderr}`);
  assert.equal(r.status, 0, `${mode}: exit status ${r.status}; stderr: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop() ?? '');
}

test('records from three native threads and the JS thread: all once, each thread in order, none during the call', () => {
  const out = run('order') as { duringCall: number; total: number; first: string; last: string; threads: { count: number; firstOutOfOrder: number }[] };
  assert.equal(out.duringCall, 0);
  assert.equal(out.total, 3 * 20_000 + 2);
  assert.equal(out.first, 'first');
  assert.equal(out.last, 'last');
  assert.deepEqual(out.threads, Array.from({ length: 3 }, () => ({ count: 20_000, firstOutOfOrder: -1 })));
});

test('replacing the handler: what was queued before goes to the old one, what comes after to the new one', () => {
  const out = run('replace') as { old: number[]; next: number[] };
  assert.deepEqual(out.old, Array.from({ length: 100 }, (_, i) => i));
  assert.deepEqual(out.next, Array.from({ length: 100 }, (_, i) => 100 + i));
});

test('a Worker that took the log exits with 100000 records queued: the process goes on and takes the log back', () => {
  const out = run('worker-exit') as { code: number; after: number; foreign: number };
  assert.equal(out.code, 0);
  assert.equal(out.after, 1001);
  assert.equal(out.foreign, 0);
});

test('a process with a log handler and records queued exits by itself', () => {
  const out = run('exit') as { exited: boolean };
  assert.equal(out.exited, true);
});
