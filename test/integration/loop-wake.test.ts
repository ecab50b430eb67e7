/**
 * Native results reach the event loop through our own queue and uv_async_t (native/binding/
 * loop_wake.h), not a thread-safe function: every item exactly once and in order, microtasks run
 * after each (as after any callback), a throwing callback is an uncaught exception (not
 * swallowed) and the rest still arrive, the loop stays alive while work is in flight and not
 * after (each child exits on its own), and an environment torn down mid-stream (a Worker exiting
 * with fills in flight) waits for them and then drops their results, leaving the process sound.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';

import { projectRoot } from '../helpers/paths.js';

const tmpRoot = mkdtempSync(join(tmpdir(), 'nydus-loop-wake-'));
after(() => rmSync(tmpRoot, { recursive: true, force: true }));

const child = join(projectRoot, 'dist', 'test', 'integration', 'loop-wake-child.js');

/** Runs one mode; the child must exit by itself (the timeout only keeps a hang from blocking the run). */
function run(mode: string): unknown {
  const dir = mkdtempSync(join(tmpRoot, `${mode}-`));
  const r = spawnSync(process.execPath, [child, mode, dir], { encoding: 'utf8', timeout: 300_000 });
  assert.equal(r.signal, null, `${mode}: the child did not exit by itself (${r.signal}); stderr: ${r.stderr}`);
  assert.equal(r.status, 0, `${mode}: exit status ${r.status}; stderr: ${r.stderr}`);
  const line = r.stdout.trim().split('\n').pop() ?? '';
  return JSON.parse(line);
}

interface Summary {
  count: number;
  firstOutOfOrder: number;
  microtasksBeforeNext: number;
}

function assertSequence(s: Summary, count: number, what: string): void {
  assert.equal(s.count, count, `${what}: ${s.count} of ${count} items`);
  assert.equal(s.firstOutOfOrder, -1, `${what}: item ${s.firstOutOfOrder} out of order`);
}

test('two producers at once: each stream arrives whole, once, in order, with microtasks run between items', () => {
  const out = run('order') as { a: Summary; b: Summary };
  assertSequence(out.a, 100_000, 'stream a');
  assertSequence(out.b, 30_000, 'stream b');
  // Each delivery is its own callback: its microtasks ran before the next item of its stream.
  assert.equal(out.a.microtasksBeforeNext, 100_000 - 1);
  assert.equal(out.b.microtasksBeforeNext, 30_000 - 1);
});

test('a throwing callback is reported as an uncaught exception and the items after it still arrive', () => {
  const out = run('throw') as Summary & { errors: string[] };
  assertSequence(out, 50, 'items');
  assert.deepEqual(out.errors, ['boom 5', 'boom 17']);
});

test('a fill keeps the process alive until it settles and not after', () => {
  const out = run('fill') as { cached: number; ready: number };
  assert.equal(out.cached, 8);
  assert.equal(out.ready, 8);
});

test('a Worker exiting from inside a delivery, a million items still coming: it exits, the process goes on', () => {
  const out = run('worker-probe') as { code: number; started: boolean; after: number };
  assert.equal(out.code, 0);
  assert.equal(out.started, true);
  assert.equal(out.after, 1000);
});

test('a Worker exiting with four fills in flight over its own Buffer: its teardown waits for them, the process goes on', () => {
  const out = run('worker-fill') as { code: number; started: boolean; ready: number; after: number };
  assert.equal(out.code, 0);
  assert.equal(out.started, true);
  // Every chunk was filled before the worker was gone (it waited for the fills it started).
  assert.equal(out.ready, 32);
  assert.equal(out.after, 1000);
});
