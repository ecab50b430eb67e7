// How a tar stream becomes a RAFS tree (upstream TarballBuilder semantics), read back through
// the RAFS reader: implicit parents, the "./" root entry, replaced entries, hardlinks, devices,
// PAX xattrs and mtimes, whiteouts, eStargz bookkeeping files, and the errors.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { after, test } from 'node:test';

import { createImage, defaultBuildOptions, type BuildOptions } from '../../src/rafs/builder/index.js';
import { openBootstrap } from '../../src/rafs/index.js';
import { tarArchive, tarEntry } from '../helpers/tar-write.js';
import { blobReader, snapshotImage, type TreeSnapshot } from '../helpers/tree.js';

const work = mkdtempSync(join(tmpdir(), 'builder-tar-'));
after(() => rmSync(work, { recursive: true, force: true }));
let seq = 0;

async function buildTar(tar: Buffer, o: Partial<BuildOptions> = {}): Promise<TreeSnapshot> {
  const dir = join(work, `case-${seq++}`);
  mkdirSync(dir);
  const path = join(dir, 'layer.tar');
  writeFileSync(path, tar);
  const out = join(dir, 'out');
  mkdirSync(out);
  const r = await createImage({ ...defaultBuildOptions(path), sourceType: 'tar', chunkSize: 0x1000, blobDir: out, bootstrapPath: join(out, 'boot'), ...o });
  const image = openBootstrap(r.bootstrapPath!, { blobDir: out });
  try {
    return snapshotImage(image, blobReader(out));
  } finally {
    image.close();
  }
}

test('implicit parents, the root entry, replacement and hardlinks', async () => {
  const s = await buildTar(
    tarArchive(
      tarEntry('./', { type: '5', mode: 0o750, uid: 5, gid: 6, mtime: 1000 }),
      tarEntry('a/b/c.txt', { data: 'first', mtime: 2000, uid: 7 }),
      tarEntry('a/b/c.txt', { data: 'second version', mtime: 3000, uid: 8 }),
      tarEntry('a/', { type: '5', mode: 0o700, mtime: 4000 }),
      tarEntry('link-to-c', { type: '1', linkname: 'a/b/c.txt', mode: 0o777, uid: 99 }),
      tarEntry('sym', { type: '2', linkname: 'a/b/c.txt' }),
      tarEntry('sym-hardlink', { type: '1', linkname: './sym' }),
      tarEntry('dev/null', { type: '3', devmajor: 1, devminor: 3, mode: 0o666 }),
      tarEntry('dev/sda1', { type: '4', devmajor: 8, devminor: 1 }),
      tarEntry('pipe', { type: '6' }),
    ),
  );
  assert.deepEqual(Object.keys(s).sort(), ['/', '/a', '/a/b', '/a/b/c.txt', '/dev', '/dev/null', '/dev/sda1', '/link-to-c', '/pipe', '/sym', '/sym-hardlink']);
  assert.deepEqual([s['/']!.perm, s['/']!.uid, s['/']!.gid, s['/']!.mtime], [0o750, 5, 6, '1000.000000000']);
  assert.deepEqual([s['/a']!.perm, s['/a']!.mtime, s['/a']!.nlink], [0o700, '4000.000000000', 3], 'a later entry updates an implicit directory');
  assert.deepEqual([s['/a/b']!.perm, s['/a/b']!.uid, s['/a/b']!.mtime], [0o755, 0, '0.000000000'], 'implicit parent: 0755, root-owned, mtime 0');
  const c = s['/a/b/c.txt']!;
  assert.deepEqual([c.size, c.uid, c.mtime, c.nlink, c.link], [14, 8, '3000.000000000', 2, '/a/b/c.txt'], 'the later entry wins');
  assert.deepEqual({ ...s['/link-to-c']!, link: undefined }, { ...c, link: undefined }, "a hardlink takes its target's metadata, not its header's");
  assert.equal(s['/sym-hardlink']!.type, 'symlink');
  assert.equal(s['/sym-hardlink']!.nlink, 1, 'hardlinks to non-regular files become copies');
  assert.equal(s['/dev/null']!.rdev, (1 << 8) | 3);
  assert.equal(s['/dev/sda1']!.type, 'blk');
  assert.equal(s['/pipe']!.type, 'fifo');
});

test('PAX: long binary names, nanosecond mtimes, xattrs (foreign namespaces dropped with a warning)', async () => {
  const name = Buffer.concat([Buffer.from('dir/'), Buffer.alloc(200, 0x61), Buffer.from([0xff])]);
  const warnings: string[] = [];
  const s = await buildTar(
    tarArchive(
      tarEntry('x', {
        data: 'payload',
        pax: [
          ['path', name],
          ['mtime', '1700000000.000000042'],
          ['SCHILY.xattr.user.bin', Buffer.from([0, 1, 0xff])],
          ['SCHILY.xattr.com.apple.quarantine', 'q'],
          ['LIBARCHIVE.xattr.user.bin', 'AAH/'],
        ],
      }),
    ),
    { onWarning: (m) => warnings.push(m) },
  );
  const key = Object.keys(s).find((k) => k.startsWith('b64:'))!;
  assert.deepEqual(Buffer.from(key.slice(4), 'base64'), Buffer.concat([Buffer.from('/'), name]));
  assert.equal(s[key]!.mtime, '1700000000.000000042');
  assert.deepEqual(s[key]!.xattrs, { 'user.bin': '0001ff' });
  assert.equal(warnings.length, 1);
  assert.match(warnings[0]!, /dropping extended attribute "com\.apple\.quarantine"/);
});

test('whiteouts and eStargz bookkeeping files are left out; gzip is detected', async () => {
  const tar = tarArchive(
    tarEntry('keep', { data: 'k' }),
    tarEntry('.wh.removed', {}),
    tarEntry('d/.wh..wh..opq', {}),
    tarEntry('stargz.index.json', { data: '{}' }),
    tarEntry('.prefetch.landmark', { data: 'x' }),
  );
  const s = await buildTar(gzipSync(tar));
  assert.deepEqual(Object.keys(s).sort(), ['/', '/d', '/keep']);
  const none = await buildTar(tar, { whiteoutSpec: 'none' });
  assert.ok(none['/.wh.removed'] && none['/d/.wh..wh..opq']);
});

test('bad archives are refused with the entry named', async () => {
  await assert.rejects(buildTar(tarArchive(tarEntry('../escape', { data: 'x' }))), /tar entry "..\/escape": path .* contains ".."/);
  await assert.rejects(buildTar(tarArchive(tarEntry('h', { type: '1', linkname: 'nowhere' }))), /hardlink target "nowhere" is not earlier in the archive/);
  await assert.rejects(buildTar(tarArchive(tarEntry('d/', { type: '5' }), tarEntry('h', { type: '1', linkname: 'd' }))), /hardlink target "d" is a directory/);
  await assert.rejects(buildTar(tarArchive(tarEntry('f', { data: 'x' }), tarEntry('f/g', { data: 'y' }))), /"f" is used as a directory but is not one/);
  await assert.rejects(buildTar(tarArchive(tarEntry('./', { type: '6' }))), /archive root must be a directory/);
  // An old-style directory (type 0 + trailing slash) with data: the data is skipped, not parsed.
  const s = await buildTar(tarArchive(tarEntry('olddir/', { type: '0', data: 'ignored' }), tarEntry('olddir/f', { data: 'f' })));
  assert.equal(s['/olddir']!.type, 'dir');
  assert.equal(s['/olddir/f']!.size, 1);
  await assert.rejects(buildTar(Buffer.from('not a tar archive, just some text padded out'.padEnd(600, '.'))), /checksum mismatch/);
});
