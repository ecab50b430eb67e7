/**
 * The FUSE session behind the real vhost-user backend, driven over a real Unix socket by the
 * frontend driver (nydus_vu_driver plays QEMU 7.2 and a Linux 6.1 virtio-fs guest with memfd
 * guest memory). The server is a separate process hosting a FuseSession with the in-memory test
 * tree; the driver's view must match the tree, including files served by the native READ fast
 * path (cache hits, lazily filled misses, zstd chunks), across ring restarts and after faults.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';

import type { ServerProcess } from '../helpers/fuse-server-process.js';
import { startFuseServer } from '../helpers/fuse-server-process.js';
import type { MemFs } from '../helpers/mem-fuse-fs.js';
import { createMemFs } from '../helpers/mem-fuse-fs.js';
import { projectRoot } from '../helpers/paths.js';

const run = promisify(execFile);
const driverPath = ['Release', 'Debug'].map((c) => join(projectRoot, 'build', c, 'nydus_vu_driver')).find((p) => existsSync(p));
const skip = driverPath === undefined ? 'nydus_vu_driver is not built (it comes with the vhost-user backend)' : false;

interface DriverEntry {
  path: string;
  type: string;
  mode: number;
  size: number;
  mtime: number;
  sha256?: string;
  target?: string;
}

describe('FUSE session over vhost-user, driven by nydus_vu_driver', { skip }, () => {
  let base = '';
  let server: ServerProcess | undefined;
  let mem: MemFs | undefined;
  let socket = '';
  const driver = async (...args: string[]): Promise<string> =>
    (await run(driverPath ?? 'nydus_vu_driver', ['--socket', socket, ...args], { maxBuffer: 64 << 20, encoding: 'latin1' })).stdout;

  before(async () => {
    base = await mkdtemp(join(tmpdir(), 'nydus-fuse-virtio-'));
    await mkdir(join(base, 'server'));
    await mkdir(join(base, 'expected'));
    socket = join(base, 'vu.sock');
    server = await startFuseServer(['--tmp', join(base, 'server'), '--socket', socket]);
    // The same deterministic tree, built here only to know what the driver must see.
    mem = await createMemFs(join(base, 'expected'));
  });
  after(async () => {
    mem?.close();
    if (server !== undefined) {
      const code = await server.close();
      assert.deepEqual(code, { code: 0, signal: null }, server.stderr());
      assert.match(server.lines.join('\n'), /^CLOSED .*"reason":"stopped"/m);
    }
    await rm(base, { recursive: true, force: true });
  });

  test('INIT negotiates what a read-only image server wants', async () => {
    const info = JSON.parse(await driver('info')) as { init: Record<string, unknown>; max_read: number };
    assert.equal(info.init['minor'], 38);
    assert.equal(info.init['max_pages'], 256);
    assert.equal(info.init['max_write'], 1 << 20);
    assert.equal(info.init['time_gran'], 1);
    // ASYNC_READ | DO_READDIRPLUS | READDIRPLUS_AUTO | PARALLEL_DIROPS | MAX_PAGES | CACHE_SYMLINKS | INIT_EXT
    assert.equal(info.init['flags'], '0x40c46001');
  });

  test('the tree, attributes, symlink targets and every byte match', async () => {
    const tree = JSON.parse(await driver('tree', '/')) as { entries: DriverEntry[] };
    const byPath = new Map(tree.entries.map((e) => [e.path, e]));
    for (const e of mem?.expected ?? []) {
      const got = byPath.get(`/${e.path}`);
      assert.ok(got, `missing /${e.path}`);
      assert.equal(got.type, e.type, e.path);
      assert.equal(got.mode & 0o7777, e.mode, e.path);
      assert.equal(got.size, e.size, e.path);
      assert.equal(got.mtime, e.mtime, e.path);
      if (e.sha256 !== undefined) assert.equal(got.sha256, e.sha256, e.path);
      if (e.target !== undefined) assert.equal(got.target, e.target, e.path);
    }
    assert.equal(tree.entries.length, mem?.expected.length);
  });

  test('ring restarts (guest reboot: INIT on a live session) keep serving', async () => {
    const r = JSON.parse(await driver('reboot-cycle', '--cycles', '3')) as { cycles: { ok: boolean; init_minor: number }[] };
    assert.equal(r.cycles.length, 3);
    for (const c of r.cycles) assert.deepEqual([c.ok, c.init_minor], [true, 38]);
    assert.equal((await driver('cat', '/dir/nested.txt')), 'nested file\n');
  });

  test('malformed FUSE requests get errors and the server keeps serving', async () => {
    const expect: Record<string, [string, number]> = {
      'unknown-opcode': ['reply-error', -38],
      'truncated-fuse': ['reply-error', -22],
      'short-fuse-header': ['reply-error', -22],
      'no-reply-space': ['empty-completion', 0],
    };
    for (const [kind, [reaction, errno]] of Object.entries(expect)) {
      const f = JSON.parse(await driver('fault', kind)) as Record<string, unknown>;
      assert.equal(f['reaction'], reaction, kind);
      assert.equal(f['reply_error'], errno, kind);
      assert.equal(f['server_alive_at_end'], true, kind);
      assert.equal(f['fresh_connection_ok'], true, kind);
    }
    const stat = JSON.parse(await driver('stat', '/link')) as DriverEntry;
    assert.equal(stat.type, 'symlink');
  });

  test('sequential reads through the fast path and the JS path both complete', async () => {
    for (const path of ['/cached.bin', '/big.bin', '/packed.bin']) {
      const b = JSON.parse(await driver('bench', 'read', '--path', path, '--size', '128K', '--qd', '8', '--seconds', '1')) as Record<string, number>;
      assert.equal(b['errors'], 0, path);
      assert.ok((b['ops'] ?? 0) > 0, path);
      assert.equal(b['used_len_mismatches'], 0, path);
    }
  });
});
