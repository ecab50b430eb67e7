/**
 * Layering of the C++ sources: no include cycle between folders of native/ (core/fuse includes
 * core/readpath, never the other way round), the ABI definitions depend on nothing, and only
 * native/binding includes Node-API (the core compiles and is tested without Node).
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';

import { findCycles, includeEdges } from '../helpers/include-graph.js';
import { projectRoot } from '../helpers/paths.js';

const nativeDir = join(projectRoot, 'native');

test('the cycle finder reports a folder cycle and nothing for a layered graph', () => {
  const layered = [
    { from: 'core/fuse', to: 'core/readpath' },
    { from: 'core/readpath', to: 'core/transport' },
    { from: 'core/fuse', to: 'core/transport' },
  ];
  assert.deepEqual(findCycles(layered), []);
  const circular = [...layered, { from: 'core/transport', to: 'core/fuse' }, { from: 'binding', to: 'core/fuse' }];
  assert.deepEqual(findCycles(circular), [['core/fuse', 'core/readpath', 'core/transport']]);
});

test('no include cycle between the folders of native/', () => {
  const edges = includeEdges(nativeDir);
  assert.ok(edges.some((e) => e.from === 'core/fuse' && e.to === 'core/readpath'), 'the scan sees includes');
  const cycles = findCycles(edges);
  const explain = cycles.map((c) => {
    const inCycle = edges.filter((e) => c.includes(e.from) && c.includes(e.to));
    return `${c.join(' <-> ')}:\n${inCycle.map((e) => `  ${e.from} -> ${e.to} (${e.example})`).join('\n')}`;
  });
  assert.deepEqual(cycles, [], `folder include cycles:\n${explain.join('\n')}`);
});

test('the ABI definitions include nothing from the rest of native/', () => {
  const out = includeEdges(nativeDir).filter((e) => e.from === 'core/abi');
  assert.deepEqual(out, []);
});

test('only native/binding includes Node-API', () => {
  const offenders: string[] = [];
  const walk = (dir: string): void => {
    for (const ent of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, ent.name);
      if (ent.isDirectory()) walk(p);
      else if (/\.(h|cc)$/.test(ent.name) && /#\s*include\s*[<"](napi|node_api)\.h[>"]/.test(readFileSync(p, 'utf8'))) offenders.push(p);
    }
  };
  for (const d of ['core', 'driver', 'test', 'fuzz']) walk(join(nativeDir, d));
  assert.deepEqual(offenders, []);
});
