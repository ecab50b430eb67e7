import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';

import { TarReader, parseNumber, parsePax, type TarEntry } from '../../src/rafs/builder/tar-reader.js';
import { fixture, fixturesSkip } from '../helpers/paths.js';
import { paxRecord, tarHeader as header, tarPad as pad } from '../helpers/tar-write.js';

async function* chunks(buf: Buffer, size = 700): AsyncGenerator<Buffer> {
  // Odd-sized pieces so headers and data straddle reads.
  for (let i = 0; i < buf.length; i += size) {
    await Promise.resolve();
    yield buf.subarray(i, i + size);
  }
}

async function readAll(buf: Buffer): Promise<{ entry: TarEntry; data: Buffer }[]> {
  const r = new TarReader(chunks(buf));
  const out: { entry: TarEntry; data: Buffer }[] = [];
  for (let e = await r.next(); e; e = await r.next()) out.push({ entry: e, data: e.type === 'file' ? await r.readData(e.size) : Buffer.alloc(0) });
  return out;
}

test('reads the upstream GNU tar fixture: dirs, files, hardlinks, dangling symlink', { skip: fixturesSkip() }, async () => {
  const all = await readAll(readFileSync(fixture('tests/texture/tar/all-entry-type.tar')));
  const list = all.map(({ entry: e }) => `${e.type} ${e.path.toString()}${e.linkname.length ? ` -> ${e.linkname.toString()}` : ''}`);
  assert.deepEqual(list, [
    'dir tar/',
    'dir tar/dir1/',
    'dir tar/dir1/dir3/',
    'file tar/dir1/dir3/hardlink1.txt',
    'link tar/dir1/dir3/xfile.txt -> tar/dir1/dir3/hardlink1.txt',
    'link tar/dir1/hardlink2.txt -> tar/dir1/dir3/hardlink1.txt',
    'dir tar/dir2/',
    'link tar/dir2/hardlink3.txt -> tar/dir1/dir3/hardlink1.txt',
    'symlink tar/dir2/symlink1.txt -> ../dir1/dir3/file1.txt',
  ]);
  assert.equal(all[3]!.data.length, 15);
  assert.equal(all[0]!.entry.mode, 0o755);
});

test('reads the macOS (bsdtar, PAX) fixture: long name, nanosecond mtimes, SCHILY xattrs', { skip: fixturesSkip() }, async () => {
  const all = await readAll(readFileSync(fixture('tests/texture/tar/all-entry-type-macos.tar')));
  const long = all.find((a) => a.entry.path.length > 100)!;
  assert.match(long.entry.path.toString(), /^tar\/dir1\/dir3\/this_is_really_a_very_long_name.*a\.txt$/);
  assert.equal(long.data.toString().length, 10);
  const hl = all.find((a) => a.entry.path.toString() === 'tar/dir1/hardlink2.txt')!.entry;
  assert.deepEqual([hl.mtimeSec, hl.mtimeNsec], [1665584430, 393557573]);
  assert.deepEqual(hl.pax.get('SCHILY.xattr.hardlink3'), Buffer.from('value'));
  assert.equal(all.filter((a) => a.entry.type === 'link').length, 3);
});

test('an empty stream has no entries', { skip: fixturesSkip() }, async () => {
  assert.deepEqual(await readAll(readFileSync(fixture('tests/texture/tar/empty.tar'))), []);
  assert.deepEqual(await readAll(Buffer.alloc(1024)), []);
});

test('PAX values stay bytes: non-UTF-8 path and binary xattr value; global headers apply', async () => {
  const path = Buffer.from([0x64, 0x69, 0x72, 0x2f, 0xff, 0xfe]);
  const pax = Buffer.concat([paxRecord('path', path), paxRecord('SCHILY.xattr.user.bin', Buffer.from([0, 0xff, 0x0a, 0])), paxRecord('mtime', Buffer.from('-10.25'))]);
  const global = paxRecord('uid', Buffer.from('4000000000'));
  const tar = Buffer.concat([
    header('pax_global_header', { type: 'g', size: global.length }),
    pad(global),
    header('PaxHeaders/x', { type: 'x', size: pax.length }),
    pad(pax),
    header('ignored-name', { size: 3 }),
    pad(Buffer.from('abc')),
    header('second'),
    Buffer.alloc(1024),
  ]);
  const all = await readAll(tar);
  assert.equal(all.length, 2);
  const e = all[0]!.entry;
  assert.deepEqual(e.path, path);
  assert.deepEqual(e.pax.get('SCHILY.xattr.user.bin'), Buffer.from([0, 0xff, 0x0a, 0]));
  assert.deepEqual([e.mtimeSec, e.mtimeNsec], [-11, 750000000]);
  assert.equal(e.uid, 4000000000);
  assert.equal(all[0]!.data.toString(), 'abc');
  assert.equal(all[1]!.entry.uid, 4000000000, 'global PAX records apply to later entries');
  assert.equal(all[1]!.entry.pax.get('path'), undefined, 'local PAX records do not');
});

test('base-256 numbers and GNU long names written by GNU tar', async () => {
  assert.equal(parseNumber(Buffer.from([0x80, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0]), 'size', 0), 2 ** 32);
  assert.equal(parseNumber(Buffer.from('0000644 \0'), 'mode', 0), 0o644);
  assert.throws(() => parseNumber(Buffer.from('12x'), 'mode', 7), /invalid mode "12x" at offset 7/);
  const dir = mkdtempSync(join(tmpdir(), 'tar-gnu-'));
  try {
    const long = 'n'.repeat(200);
    mkdirSync(join(dir, 'src', long), { recursive: true });
    writeFileSync(join(dir, 'src', long, 'f'), 'data');
    symlinkSync('t'.repeat(150), join(dir, 'src', 'l'));
    execFileSync('tar', ['--format=gnu', '-C', join(dir, 'src'), '-cf', join(dir, 'a.tar'), '.']);
    const all = await readAll(readFileSync(join(dir, 'a.tar')));
    const f = all.find((a) => a.entry.type === 'file')!;
    assert.equal(f.entry.path.toString(), `./${long}/f`);
    assert.equal(f.data.toString(), 'data');
    assert.equal(all.find((a) => a.entry.type === 'symlink')!.entry.linkname.toString(), 't'.repeat(150));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('corrupt or truncated archives fail with the offset', async () => {
  const good = Buffer.concat([header('a', { size: 10 }), pad(Buffer.from('0123456789'))]);
  const bad = Buffer.from(good);
  bad[0] = 0x62;
  await assert.rejects(readAll(bad), /checksum mismatch at offset 0/);
  await assert.rejects(readAll(good.subarray(0, 300)), /truncated header at offset 0/);
  await assert.rejects(readAll(good.subarray(0, 515)), /unexpected end of archive while reading file data/);
  const sparse = header('s', { type: 'S' });
  await assert.rejects(readAll(sparse), /GNU sparse .* not supported yet/);
  const huge = header('x', { type: 'x', size: 1 << 21 });
  await assert.rejects(readAll(huge), /extended header of 2097152 bytes at offset 0 is too large/);
  assert.throws(() => parsePax(Buffer.from('99 path=x\n'), 0), /malformed PAX record/);
});
