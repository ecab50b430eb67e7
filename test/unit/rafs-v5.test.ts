import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { posix } from 'node:path';
import { test } from 'node:test';

import { chunkDigest, DT_DIR, type InodeAttr, NydusErrorIs, openBootstrap, type RafsImage } from '../helpers/rafs-test-imports.js';
import { fixture, fixturesSkip } from '../helpers/paths.js';
import { oneBlob, readFileBytes, resolvePath } from '../helpers/rafs-read.js';

const kBlob = fixture('tests/texture/repeatable/blobs/7334a2594e133cf8ae364189c2276b090fc490c627bcc3fb1077f0419a538e00');
const kImages = [
  { name: 'sha256-nocompress-repeatable', digester: 'sha256' },
  { name: 'blake3-lz4_block-non_repeatable', digester: 'blake3' },
] as const;

interface ResultNode {
  type: string;
  name: string;
  target?: string;
  contents?: ResultNode[];
}

/** The .result file: a `tree -J` JSON array, then `md5sum` lines. */
function parseResult(path: string): { tree: ResultNode; report: { directories: number; files: number }; md5: Map<string, string> } {
  const lines = readFileSync(path, 'utf8').split('\n');
  const end = lines.indexOf(']');
  const json = JSON.parse(lines.slice(0, end + 1).join('\n')) as (ResultNode & { directories: number; files: number })[];
  const md5 = new Map<string, string>();
  for (const l of lines.slice(end + 1)) {
    const m = /^([0-9a-f]{32}) {2}(.+)$/.exec(l);
    if (m) md5.set(m[2] as string, m[1] as string);
  }
  return { tree: json[0] as ResultNode, report: json[1] as { directories: number; files: number }, md5 };
}

function treeOf(img: RafsImage, ref: number, name: string): ResultNode {
  const attr = img.getAttr(ref);
  const t = attr.mode & 0o170000;
  if (t === 0o120000) return { type: 'link', name, target: img.readLink(ref).toString(), contents: [] };
  if (t !== 0o040000) return { type: 'file', name };
  const contents: ResultNode[] = [];
  img.readDir(ref, 2, (e) => {
    contents.push(treeOf(img, e.ref, e.name.toString()));
    return true;
  });
  return { type: 'directory', name, contents };
}

function normalize(n: ResultNode): ResultNode {
  const out: ResultNode = { type: n.type, name: n.name };
  if (n.target !== undefined) out.target = n.target;
  if (n.contents) out.contents = n.contents.map(normalize).sort((a, b) => Buffer.compare(Buffer.from(a.name), Buffer.from(b.name)));
  return out;
}

for (const { name, digester } of kImages) {
  const boot = fixture('tests/texture/repeatable', name);

  test(`v5 ${name}: tree equals the .result listing`, { skip: fixturesSkip() }, () => {
    const img = openBootstrap(boot);
    const expected = parseResult(`${boot}.result`);
    assert.equal(img.super.version, 5);
    assert.deepEqual(normalize(treeOf(img, img.super.rootRef, '')), normalize(expected.tree));
    // tree(1) counts a symlink that resolves to a directory as a directory.
    let dirs = 0;
    let files = 0;
    img.walk((p, r, a) => {
      if (p === '/') return;
      const t = a.mode & 0o170000;
      const target = t === 0o120000 ? resolvePath(img, posix.resolve(posix.dirname(p), img.readLink(r).toString())) : undefined;
      if (t === 0o040000 || (target !== undefined && img.isDir(target))) dirs++;
      else files++;
    });
    assert.deepEqual({ directories: dirs, files }, { directories: expected.report.directories, files: expected.report.files });
  });

  test(`v5 ${name}: every file decodes from the blob, md5 matches, chunk digests verify (${digester})`, { skip: fixturesSkip() }, () => {
    const img = openBootstrap(boot);
    assert.equal(img.super.digester, digester);
    assert.equal(img.super.compressor, 'none');
    const blob = oneBlob(readFileSync(kBlob));
    const { md5 } = parseResult(`${boot}.result`);
    let checked = 0;
    let chunks = 0;
    img.walk((path, ref, attr) => {
      if ((attr.mode & 0o170000) !== 0o100000) return;
      const data = readFileBytes(img, ref, blob);
      assert.equal(data.length, attr.size);
      for (const c of img.chunks(ref)) {
        const part = data.subarray(c.fileOffset, c.fileOffset + c.uncompressedSize);
        assert.ok(chunkDigest(digester, part).equals(c.digest), `${path} chunk @${c.fileOffset}`);
        chunks++;
      }
      const want = md5.get(path);
      if (want !== undefined) {
        assert.equal(createHash('md5').update(data).digest('hex'), want, path);
        checked++;
      }
    });
    assert.equal(checked, md5.size);
    assert.ok(chunks >= 23);
  });

  test(`v5 ${name}: inode digests verify for every inode`, { skip: fixturesSkip() }, () => {
    const img = openBootstrap(boot);
    const h = (d: Buffer): Buffer => chunkDigest(digester, d);
    let n = 0;
    img.walk((path, ref, attr) => {
      const t = attr.mode & 0o170000;
      let want: Buffer;
      if (t === 0o100000) want = h(Buffer.concat(img.chunks(ref).map((c) => c.digest)));
      else if (t === 0o120000) want = h(img.readLink(ref));
      else {
        const kids: Buffer[] = [];
        img.readDir(ref, 2, (e) => {
          kids.push(img.inodeDigest(e.ref) as Buffer);
          return true;
        });
        want = h(Buffer.concat(kids));
      }
      assert.ok((img.inodeDigest(ref) as Buffer).equals(want), path);
      n++;
    });
    assert.equal(n, 54);
  });
}

test('v5 attributes: hardlinks share i_ino, implicit owner, pseudo dir sizes, symlinks', { skip: fixturesSkip() }, () => {
  const img = openBootstrap(fixture('tests/texture/repeatable/sha256-nocompress-repeatable'));
  assert.equal(img.super.inodeCount, 51);
  assert.equal(img.super.rootRef, 1);
  assert.equal(img.blobs.length, 1);
  assert.deepEqual({ ...img.blobs[0], tocDigest: undefined }, {
    index: 0,
    blobId: '7334a2594e133cf8ae364189c2276b090fc490c627bcc3fb1077f0419a538e00',
    chunkCount: 23,
    chunkSize: 0x100000,
    compressor: 'none',
    digester: 'sha256',
    features: 0,
    compressedSize: 3508766,
    uncompressedSize: 3508766,
    metaCiCompressor: 'none',
    metaCiOffset: 0,
    metaCiCompressedSize: 0,
    metaCiUncompressedSize: 0,
    tocSize: 0,
    tocDigest: undefined,
    readaheadOffset: 0,
    readaheadSize: 0,
  });
  const links = ['/hardlink-test/foo', '/hardlink-test/test.sh', '/normal-file-test/test.sh'].map((p) => resolvePath(img, p) as number);
  const attrs = links.map((r) => img.getAttr(r));
  assert.equal(new Set(links).size, 3, 'distinct records');
  for (const a of attrs) assert.deepEqual([a.ino, a.nlink, a.size, a.mode], [5, 3, 944, 0o100775]);
  const root: InodeAttr = img.getAttr(1);
  assert.deepEqual([root.uid, root.gid, root.implicitOwner], [0, 0, true]);
  img.walk((_p, ref, a) => {
    if ((a.mode & 0o170000) !== 0o040000) return;
    let sum = 0;
    img.readDir(ref, 2, (e) => ((sum += e.name.length + 8), true));
    assert.equal(a.size, sum === 0 ? 4096 : Math.ceil(sum / 4096) * 4096);
  });
  const sl = resolvePath(img, '/symlink-test/root-1') as number;
  assert.equal(img.readLink(sl).toString(), '/////////////////');
  assert.equal(img.getAttr(sl).mtimeSec, 1668232305);
  assert.deepEqual(img.prefetchRefs(), []);
  assert.deepEqual(img.listXattrs(1), []);
  assert.equal(img.getXattr(1, Buffer.from('user.x')), undefined);
  // A 2-chunk file: chunks at 0 and 1 MiB.
  const tar = resolvePath(img, '/normal-file-test/busybox/1f777dbdd68d1c4d554bc0d20e027bfef9ed2dfe2d8d5f029e958552a0e12475/layer.tar') as number;
  assert.deepEqual(img.chunks(tar).map((c) => [c.fileOffset, c.uncompressedSize, c.chunkIndex]), [[0, 1048576, 6], [1048576, 367104, 7]]);
});

test('v5 lookup, readDir offsets and type errors', { skip: fixturesSkip() }, () => {
  const img = openBootstrap(fixture('tests/texture/repeatable/sha256-nocompress-repeatable'));
  const all: [number, string][] = [];
  img.readDir(1, 0, (e) => (all.push([e.nextOffset, e.name.toString()]), true));
  assert.deepEqual(all.map((x) => x[1]), ['.', '..', 'hardlink-test', 'normal-file-test', 'symlink-test']);
  // Resuming from any entry's nextOffset yields exactly the rest.
  for (let i = 0; i < all.length; i++) {
    const rest: string[] = [];
    img.readDir(1, (all[i] as [number, string])[0], (e) => (rest.push(e.name.toString()), true));
    assert.deepEqual(rest, all.slice(i + 1).map((x) => x[1]));
  }
  let first: number | undefined;
  img.readDir(2, 0, (e) => {
    first = e.type;
    return false;
  });
  assert.equal(first, DT_DIR);
  img.walk((path, ref) => assert.equal(resolvePath(img, path), ref, path));
  assert.equal(img.lookup(1, Buffer.from('nope')), undefined);
  assert.equal(img.lookup(1, Buffer.from('..')), 1);
  assert.equal(img.lookup(2, Buffer.from('..')), 1);
  const file = resolvePath(img, '/hardlink-test/foo') as number;
  assert.throws(() => img.lookup(file, Buffer.from('x')), (e: unknown) => NydusErrorIs(e, 'ERR_RAFS_NOT_DIR'));
  assert.throws(() => img.readLink(file), (e: unknown) => NydusErrorIs(e, 'ERR_RAFS_WRONG_TYPE'));
  assert.throws(() => img.chunks(1), (e: unknown) => NydusErrorIs(e, 'ERR_RAFS_WRONG_TYPE'));
  assert.throws(() => img.getAttr(0), (e: unknown) => NydusErrorIs(e, 'ERR_RAFS_BAD_INODE'));
  assert.throws(() => img.getAttr(55), (e: unknown) => NydusErrorIs(e, 'ERR_RAFS_BAD_INODE'));
  img.close();
  assert.throws(() => img.getAttr(1), (e: unknown) => NydusErrorIs(e, 'ERR_RAFS_NOT_FOUND'));
});
