/**
 * Property tests: truncations, bit flips, byte overwrites and random bytes applied to real and
 * synthetic images must only ever produce RafsError — never a RangeError/TypeError (an
 * out-of-range read), a crash or a hang — while every operation of the API is exercised.
 * Scale with RAFS_FUZZ_RUNS (default 150 per target and mutation kind).
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { test } from 'node:test';

import fc from 'fast-check';

import {
  bufferSource,
  decodeZranContexts,
  findToc,
  loadBlobMetaFromBlob,
  openBootstrapBuffer,
  parseBlobMetaFile,
  parseToc,
  RafsError,
  type RafsImage,
  readChunkData,
} from '../helpers/rafs-test-imports.js';
import { fixture } from '../helpers/paths.js';
import { buildV5 } from '../helpers/rafs-synth-v5.js';
import { buildV6, type SynthNode } from '../helpers/rafs-synth-v6.js';

const kRuns = Number(process.env['RAFS_FUZZ_RUNS'] ?? 150);

/** Runs `fn`; a RafsError is an accepted outcome, anything else fails the property. */
function tolerate(fn: () => void): void {
  try {
    fn();
  } catch (e) {
    if (!(e instanceof RafsError)) throw e;
  }
}

/** Touches every API entry point on every reachable inode, checking the shapes it returns. */
function exercise(img: RafsImage, blob?: Buffer): void {
  const refs: number[] = [];
  tolerate(() => img.walk((_p, ref) => void refs.push(ref)));
  tolerate(() => void refs.push(...img.prefetchRefs()));
  refs.push(img.super.rootRef, img.super.rootRef + 1, 0);
  for (const ref of refs.slice(0, 3000)) {
    tolerate(() => {
      const a = img.getAttr(ref);
      assert.ok(Number.isSafeInteger(a.size) && a.size >= 0);
    });
    tolerate(() => void img.isDir(ref));
    tolerate(() => void img.inodeDigest(ref));
    tolerate(() => {
      let n = 0;
      img.readDir(ref, 0, (e) => {
        assert.ok(e.name.length > 0 && e.name.length <= 256 && e.nextOffset > 0);
        if (n++ < 50) tolerate(() => void img.lookup(ref, e.name));
        return n < 5000;
      });
    });
    tolerate(() => void img.lookup(ref, Buffer.from('zz-not-there')));
    tolerate(() => {
      const t = img.readLink(ref);
      assert.ok(t.length > 0 && t.length <= 4096);
    });
    tolerate(() => {
      for (const x of img.listXattrs(ref)) tolerate(() => void img.getXattr(ref, x));
    });
    tolerate(() => {
      let end = 0;
      for (const c of img.chunks(ref)) {
        assert.ok(c.fileOffset >= end && c.digest.length === 32);
        end = c.fileOffset;
        const info = img.blobs[c.blobIndex];
        assert.ok(info);
        if (blob) {
          const src = bufferSource(blob, 'fuzz-blob');
          tolerate(() => void readChunkData((o, l) => src.read(o, l), c, info));
        }
      }
    });
  }
}

type Mutation = { kind: 'truncate'; at: number } | { kind: 'flip'; flips: { pos: number; bit: number }[] } | { kind: 'write'; pos: number; bytes: Uint8Array };

function mutations(buf: Buffer): fc.Arbitrary<Mutation> {
  const hot: number[] = [];
  for (let i = 0; i < buf.length; i++) if (buf[i] !== 0) hot.push(i);
  const pos = fc.oneof(fc.nat(buf.length - 1), fc.constantFrom(...(hot.length > 0 ? hot : [0])));
  return fc.oneof(
    fc.record({ kind: fc.constant('truncate' as const), at: fc.nat(buf.length) }),
    fc.record({ kind: fc.constant('flip' as const), flips: fc.array(fc.record({ pos, bit: fc.integer({ min: 0, max: 7 }) }), { minLength: 1, maxLength: 6 }) }),
    fc.record({ kind: fc.constant('write' as const), pos, bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }) }),
  );
}

function apply(buf: Buffer, m: Mutation): Buffer {
  if (m.kind === 'truncate') return Buffer.from(buf.subarray(0, m.at));
  const out = Buffer.from(buf);
  if (m.kind === 'flip') {
    for (const f of m.flips) out.writeUInt8((out.readUInt8(f.pos) ^ (1 << f.bit)) & 0xff, f.pos);
  } else {
    Buffer.from(m.bytes).copy(out, m.pos);
  }
  return out;
}

function fuzzImage(name: string, buf: Buffer, opts: { blob?: Buffer; provide?: boolean } = {}): void {
  fc.assert(
    fc.property(mutations(buf), (m) => {
      const mutated = apply(buf, m);
      tolerate(() => {
        const img = openBootstrapBuffer(mutated, name, {
          blobMetaProvider: opts.provide && opts.blob ? (b) => loadBlobMetaFromBlob(bufferSource(opts.blob as Buffer, 'blob'), b) : undefined,
        } as Parameters<typeof openBootstrapBuffer>[2]);
        exercise(img, opts.blob);
      });
    }),
    { numRuns: kRuns },
  );
}

const F = (...p: string[]): string => fixture('tests/texture', ...p);
const haveFixtures = existsSync(F('bootstrap/rafs-v6-2.2.boot'));

test('fuzz: v5 fixture bootstrap', { skip: !haveFixtures && 'fixtures absent', timeout: 300_000 }, () => {
  fuzzImage('v5', readFileSync(F('repeatable/sha256-nocompress-repeatable')));
});

test('fuzz: v6 fixture bootstrap (with its blob as meta source)', { skip: !haveFixtures && 'fixtures absent', timeout: 300_000 }, () => {
  const blob = readFileSync(F('blobs/be7d77eeb719f70884758d1aa800ed0fb09d701aaec469964e9d54325f0d5fef'));
  fuzzImage('v6', readFileSync(F('bootstrap/rafs-v6-2.2.boot')), { blob, provide: true });
});

test('fuzz: the v6 fixture blob (CI, TOC, digests, chunk data)', { skip: !haveFixtures && 'fixtures absent', timeout: 300_000 }, () => {
  const boot = readFileSync(F('bootstrap/rafs-v6-2.2.boot'));
  const blob = readFileSync(F('blobs/be7d77eeb719f70884758d1aa800ed0fb09d701aaec469964e9d54325f0d5fef'));
  fc.assert(
    fc.property(mutations(blob), (m) => {
      const mutated = apply(blob, m);
      const img = openBootstrapBuffer(boot, 'v6', { blobMetaProvider: (b) => loadBlobMetaFromBlob(bufferSource(mutated, 'blob'), b) });
      exercise(img, mutated);
      tolerate(() => {
        const loc = findToc(mutated.subarray(Math.max(0, mutated.length - 4096)), mutated.length);
        parseToc(mutated.subarray(loc.offset, loc.offset + loc.size), loc);
      });
    }),
    { numRuns: kRuns },
  );
});

test('fuzz: inline-meta TOC blob opened as a bootstrap', { skip: !haveFixtures && 'fixtures absent', timeout: 300_000 }, () => {
  const buf = readFileSync(F('toc/2fa78cad554b75ac91a4a125ed148d0ddeb25efa4aaa8bd80e5dc292690a4dca'));
  fuzzImage('2fa78cad554b75ac91a4a125ed148d0ddeb25efa4aaa8bd80e5dc292690a4dca', buf, { blob: buf });
});

test('fuzz: zran .blob.meta cache file', { skip: !haveFixtures && 'fixtures absent', timeout: 300_000 }, () => {
  const buf = readFileSync(F('zran/233c72f2b6b698c07021c4da367cfe2dff4f049efbaa885ca0ff760ea297865a.blob.meta'));
  // Mutations focus on the header and the first entries/contexts (the rest is bulk dictionary data).
  const head = Buffer.concat([buf.subarray(0, 8192), buf.subarray(buf.length - 4096)]);
  fc.assert(
    fc.property(mutations(head), (m) => {
      const h = apply(head, m);
      const mutated = h.length === head.length ? Buffer.concat([h.subarray(0, 8192), buf.subarray(8192, buf.length - 4096), h.subarray(8192)]) : h;
      tolerate(() => {
        const meta = parseBlobMetaFile(mutated, 'zran');
        for (let i = 0; i < meta.ci.count; i++) tolerate(() => void meta.ci.get(i));
        decodeZranContexts(mutated.subarray(0, meta.header.ciUncompressedSize), meta.header);
      });
    }),
    { numRuns: kRuns },
  );
});

test('fuzz: synthetic v6 (multi-block dirs, xattrs, devices, chunk table) and v5 (holes, xattrs)', { timeout: 300_000 }, () => {
  const kids: Record<string, SynthNode> = {};
  for (let i = 0; i < 400; i++) kids[`n${i}-${'x'.repeat(i % 20)}`] = { type: 'file', data: Buffer.from(`f${i}`), compact: i % 3 === 0 };
  const tree: SynthNode = {
    type: 'dir',
    children: {
      big: { type: 'dir', children: kids },
      x: { type: 'file', data: Buffer.alloc(9000, 1), holes: [1], xattrs: { 'user.a': Buffer.from('b') } },
      l: { type: 'symlink', target: 'big/n1' },
      c: { type: 'chr', rdev: 5 },
      h: { type: 'hardlink', target: '/x' },
    },
  };
  const v6 = buildV6(tree, { chunkSize: 4096, prefetch: ['/x', '/big'] });
  fuzzImage('synth-v6', v6.bootstrap, { blob: v6.blob.blob });
  const v6i = buildV6(tree, { chunkSize: 4096, inlinedChunkDigest: true, ciV2: true });
  fuzzImage('synth-v6-inline', v6i.bootstrap, { blob: v6i.blob.blob, provide: true });
  const v5 = buildV5(tree, { chunkSize: 4096, prefetch: ['/x'] });
  fuzzImage('synth-v5', v5.bootstrap, { blob: v5.blob.blob });
});

test('fuzz: random bytes behind a valid magic', { timeout: 300_000 }, () => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 0, maxLength: 20000 }), fc.constantFrom('v5', 'v6', 'none'), (bytes, magic) => {
      const buf = Buffer.from(bytes);
      if (magic === 'v5' && buf.length >= 8) buf.writeUInt32LE(0x52414653, 0);
      if (magic === 'v6' && buf.length >= 1028) buf.writeUInt32LE(0xe0f5e1e2, 1024);
      tolerate(() => exercise(openBootstrapBuffer(buf, 'random')));
    }),
    { numRuns: kRuns * 2 },
  );
});
