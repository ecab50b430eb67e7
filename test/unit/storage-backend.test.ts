import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';

import { BlobBackend, checkBlobId, LocalFsBackend, prepareCacheDir } from '../../src/storage/index.js';
import { MemoryBackend } from '../helpers/storage-fixtures.js';

const root = mkdtempSync(join(tmpdir(), 'nydus-localfs-'));
after(() => rmSync(root, { recursive: true, force: true }));
const dir = join(root, 'blobs');
const alt = join(root, 'alt');
mkdirSync(dir);
mkdirSync(alt);
writeFileSync(join(root, 'secret'), 'outside the blob dir');
writeFileSync(join(dir, 'b1'), Buffer.from('0123456789'));
writeFileSync(join(dir, 'empty'), '');
writeFileSync(join(alt, 'empty'), 'from alt');
writeFileSync(join(alt, 'only-alt'), 'alt only');

test('blob ids that are not plain file names are rejected before touching the file system', async () => {
  const raw = await LocalFsBackend.create({ dir, blob_file: '', alt_dirs: [] });
  const be = new BlobBackend(raw);
  for (const id of ['../secret', '..', '.', '/etc/passwd', 'a/b', 'x\0y', '', 'tab\there', 'a'.repeat(201)]) {
    await assert.rejects(be.read(id, 0, 1), { code: 'ERR_BAD_BLOB_ID' }, JSON.stringify(id));
    await assert.rejects(be.size(id), { code: 'ERR_BAD_BLOB_ID' });
    assert.throws(() => checkBlobId(id), { code: 'ERR_BAD_BLOB_ID', message: /^invalid blob id/ });
  }
  // The raw backend checks too (it is reachable without the wrapper).
  await assert.rejects(raw.tryRead('../secret', 0, 1), { code: 'ERR_BAD_BLOB_ID' });
  checkBlobId('be7d77eeb719f70884758d1aa800ed0fb09d701aaec469964e9d54325f0d5fef');
  checkBlobId('inline-meta.stem');
  await be.close();
});

test('localfs reads ranges by positional reads and reports the blob size', async () => {
  const be = new BlobBackend(await LocalFsBackend.create({ dir, blob_file: '', alt_dirs: [] }));
  assert.equal(await be.size('b1'), 10);
  assert.equal((await be.read('b1', 3, 4)).toString(), '3456');
  assert.equal((await be.read('b1', 0, 10)).toString(), '0123456789');
  assert.equal((await be.read('b1', 10, 0)).length, 0);
  await assert.rejects(be.read('b1', 8, 5), (e: Error & { code?: string }) => {
    assert.equal(e.code, 'ERR_BLOB_SHORT');
    assert.match(e.message, /^blob b1: range offset 8 length 5 is beyond the end of .*b1 \(size 10\)$/);
    return true;
  });
  await assert.rejects(be.read('b1', -1, 1), { code: 'ERR_BACKEND' });
  await assert.rejects(be.read('b1', 1.5, 1), { code: 'ERR_BACKEND' });
  const st = be.stats();
  assert.equal(st.readCount, 3);
  assert.equal(st.readBytes, 14);
  assert.equal(st.readErrors, 1);
  await be.close();
});

test('alt_dirs are searched when the primary file is missing or empty; blob_file serves every id', async () => {
  const be = new BlobBackend(await LocalFsBackend.create({ dir, blob_file: '', alt_dirs: [alt] }));
  assert.equal((await be.read('empty', 0, 8)).toString(), 'from alt');
  assert.equal((await be.read('only-alt', 0, 8)).toString(), 'alt only');
  await assert.rejects(be.read('nowhere', 0, 1), (e: Error & { code?: string }) => {
    assert.equal(e.code, 'ERR_BLOB_NOT_FOUND');
    assert.equal(e.message, `blob nowhere: not found (or empty) in ${dir}, ${alt}`);
    return true;
  });
  // A blob that appears later is found (failed opens are not cached).
  writeFileSync(join(dir, 'late'), 'late!');
  assert.equal((await be.read('late', 0, 5)).toString(), 'late!');
  await be.close();
  const single = new BlobBackend(await LocalFsBackend.create({ dir: '', blob_file: join(dir, 'b1'), alt_dirs: [] }));
  assert.equal((await single.read('any-id', 0, 2)).toString(), '01');
  await single.close();
});

test('a symlink inside the blob dir is followed (the directory is the admin\'s), ids still cannot escape', async () => {
  symlinkSync(join(dir, 'b1'), join(dir, 'link'));
  const be = new BlobBackend(await LocalFsBackend.create({ dir, blob_file: '', alt_dirs: [] }));
  assert.equal((await be.read('link', 0, 1)).toString(), '0');
  await be.close();
});

// Both ways: asynchronous (API mounts) and blocking (a daemon's start, CreateBackendOptions.startup).
for (const blocking of [false, true]) {
  test(`bad localfs configuration fails at construction with the key path (${blocking ? 'blocking' : 'async'})`, async () => {
    await assert.rejects(LocalFsBackend.create({ dir: join(root, 'missing'), blob_file: '', alt_dirs: [] }, 'device.backend.config', blocking), {
      code: 'ERR_CONFIG',
      message: `device.backend.config.dir ${join(root, 'missing')}: no such directory`,
    });
    await assert.rejects(LocalFsBackend.create({ dir: '', blob_file: dir, alt_dirs: [] }, undefined, blocking), { code: 'ERR_CONFIG', message: /blob_file .*: not a regular file/ });
    await assert.rejects(LocalFsBackend.create({ dir: '', blob_file: join(root, 'none'), alt_dirs: [] }, 'b', blocking), { code: 'ERR_CONFIG', message: /^b\.blob_file .*none: ENOENT$/ });
    assert.equal((await LocalFsBackend.create({ dir, blob_file: '', alt_dirs: [] }, undefined, blocking)).type, 'localfs');
  });
}

test('the wrapper retries retryable failures up to retry_limit, then fails', async () => {
  const raw = new MemoryBackend(new Map([['x', Buffer.from('hello')]]));
  const be = new BlobBackend(raw, { retryLimit: 2, timeoutMs: 0, retryDelayMs: 1 });
  raw.failNext = 2;
  assert.equal((await be.read('x', 0, 5)).toString(), 'hello');
  assert.equal(be.stats().retries, 2);
  raw.failNext = 3;
  await assert.rejects(be.read('x', 0, 5), { message: /injected failure/ });
  // Not retryable: no retry.
  const before = raw.reads.length;
  await assert.rejects(be.read('x', 0, 6), { code: 'ERR_BLOB_SHORT' });
  assert.equal(raw.reads.length - before, 1);
});

test('per-attempt timeouts and caller aborts', async () => {
  const raw = new MemoryBackend(new Map([['x', Buffer.from('hello')]]));
  raw.delayMs = 200;
  const be = new BlobBackend(raw, { retryLimit: 1, timeoutMs: 20, retryDelayMs: 0 });
  await assert.rejects(be.read('x', 0, 5), { code: 'ERR_BACKEND_TIMEOUT', message: 'blob x: backend request timed out after 20 ms' });
  assert.equal(raw.reads.length, 2, 'a timeout is retryable');
  const ac = new AbortController();
  const p = new BlobBackend(raw).read('x', 0, 5, ac.signal);
  ac.abort();
  await assert.rejects(p, { code: 'ERR_ABORTED' });
  await assert.rejects(new BlobBackend(raw).read('x', 0, 5, AbortSignal.abort()), { code: 'ERR_ABORTED' });
});

for (const blocking of [false, true]) {
  test(`cache directory: created when missing; a file or an unusable path is a config error naming the key (${blocking ? 'blocking' : 'async'})`, async () => {
    const made = join(root, blocking ? 'cache-b' : 'cache', 'deep');
    await prepareCacheDir(made, 'cache.filecache.work_dir', blocking);
    assert.ok(statSync(made).isDirectory());
    assert.deepEqual(readdirSync(made), [], 'the write probe is removed');
    await assert.rejects(prepareCacheDir(join(root, 'secret'), 'cache.filecache.work_dir', blocking), {
      code: 'ERR_CONFIG',
      message: /^cache\.filecache\.work_dir .*secret: (not a directory|cannot create the cache directory \(EEXIST\))$/,
    });
    await assert.rejects(prepareCacheDir(join(root, 'secret', 'sub'), 'device.cache.config.work_dir', blocking), {
      code: 'ERR_CONFIG',
      message: /^device\.cache\.config\.work_dir .*: cannot create the cache directory \(ENOTDIR\)$/,
    });
    await assert.rejects(prepareCacheDir('/proc/self/fdinfo', 'work_dir', blocking), { code: 'ERR_CONFIG', message: /not writable|cannot create/ });
  });
}
