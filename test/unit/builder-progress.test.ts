import assert from 'node:assert/strict';
import { test } from 'node:test';

import { ProgressBar, formatBytes } from '../../src/rafs/builder/progress.js';

test('progress bar redraws one line, truncates to the terminal width and clears', () => {
  const out: string[] = [];
  const bar = new ProgressBar({ write: (s) => out.push(s) > 0, columns: 40 });
  bar.update({ files: 3, bytes: 5 * 1048576, done: false });
  bar.update({ files: 4, bytes: 6 * 1048576, done: false }); // within 100 ms: skipped
  bar.update({ files: 5, bytes: 7 * 1048576, done: true }); // the final state always shows
  assert.equal(out.length, 2);
  assert.match(out[0]!, /^\r. building: 3 files, 5\.0 MiB read/);
  assert.ok(out.every((l) => l.replace('\r', '').replace('\x1b[K', '').length <= 39));
  bar.clear();
  assert.equal(out.at(-1), '\r\x1b[K');
  bar.clear();
  assert.equal(out.length, 3, 'clearing twice writes once');
  assert.deepEqual([formatBytes(1), formatBytes(1536), formatBytes(3 * 2 ** 30)], ['1 B', '1.5 KiB', '3.0 GiB']);
});
