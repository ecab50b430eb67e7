// Randomised trees aimed at the v6 layout's edges — name lengths that land dirents on block
// boundaries, symlinks and xattrs that decide between inline tails and whole blocks, files
// around chunk boundaries — each built, exported and mounted by the host kernel, which must show
// exactly the source (seeded: a failure reproduces).
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';

import fc from 'fast-check';

import { setXattr } from '../../src/native/index.js';
import { createImage, defaultBuildOptions } from '../../src/rafs/builder/index.js';
import { exportDisk, loopMountSkip, withLoopMount } from '../helpers/erofs.js';
import { patternBytes } from '../helpers/rich-tree.js';
import { diffTrees, snapshotDir } from '../helpers/tree.js';

const kChunk = 0x1000;
const work = mkdtempSync(join(tmpdir(), 'erofs-random-'));
after(() => rmSync(work, { recursive: true, force: true }));

const name = fc.integer({ min: 1, max: 255 }).chain((len) => fc.constantFrom('a', 'b', 'z', '.', '-', 'é').map((c) => `${c}${'n'.repeat(len - 1)}`.slice(0, len)));

const node = fc.oneof(
  fc.record({ kind: fc.constant('file' as const), size: fc.oneof(fc.integer({ min: 0, max: 3 * kChunk + 1 }), fc.constantFrom(kChunk - 1, kChunk, kChunk + 1, 2 * kChunk)) }),
  fc.record({ kind: fc.constant('symlink' as const), len: fc.oneof(fc.integer({ min: 1, max: 4095 }), fc.constantFrom(4032, 4033, 3968, 4000)) }),
  fc.record({ kind: fc.constant('dir' as const), entries: fc.integer({ min: 0, max: 400 }), nameLen: fc.integer({ min: 1, max: 255 }) }),
);

const spec = fc.record({
  nodes: fc.array(fc.tuple(name, node, fc.integer({ min: 0, max: 4500 })), { minLength: 1, maxLength: 12 }),
});

type Spec = typeof spec extends fc.Arbitrary<infer T> ? T : never;

function materialize(root: string, s: Spec): void {
  mkdirSync(root);
  const used = new Set<string>();
  s.nodes.forEach(([n, nd, xattrLen], i) => {
    let nm = n;
    while (used.has(nm)) nm = `${i}${nm}`.slice(0, 255);
    used.add(nm);
    const p = join(root, nm);
    if (nd.kind === 'file') writeFileSync(p, patternBytes(nd.size, i + 1));
    else if (nd.kind === 'symlink') symlinkSync('t'.repeat(nd.len), p);
    else {
      mkdirSync(p);
      for (let k = 0; k < nd.entries; k++) writeFileSync(join(p, `${String(k).padStart(4, '0')}${'x'.repeat(Math.max(0, nd.nameLen - 4))}`.slice(0, 255)), '');
    }
    // user.* xattrs are not allowed on symlinks; put them on files and directories.
    if (nd.kind !== 'symlink' && xattrLen > 0) setXattr(Buffer.from(p), Buffer.from('user.x'), patternBytes(Math.min(xattrLen, 4000), i));
  });
}

test('random trees: the kernel sees exactly the source', { skip: loopMountSkip(), timeout: 600_000 }, async () => {
  let run = 0;
  await fc.assert(
    fc.asyncProperty(spec, async (s) => {
      const dir = join(work, `run-${run++}`);
      mkdirSync(dir);
      try {
        const src = join(dir, 'src');
        materialize(src, s);
        const out = join(dir, 'out');
        mkdirSync(out);
        await createImage({ ...defaultBuildOptions(src), chunkSize: kChunk, blobDir: out, bootstrapPath: join(out, 'b') });
        const { disk } = exportDisk(join(out, 'b'), out, dir);
        const got = await withLoopMount(disk, join(dir, 'mnt'), (m) => snapshotDir(m));
        assert.deepEqual(diffTrees(snapshotDir(src), got, { ignoreRootMtime: true }), []);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }),
    { seed: 20261127, numRuns: 25, endOnFailure: true },
  );
});
