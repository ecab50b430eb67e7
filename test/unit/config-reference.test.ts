import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';

import { configReferenceMarkdown, configReferenceRows } from '../../src/config/index.js';
import { projectRoot } from '../helpers/paths.js';

test('every configuration key has a description', () => {
  const rows = configReferenceRows();
  assert.ok(rows.length > 50);
  assert.deepEqual(
    rows.filter((r) => r.description === '').map((r) => r.key),
    [],
  );
  assert.ok(rows.some((r) => r.key === 'rafs.batch_size' && r.default === '1048576'));
  assert.ok(rows.some((r) => r.key === 'cache.filecache.work_dir' && r.default === '"."'));
});

test('the README configuration reference is the one generated from the schema', () => {
  const readme = readFileSync(join(projectRoot, 'README.md'), 'utf8');
  assert.ok(readme.includes(configReferenceMarkdown()), 'regenerate the README table from configReferenceMarkdown()');
});
