import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';

import { binDir } from '../helpers/paths.js';

function run(bin: string, args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [join(binDir, bin), ...args], { encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

for (const bin of ['nydusd', 'nydus-image']) {
  test(`${bin} --version prints the package version`, () => {
    const r = run(bin, ['--version']);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /Version:\s+v\d+\.\d+\.\d+/);
  });

  test(`${bin} --help lists usage and exits 0`, () => {
    const r = run(bin, ['--help']);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /--help/);
    assert.match(r.stdout, new RegExp(bin));
  });
}
