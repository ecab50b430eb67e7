/**
 * FUSE mode on the host: a FuseSession mounted through /dev/fuse serving the in-memory test tree
 * (mem-fuse-fs.ts), checked with what the kernel shows to ordinary tools (ls, stat, cat,
 * sha256sum, readlink, xattrs via python3) — including files served by the native READ fast path
 * from a cache file, from a cache filled lazily on misses, and from zstd-compressed chunks.
 * Also: clean unmount on stop(), on SIGTERM of the serving process, on an external umount, and
 * with a handler that never answers. Needs root and /dev/fuse (skips otherwise).
 *
 * The serving session lives on this process's JS thread, so every access to the mount goes
 * through child processes or fs.promises (never a synchronous fs call, which would block the
 * thread the handler needs).
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readlink, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import { promisify } from 'node:util';

import { FuseSession } from '../../src/fuse/index.js';
import { createMemFs } from '../helpers/mem-fuse-fs.js';
import { projectRoot } from '../helpers/paths.js';

const run = promisify(execFile);
const skip = process.getuid?.() !== 0 ? 'needs root' : !existsSync('/dev/fuse') ? 'no /dev/fuse' : false;

async function isMounted(path: string): Promise<boolean> {
  const info = await readFile('/proc/self/mountinfo', 'utf8');
  return info.split('\n').some((l) => l.split(' ')[4] === path);
}

async function until(cond: () => boolean | Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 600; i++) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.fail(`timed out waiting for ${what}`);
}

async function scratch(): Promise<{ base: string; mnt: string; tmp: string }> {
  const base = await mkdtemp(join(tmpdir(), 'nydus-fusedev-'));
  const mnt = join(base, 'mnt');
  const tmp = join(base, 'tmp');
  await mkdir(mnt);
  await mkdir(tmp);
  return { base, mnt, tmp };
}

test('a mounted session shows the tree, xattrs and fast-path files to ordinary tools', { skip, timeout: 120_000 }, async () => {
  const { base, mnt, tmp } = await scratch();
  const mem = await createMemFs(tmp);
  const s = new FuseSession(mem.fs, { logger: { error: (m) => assert.fail(m), warn: (m) => assert.fail(m) } });
  mem.bind(s);
  try {
    const info = s.mount(mnt, { threads: 4 });
    assert.equal(info.viaFusermount, false);
    assert.equal(info.threads, 4);
    assert.ok(await isMounted(mnt));

    const ls = (await run('ls', ['-la', mnt])).stdout;
    for (const name of ['hello.txt', 'dir', 'big.bin', 'cached.bin', 'lazy.bin', 'packed.bin']) assert.match(ls, new RegExp(` ${name.replace('.', '\\.')}\n`));
    assert.match(ls, / link -> hello\.txt\n/);
    assert.match(ls, /^d.* \.\n/m);

    // Type, permissions, size, mtime of every node, as stat(1) reports them.
    for (const e of mem.expected) {
      const out = (await run('stat', ['-c', '%F|%a|%s|%Y|%u|%g', join(mnt, e.path)])).stdout.trim();
      const type = { dir: 'directory', file: e.size === 0 ? 'regular empty file' : 'regular file', symlink: 'symbolic link' }[e.type];
      assert.equal(out, `${type}|${e.mode.toString(8)}|${String(e.size)}|${String(e.mtime)}|0|0`, e.path);
    }
    assert.equal(await readlink(join(mnt, 'link')), 'hello.txt');
    assert.equal((await run('cat', [join(mnt, 'link')])).stdout, 'hello world\n');

    // Contents: sha256sum over every file (JS reads, native cache hits, lazy misses, packed).
    const files = mem.expected.filter((e) => e.type === 'file');
    const sums = (await run('sha256sum', files.map((e) => join(mnt, e.path)), { maxBuffer: 1 << 20 })).stdout;
    for (const e of files) assert.match(sums, new RegExp(`^${e.sha256 ?? ''}  ${join(mnt, e.path)}$`, 'm'), e.path);
    // Unaligned pread through the fast path (inside the hole chunk and across chunks).
    const py = `import os,hashlib,sys
fd=os.open(sys.argv[1],os.O_RDONLY|os.O_DIRECT if sys.argv[2]=='direct' else os.O_RDONLY)
print(hashlib.sha256(os.pread(fd,200000,123457)).hexdigest())`;
    for (const name of ['cached.bin', 'packed.bin']) {
      const want = createHash('sha256').update((mem.content(name) ?? Buffer.alloc(0)).subarray(123457, 123457 + 200000)).digest('hex');
      assert.equal((await run('python3', ['-c', py, join(mnt, name), 'buffered'])).stdout.trim(), want, name);
    }

    // xattrs through the kernel (size probe + value, list).
    const pyx = `import os,sys,json
p=sys.argv[1]
print(json.dumps({n: os.getxattr(p,n).decode() for n in sorted(os.listxattr(p))}))`;
    const xattrs = JSON.parse((await run('python3', ['-c', pyx, join(mnt, 'hello.txt')])).stdout) as Record<string, string>;
    assert.deepEqual(xattrs, { 'user.empty': '', 'user.greeting': 'hi' });
    const noattr = await run('python3', ['-c', 'import os,sys\ntry:\n os.getxattr(sys.argv[1],"user.none")\nexcept OSError as e:\n print(e.errno)', join(mnt, 'hello.txt')]);
    assert.equal(noattr.stdout.trim(), '61'); // ENODATA

    // Errors the kernel passes on: ENOENT, EROFS (read-only mount), statfs numbers.
    await assert.rejects(stat(join(mnt, 'nope')), { code: 'ENOENT' });
    await assert.rejects(writeFile(join(mnt, 'new.txt'), 'x'), { code: 'EROFS' });
    assert.equal((await run('stat', ['-f', '-c', '%b %S %l', mnt])).stdout.trim(), '1000 4096 255');

    const st = s.stats();
    assert.ok((st['fastReads']) > 0);
    assert.ok((st['bytesFromCache']) > 0);
    assert.ok((st['readMisses']) > 0);
    assert.equal(mem.counters.fills, 9); // every lazy chunk fetched exactly once
    assert.equal(st['garbageReplies'], 0);
    assert.equal(st['pendingNow'], 0);
    const transport = st['transport'] as Record<string, unknown>;
    assert.equal(transport['writeErrors'], 0);
  } finally {
    s.stop();
    mem.close();
  }
  assert.equal(await isMounted(mnt), false);
  assert.deepEqual(await s.closed, { reason: 'stopped', errno: 0 });
  await rm(base, { recursive: true, force: true });
});

test('mounting through fusermount3 serves and unmounts the same way', { skip, timeout: 60_000 }, async () => {
  const { base, mnt, tmp } = await scratch();
  const mem = await createMemFs(tmp);
  const s = new FuseSession(mem.fs, { logger: { error: (m) => assert.fail(m), warn: (m) => assert.fail(m) } });
  mem.bind(s);
  const info = s.mount(mnt, { threads: 2, method: 'fusermount' });
  assert.equal(info.viaFusermount, true);
  assert.ok(await isMounted(mnt));
  const sums = (await run('sha256sum', [join(mnt, 'packed.bin'), join(mnt, 'dir', 'nested.txt')])).stdout;
  for (const p of ['packed.bin', 'dir/nested.txt']) {
    assert.match(sums, new RegExp(`^${mem.expected.find((e) => e.path === p)?.sha256 ?? 'x'}  `, 'm'));
  }
  s.stop();
  assert.equal(await isMounted(mnt), false);
  mem.close();
  await rm(base, { recursive: true, force: true });
});

test('an external umount ends the session', { skip, timeout: 60_000 }, async () => {
  const { base, mnt, tmp } = await scratch();
  const mem = await createMemFs(tmp);
  const s = new FuseSession(mem.fs, { logger: { error: () => undefined, warn: () => undefined } });
  s.mount(mnt, { threads: 2 });
  assert.equal((await run('cat', [join(mnt, 'dir', 'nested.txt')])).stdout, 'nested file\n');
  await run('umount', [mnt]);
  const closed = await s.closed;
  assert.deepEqual(closed, { reason: 'unmounted', errno: 19 });
  assert.equal(s.stopped, true);
  assert.equal(await isMounted(mnt), false);
  mem.close();
  await rm(base, { recursive: true, force: true });
});

test('stop() unmounts while the handler never answers an OPEN', { skip, timeout: 60_000 }, async () => {
  const { base, mnt, tmp } = await scratch();
  const mem = await createMemFs(tmp);
  mem.hangOpenOf = 'hello.txt';
  const s = new FuseSession(mem.fs, { logger: { error: () => undefined, warn: () => undefined } });
  s.mount(mnt, { threads: 2 });
  const cat = spawn('cat', [join(mnt, 'hello.txt')], { stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<number | null>((resolve) => cat.on('exit', (code) => resolve(code)));
  await until(() => (s.stats()['pendingNow']) >= 1, 'the OPEN to reach the handler');
  s.stop();
  assert.notEqual(await exited, 0); // cat fails (connection aborted) instead of hanging
  assert.equal(await isMounted(mnt), false);
  mem.close();
  await rm(base, { recursive: true, force: true });
});

function startServer(tmp: string, mnt: string, extra: string[] = []): {
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  ready: Promise<string>;
  kill: (sig: NodeJS.Signals) => void;
} {
  const server = spawn(process.execPath, [join(projectRoot, 'dist', 'test', 'helpers', 'fuse-test-server.js'), '--tmp', tmp, '--mount', mnt, ...extra], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => server.on('exit', (code, signal) => resolve({ code, signal })));
  const ready = new Promise<string>((resolve, reject) => {
    createInterface({ input: server.stdout }).on('line', (l) => {
      if (l.startsWith('READY ')) resolve(l);
    });
    void exit.then(() => reject(new Error('server exited before READY')));
  });
  return { exit, ready, kill: (sig) => server.kill(sig) };
}

test('process.exit() of the serving process unmounts', { skip, timeout: 60_000 }, async () => {
  const { base, mnt, tmp } = await scratch();
  const server = startServer(tmp, mnt, ['--exit']);
  await server.ready.catch(() => undefined);
  assert.deepEqual(await server.exit, { code: 0, signal: null });
  assert.equal(await isMounted(mnt), false);
  await rm(base, { recursive: true, force: true });
});

test('SIGTERM to the serving process unmounts before it exits', { skip, timeout: 60_000 }, async () => {
  const { base, mnt, tmp } = await scratch();
  const server = startServer(tmp, mnt);
  const exit = server.exit;
  const ready = await server.ready;
  assert.match(ready, /"threads":4/);
  assert.ok(await isMounted(mnt));
  assert.equal((await run('cat', [join(mnt, 'hello.txt')])).stdout, 'hello world\n');
  server.kill('SIGTERM');
  const { signal } = await exit;
  assert.equal(signal, 'SIGTERM');
  assert.equal(await isMounted(mnt), false);
  await rm(base, { recursive: true, force: true });
});
