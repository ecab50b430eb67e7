// Runs every libFuzzer target in native/fuzz (each *_fuzz.cc) for ~10 s through scripts/fuzz.sh,
// which builds it with clang-16 + ASan/UBSan and replays the committed seeds first. A crash,
// sanitizer report or leak fails the test. Long runs: `npm run fuzz -- SECONDS [TARGET]`.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';

import { projectRoot } from '../helpers/paths.js';

const kSeconds = 10;

function clangSkip(): string | false {
  const r = spawnSync('clang++-16', ['--version'], { stdio: 'ignore' });
  return r.status === 0 ? false : 'clang++-16 not found (apt-get install clang-16 libfuzzer-16-dev libclang-rt-16-dev)';
}

const targets = readdirSync(join(projectRoot, 'native', 'fuzz'))
  .filter((f) => f.endsWith('_fuzz.cc'))
  .map((f) => f.slice(0, -3))
  .sort();

test('there are fuzz targets to run', () => {
  assert.ok(targets.includes('vhost_msg_fuzz'));
  assert.ok(targets.includes('desc_chain_fuzz'));
});

for (const target of targets) {
  test(`fuzz target ${target} runs ${kSeconds}s without findings`, { skip: clangSkip(), timeout: 900_000 }, () => {
    const r = spawnSync('bash', [join(projectRoot, 'scripts', 'fuzz.sh'), String(kSeconds), target], {
      cwd: projectRoot, encoding: 'utf8',
    });
    assert.equal(r.status, 0, `fuzz.sh ${target} failed:\n${r.stderr.slice(-4000)}`);
    const execs = /stat::number_of_executed_units:\s+(\d+)/.exec(r.stderr);
    assert.ok(execs, `no libFuzzer statistics in:\n${r.stderr.slice(-2000)}`);
    assert.ok(Number(execs[1]) > 0);
  });
}
