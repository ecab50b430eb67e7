// Runs the C++ core unit tests (native/test, built by binding.gyp as nydus_core_tests) so their
// result is part of the node test summary.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';

import { nativeBuildFile } from '../helpers/paths.js';

test('C++ core unit tests pass', { timeout: 300_000 }, () => {
  const res = spawnSync(nativeBuildFile('nydus_core_tests'), [], { encoding: 'utf8' });
  const summary = /core tests: (\d+) passed, (\d+) failed/.exec(res.stdout);
  assert.ok(summary, `no summary in output:\n${res.stdout}\n${res.stderr}`);
  assert.equal(summary[2], '0', `failures:\n${res.stdout}\n${res.stderr}`);
  assert.ok(Number(summary[1]) > 0);
  assert.equal(res.status, 0);
});
