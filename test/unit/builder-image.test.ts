import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';

import { blake3, decompress, setXattr } from '../../src/native/index.js';
import { createImage, defaultBuildOptions, kInlineMetaBlobId, type BuildOptions } from '../../src/rafs/builder/index.js';
import { patternBytes } from '../helpers/rich-tree.js';
import { V6Peek } from '../helpers/v6-peek.js';

const work = mkdtempSync(join(tmpdir(), 'builder-image-'));
after(() => rmSync(work, { recursive: true, force: true }));
let seq = 0;

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

function smallTree(): string {
  const src = join(work, `src-${seq++}`);
  mkdirSync(join(src, 'dir', 'sub'), { recursive: true });
  writeFileSync(join(src, 'dir', 'a'), 'alpha');
  writeFileSync(join(src, 'multi'), patternBytes(0x1000 * 3 + 10, 9));
  writeFileSync(join(src, 'dup1'), patternBytes(0x1800, 4));
  writeFileSync(join(src, 'dup2'), patternBytes(0x1800, 4));
  writeFileSync(join(src, 'zeros'), Buffer.alloc(0x1000 * 4));
  // sha512 chain: incompressible, but deterministic.
  const rnd: Buffer[] = [];
  for (let i = 0; i < 16; i++) rnd.push(createHash('sha512').update(String(i)).digest());
  writeFileSync(join(src, 'random'), Buffer.concat(rnd));
  symlinkSync('p'.repeat(4095), join(src, 'longlink'));
  symlinkSync('dir/a', join(src, 'shortlink'));
  mkdirSync(join(src, 'xdir'));
  setXattr(Buffer.from(join(src, 'xdir')), Buffer.from('user.big'), patternBytes(4000, 1));
  return src;
}

type Overrides = { [K in keyof BuildOptions]?: BuildOptions[K] | undefined };

async function build(src: string, o: Overrides = {}): Promise<{ out: string; boot: Buffer; blob: Buffer | undefined; opts: BuildOptions; result: Awaited<ReturnType<typeof createImage>> }> {
  const out = join(work, `out-${seq++}`);
  mkdirSync(out);
  const opts = { ...defaultBuildOptions(src), chunkSize: 0x1000, blobDir: out, bootstrapPath: join(out, 'boot'), ...o } as BuildOptions;
  for (const k of Object.keys(opts) as (keyof BuildOptions)[]) if (opts[k] === undefined) delete opts[k];
  const result = await createImage(opts);
  const boot = result.bootstrapPath ? readFileSync(result.bootstrapPath) : Buffer.alloc(0);
  const blob = result.blobPath ? readFileSync(result.blobPath) : undefined;
  return { out, boot, blob, opts, result };
}

test('v6: superblock, device slot, blob table and flags', async () => {
  const { boot, blob, result } = await build(smallTree());
  const p = new V6Peek(boot);
  assert.equal(p.rootNid, 128);
  assert.equal(p.inos, result.entries);
  assert.equal(p.extraDevices, 1);
  assert.equal(boot.length % 4096, 0);
  const dev = p.device(0);
  const b = p.blob(0);
  assert.equal(dev.id, sha256(blob!), 'blob id is the sha256 of the blob file');
  assert.equal(b['id'], dev.id);
  assert.equal(dev.mappedBlkaddr % 128, 0, 'devices are mapped on 512 KiB boundaries');
  assert.ok(dev.mappedBlkaddr * 4096 >= boot.length);
  assert.equal(dev.blocks * 4096, b['uncompressedSize']);
  assert.equal(p.blocks, dev.blocks);
  assert.equal(b['compressedSize'], blob!.length);
  assert.equal(b['chunkSize'], 0x1000);
  assert.equal(b['compressor'], 3);
  assert.equal(b['features'], 0x4000_0001, 'CAP_TAR_TOC | ALIGNED without --features blob-toc');
  // zstd | blake3 | explicit uid/gid | has xattr | encryption none
  assert.equal(p.flags, 0x80 | 0x4 | 0x10 | 0x20 | 0x0100_0000);
  // Blob meta: CI right after the chunk data, header after it, no tar headers.
  assert.equal(b['ciOffset'], blob!.length - 4096 - (b['ciCompressedSize'] as number));
  assert.equal(blob!.readUInt32LE(blob!.length - 4096), 0xb10bb10b);
  assert.equal(blob!.readUInt32LE(blob!.length - 4), 0xb10bb10b);
  assert.equal(b['ciUncompressedSize'], 16 * result.chunkCount);
});

test('v6: chunks are deduplicated, aligned, and incompressible data is stored raw', async () => {
  const { boot, blob } = await build(smallTree());
  const p = new V6Peek(boot);
  const d1 = p.chunks(p.lookup('dup1'));
  assert.deepEqual(p.chunks(p.lookup('dup2')), d1);
  const zeros = p.chunks(p.lookup('zeros'));
  assert.equal(new Set(zeros.map((c) => c.ciIndex)).size, 1, 'identical chunks share one copy');
  const b = p.blob(0);
  const ci = decompress(3, blob!.subarray(b['ciOffset'] as number, (b['ciOffset'] as number) + (b['ciCompressedSize'] as number)), b['ciUncompressedSize'] as number);
  for (let i = 0; i < ci.length / 16; i++) {
    const uoff = Number(ci.readBigUInt64LE(i * 16) & 0x0fff_ffff_f000n);
    assert.equal(uoff % 4096, 0);
  }
  const rnd = p.chunks(p.lookup('random'))[0]!;
  const comp = ci.readBigUInt64LE(rnd.ciIndex * 16 + 8);
  const uncomp = ci.readBigUInt64LE(rnd.ciIndex * 16);
  assert.equal(comp >> 44n, uncomp >> 44n, 'random data: compressed size == uncompressed size (stored raw)');
  // A contiguous multi-chunk file advertises one chunk of next_power_of_two(size).
  const multi = p.lookup('multi');
  assert.equal(multi.u, 0x20 | 2, '3 chunks + 10 bytes -> 16 KiB chunk = 4 KiB << 2');
  assert.equal(p.chunks(multi).length, 4);
  assert.equal(p.lookup('dir/a').u, 0x20 | 0);
});

test('v6: inline tails vs whole blocks for directories and symlinks', async () => {
  const { boot } = await build(smallTree());
  const p = new V6Peek(boot);
  assert.equal(p.lookup('dir').layout, 2, 'small directory: FLAT_INLINE');
  assert.equal(p.lookup('shortlink').layout, 2);
  const long = p.lookup('longlink');
  assert.equal(long.layout, 0, '4095-byte target does not fit next to the inode: FLAT_PLAIN');
  assert.equal(p.data(long).toString(), 'p'.repeat(4095));
  assert.equal(p.lookup('xdir').layout, 0, 'a 4000-byte xattr leaves no room for the dirents');
  const names = p.readDir(p.inode(p.rootNid)).map((d) => d.name.toString());
  assert.deepEqual(names, [...names].sort());
  assert.ok(names.includes('.') && names.includes('..'));
  assert.equal(p.lookup('dir').nlink, 3);
  assert.equal(p.inode(p.rootNid).mtime, 0, 'root mtime is zeroed for repeatable builds');
});

test('v6 --features blob-toc: tar headers, chunk digests, TOC and INLINED_CHUNK_DIGEST', async () => {
  const { boot, blob } = await build(smallTree(), { blobToc: true, digester: 'sha256' });
  const p = new V6Peek(boot);
  const b = p.blob(0);
  assert.equal(b['features'], 0x7000_0021);
  assert.equal(p.flags & 0x100, 0x100);
  assert.equal(p.flags & 0x8, 0x8, 'sha256');
  const tail = blob!.subarray(blob!.length - 512);
  assert.equal(tail.subarray(0, 13).toString(), 'rafs.blob.toc');
  assert.equal(b['tocSize'], 4 * 128 + 512);
  const toc = blob!.subarray(blob!.length - b['tocSize']);
  assert.deepEqual(b['tocDigest'], createHash('sha256').update(toc).digest());
  const names = [0, 1, 2, 3].map((i) => toc.subarray(i * 128 + 8, i * 128 + 24).toString().replace(/\0+$/, ''));
  assert.deepEqual(names, ['image.blob', 'blob.meta', 'blob.meta.header', 'blob.digest']);
  const dg = toc.subarray(3 * 128);
  const off = Number(dg.readBigUInt64LE(56));
  const size = Number(dg.readBigUInt64LE(64));
  const digests = blob!.subarray(off, off + size);
  assert.equal(size, 32 * (b['chunkCount'] as number));
  assert.deepEqual(dg.subarray(24, 56), createHash('sha256').update(digests).digest());
  // The first chunk's digest is sha256 of its data (zeros chunk or not, it must verify).
  const ciEnd = (b['ciOffset'] as number) + (b['ciCompressedSize'] as number);
  assert.equal(blob!.subarray(ciEnd + 4096, ciEnd + 4096 + 9).toString(), 'blob.meta');
});

test('--blob-inline-meta: the bootstrap travels in the blob, named by its own sha256', async () => {
  const src = smallTree();
  const { out, result, blob } = await build(src, { blobInlineMeta: true, blobToc: true, bootstrapPath: undefined });
  assert.equal(result.bootstrapPath, undefined);
  assert.deepEqual(readdirSync(out), [sha256(blob!)]);
  const toc = blob!.subarray(blob!.length - 512 - 5 * 128, blob!.length - 512);
  const boot = toc.subarray(4 * 128);
  assert.equal(boot.subarray(8, 18).toString(), 'image.boot');
  assert.equal(boot.readUInt32LE(0), 0x2, 'zstd');
  const off = Number(boot.readBigUInt64LE(56));
  const inner = decompress(3, blob!.subarray(off, off + Number(boot.readBigUInt64LE(64))), Number(boot.readBigUInt64LE(72)));
  assert.deepEqual(boot.subarray(24, 56), createHash('sha256').update(inner).digest());
  const p = new V6Peek(inner);
  assert.equal(p.blob(0)['id'], kInlineMetaBlobId);
  assert.equal(p.blob(0)['compressedSize'], off, 'blob size recorded before the bootstrap was appended');
  assert.equal(p.blob(0)['features'], 0x7000_0023);
  assert.equal(p.lookup('dir/a').size, 5);
});

test('v5: superblock, tables and records', async () => {
  const src = smallTree();
  writeFileSync(join(src, 'hard'), 'hl');
  execFileSync('ln', [join(src, 'hard'), join(src, 'dir', 'hard2')]);
  const { boot, blob, result } = await build(src, { fsVersion: 5, digester: 'blake3', compressor: 'lz4_block' });
  assert.equal(boot.readUInt32LE(0), 0x52414653);
  assert.equal(boot.readUInt32LE(4), 0x500);
  assert.equal(boot.readUInt32LE(12), 0x1000);
  assert.equal(Number(boot.readBigUInt64LE(16)), 0x2 | 0x4 | 0x10 | 0x20);
  const entries = boot.readUInt32LE(56);
  assert.equal(entries, result.entries);
  assert.equal(Number(boot.readBigUInt64LE(24)), entries - 1, 'the hardlink adds a name, not an inode');
  const btOff = Number(boot.readBigUInt64LE(48));
  assert.equal(boot.subarray(btOff + 8, btOff + 72).toString(), sha256(blob!));
  const ext = Number(boot.readBigUInt64LE(72));
  assert.equal(boot.readUInt32LE(ext), result.chunkCount);
  assert.equal(Number(boot.readBigUInt64LE(ext + 16)), blob!.length);
  const rec = (ino: number): Buffer => boot.subarray(boot.readUInt32LE(8192 + (ino - 1) * 4) * 8);
  const root = rec(1);
  assert.equal(root.readUInt16LE(100), 1);
  assert.equal(root.subarray(128, 129).toString(), '/');
  assert.equal(root.readUInt32LE(92), 2, 'root children start at inode 2');
  // Children of the root, sorted: dir, dup1, dup2, hard, longlink, multi, random, shortlink, xdir, zeros
  const hard = rec(5);
  assert.equal(hard.subarray(128, 132).toString(), 'hard');
  assert.equal(hard.readUInt32LE(88), 2, 'nlink');
  const file = rec(3);
  assert.equal(file.subarray(128, 132).toString(), 'dup1');
  const chunks = file.readUInt32LE(96);
  const h = [];
  for (let i = 0; i < chunks; i++) h.push(file.subarray(136 + i * 80, 136 + i * 80 + 32));
  assert.deepEqual(file.subarray(0, 32), blake3(Buffer.concat(h)), 'file digest = H(chunk digests)');
  assert.deepEqual(h[0], blake3(patternBytes(0x1800, 4).subarray(0, 0x1000)));
  // v5 chunks are not aligned: the second chunk of dup1 starts right after the first.
  assert.equal(Number(file.readBigUInt64LE(136 + 80 + 56)), Number(file.readBigUInt64LE(136 + 56)) + 0x1000);
});

test('builds are repeatable: same input, byte-identical bootstrap and blob', async () => {
  const src = smallTree();
  const variants: Overrides[] = [{}, { fsVersion: 5 }, { blobToc: true }, { blobInlineMeta: true, bootstrapPath: undefined }];
  for (const o of variants) {
    const a = await build(src, o);
    const b = await build(src, o);
    assert.deepEqual(a.boot, b.boot);
    assert.deepEqual(a.blob, b.blob);
  }
});

test('worker threads do not change the output', async () => {
  const src = smallTree();
  // 64 KiB chunks so most of them go through the workers.
  writeFileSync(join(src, 'big'), patternBytes(0x10000 * 6 + 5, 11));
  writeFileSync(join(src, 'big-dup'), patternBytes(0x10000 * 6 + 5, 11));
  const runs = await Promise.all([0, 1, 3].map((threads) => build(src, { chunkSize: 0x10000, threads })));
  for (const r of runs.slice(1)) {
    assert.deepEqual(r.boot, runs[0]!.boot);
    assert.deepEqual(r.blob, runs[0]!.blob);
  }
});

test('prefetch: v6 table holds nids, prefetched data comes first in the blob, v5 holds sorted inode numbers', async () => {
  const src = smallTree();
  const patterns = ['/zeros', '/dir', '/dir/a', '/missing', '/'].map((s) => Buffer.from(s));
  const { boot } = await build(src, { prefetchPolicy: 'fs', prefetchPatterns: patterns.slice(0, 4) });
  const p = new V6Peek(boot);
  assert.deepEqual(p.prefetchNids(), [p.lookup('zeros').nid, p.lookup('dir').nid]);
  assert.equal(p.chunks(p.lookup('zeros'))[0]!.ciIndex, 0, 'zeros is dumped first');
  assert.equal(p.chunks(p.lookup('dir/a'))[0]!.ciIndex, 1, 'then the files under /dir');
  const v5 = await build(src, { fsVersion: 5, prefetchPolicy: 'fs', prefetchPatterns: patterns.slice(0, 4) });
  const n = v5.boot.readUInt32LE(60);
  const off = Number(v5.boot.readBigUInt64LE(40));
  const inos = [...Array(n).keys()].map((i) => v5.boot.readUInt32LE(off + i * 4));
  assert.deepEqual(inos, [2, 10], 'dir (2) and zeros (10), sorted');
  await assert.rejects(build(src, { prefetchPolicy: 'fs', prefetchPatterns: [Buffer.from('relative/path')] }), /must be absolute/);
});

test('an empty tree gives a bootstrap without blobs', async () => {
  const src = join(work, `empty-${seq++}`);
  mkdirSync(src);
  const out = join(work, `out-${seq++}`);
  mkdirSync(out);
  const r = await createImage({ ...defaultBuildOptions(src), blobPath: join(out, 'blob'), bootstrapPath: join(out, 'boot') });
  assert.deepEqual(r.blobIds, []);
  assert.equal(statSync(join(out, 'blob')).size, 0);
  const p = new V6Peek(readFileSync(join(out, 'boot')));
  assert.equal(p.extraDevices, 0);
  assert.equal(p.blobTableSize, 0);
  assert.equal(p.metaBlkaddr, 0);
  assert.equal(p.rootNid, 128);
  assert.deepEqual(p.readDir(p.inode(128)).map((d) => d.name.toString()), ['.', '..']);
});

test('source problems are reported with the path', async () => {
  await assert.rejects(build(join(work, 'does-not-exist')), /cannot access source directory/);
  const f = join(work, `file-${seq++}`);
  writeFileSync(f, 'x');
  await assert.rejects(build(f), /is not a directory/);
  await assert.rejects(build(smallTree(), { chunkSize: 3000 }), /invalid chunk size/);
  await assert.rejects(build(smallTree(), { fsVersion: 5, blobToc: true }), /blob-toc requires --fs-version 6/);
});

test('whiteouts are dropped from single-layer images (oci and overlayfs specs)', async () => {
  const src = smallTree();
  writeFileSync(join(src, '.wh.gone'), '');
  writeFileSync(join(src, 'dir', '.wh..wh..opq'), '');
  const oci = new V6Peek((await build(src)).boot);
  const names = (p: V6Peek, dir: string): string[] => p.readDir(p.lookup(dir)).map((d) => d.name.toString());
  assert.ok(!names(oci, '/').includes('.wh.gone'));
  assert.ok(!names(oci, 'dir').includes('.wh..wh..opq'));
  const none = new V6Peek((await build(src, { whiteoutSpec: 'none' })).boot);
  assert.ok(names(none, '/').includes('.wh.gone'));
  if (process.getuid?.() === 0) {
    execFileSync('mknod', [join(src, 'overlay-whiteout'), 'c', '0', '0']);
    const ovl = new V6Peek((await build(src, { whiteoutSpec: 'overlayfs' })).boot);
    assert.ok(!names(ovl, '/').includes('overlay-whiteout'));
    assert.ok(names(ovl, '/').includes('.wh.gone'), 'overlayfs spec keeps .wh. names');
  }
});

test('--blob-id names the blob; v5 prefetch-policy blob records the readahead window', async () => {
  const src = smallTree();
  const { out, boot, result } = await build(src, { blobId: 'my-blob', bootstrapPath: undefined });
  assert.deepEqual(result.blobIds, ['my-blob']);
  assert.ok(readdirSync(out).includes('my-blob'));
  assert.equal(new V6Peek(boot).device(0).id, 'my-blob');
  const v5 = await build(src, { fsVersion: 5, prefetchPolicy: 'blob', prefetchPatterns: [Buffer.from('/multi')] });
  const bt = Number(v5.boot.readBigUInt64LE(48));
  assert.ok(v5.boot.readUInt32LE(bt + 4) > 0, 'readahead size covers the prefetched file');
  assert.equal(v5.boot.readUInt32LE(60), 0, 'no prefetch table with the blob policy');
});
