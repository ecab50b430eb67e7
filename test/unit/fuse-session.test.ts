/**
 * FuseSession through its in-memory loopback transport: real FUSE request bytes in, real reply
 * bytes out, with an in-test filesystem handler. Covers batching, the exactly-once rules (throws,
 * garbage, late answers, stop with requests pending), xattr probing, readdir(plus) and forgets.
 * (The record layouts are checked in native-abi.test.ts.)
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { constants, tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';

import type { FuseAttr, FuseFilesystem, FuseForget, FuseLogger } from '../../src/fuse/index.js';
import { FuseErrno, FuseExtentTable, FuseSession, fuseErrno } from '../../src/fuse/index.js';
import * as W from '../helpers/fuse-wire.js';

const E = constants.errno;

function attr(ino: number, mode: number, size = 0): FuseAttr {
  return { ino, mode, nlink: 1, uid: 0, gid: 0, size, atime: 1700000000, mtime: 1700000001, mtimeNsec: 5, ctime: 1700000002 };
}

function capture(): FuseLogger & { errors: string[] } {
  const errors: string[] = [];
  return { errors, error: (m) => errors.push(m), warn: (m) => errors.push(m) };
}

async function started(handler: FuseFilesystem, logger = capture()): Promise<{ s: FuseSession; log: typeof logger }> {
  const s = new FuseSession(handler, { logger, entryTimeout: 2.5, attrTimeout: 3 });
  s.attachLoopback();
  const init = W.parseReply(await s.inject(W.initRequest(), 80));
  assert.equal(init.error, 0);
  return { s, log: logger };
}

test('INIT, init notification, and requests before INIT', async () => {
  const inits: unknown[] = [];
  const s = new FuseSession({ init: (i) => inits.push(i), lookup: () => fuseErrno('ENOENT') }, { logger: capture() });
  s.attachLoopback();
  const early = W.parseReply(await s.inject(W.request(W.kOp.LOOKUP, 1, W.nameBody('x')), 256));
  assert.equal(early.error, -E.EIO);
  const init = W.parseReply(await s.inject(W.initRequest(), 80));
  assert.equal(init.len, 80);
  assert.equal(init.payload.readUInt32LE(4), 38);
  assert.deepEqual(inits, [{ minor: 38, kernelMinor: 38, reinit: false, transport: 'virtio' }]);
  // No readdirplus handler: DO_READDIRPLUS (bit 13) is not negotiated.
  assert.equal(init.payload.readUInt32LE(12) & (1 << 13), 0);
  s.stop();
});

test('lookups cross in batches and get entries with the session default timeouts', async () => {
  const seen: string[] = [];
  const { s } = await started({
    lookup(ctx, parent, name) {
      seen.push(`${String(parent)}/${name.toString()}/${String(ctx.pid)}`);
      if (name.toString() === 'missing') return fuseErrno('ENOENT');
      return { nodeid: 10 + seen.length, generation: 3, attr: attr(10 + seen.length, 0o100644, 99) };
    },
  });
  const replies = await Promise.all(
    Array.from({ length: 50 }, (_, i) => s.inject(W.request(W.kOp.LOOKUP, 1, W.nameBody(i === 7 ? 'missing' : `f${String(i)}`)), 16 + 128)),
  );
  assert.equal(seen.length, 50);
  assert.equal(seen[0], '1/f0/4242');
  const stats = s.stats();
  assert.ok((stats['jsBatches']) < 50, `50 requests took ${String(stats['jsBatches'])} batches`);
  const ok = W.parseReply(replies[0] as Buffer);
  assert.equal(ok.error, 0);
  assert.equal(ok.len, 144);
  const e = W.parseEntry(ok.payload);
  assert.equal(e.generation, 3);
  assert.equal(e.entryValid, 2);
  assert.equal(e.entryValidNsec, 500_000_000);
  assert.equal(e.attr.mode, 0o100644);
  assert.equal(e.attr.size, 99);
  assert.equal(e.attr.blocks, 1);
  assert.equal(e.attr.mtimensec, 5);
  assert.equal(W.parseReply(replies[7] as Buffer).error, -E.ENOENT);
  s.stop();
});

test('every request is answered exactly once, whatever the handler does', async () => {
  const log = capture();
  let calls = 0;
  const { s } = await started(
    {
      getattr(_ctx, nodeid) {
        calls++;
        switch (nodeid) {
          case 2: throw new Error('boom');                       // internal failure -> EIO, logged
          case 3: throw fuseErrno('EACCES');                     // expected errno, not logged
          case 4: return Promise.reject(Object.assign(new Error('x'), { code: 'ENOTDIR' }));
          case 5: return 'garbage' as never;                     // wrong shape -> EIO, logged
          case 6: return { attr: attr(6, 0o644 /* no file type */) }; // invalid mode -> EIO
          case 7: return new FuseErrno(E.ESTALE);
          default: return Promise.resolve({ attr: attr(nodeid, 0o40755) });
        }
      },
    },
    log,
  );
  const ask = async (n: number): Promise<number> => W.parseReply(await s.inject(W.request(W.kOp.GETATTR, n, W.getattrIn()), 16 + 104)).error;
  assert.equal(await ask(2), -E.EIO);
  assert.equal(await ask(3), -E.EACCES);
  assert.equal(await ask(4), -E.ENOTDIR);
  assert.equal(await ask(5), -E.EIO);
  assert.equal(await ask(6), -E.EIO);
  assert.equal(await ask(7), -E.ESTALE);
  assert.equal(await ask(8), 0);
  assert.equal(calls, 7);
  assert.equal(log.errors.length, 3, log.errors.join('\n'));
  assert.match(log.errors[0] ?? '', /GETATTR handler failed: Error: boom/);
  assert.match(log.errors[1] ?? '', /invalid GETATTR reply/);
  const st = s.stats();
  assert.equal(st['garbageReplies'], 1);
  assert.equal(st['pendingNow'], 0);
  s.stop();
});

test('stop completes requests a hung handler never answers; late answers are dropped', async () => {
  let release: ((v: { attr: FuseAttr }) => void) | undefined;
  const { s } = await started({
    getattr: () => new Promise((resolve) => (release = resolve)),
    statfs: () => new Promise(() => undefined),
  });
  const a = s.inject(W.request(W.kOp.GETATTR, 5, W.getattrIn()), 256);
  const b = s.inject(W.request(W.kOp.STATFS, 1), 256);
  await new Promise((r) => setImmediate(r));
  assert.equal(s.stats()['pendingNow'], 2);
  s.stop();
  assert.equal(W.parseReply(await a).error, -E.EIO);
  assert.equal(W.parseReply(await b).error, -E.EIO);
  assert.deepEqual(await s.closed, { reason: 'stopped', errno: 0 });
  release?.({ attr: attr(5, 0o100644) });
  await new Promise((r) => setImmediate(r));
  assert.equal(s.stats()['staleReplies'], 1);
  assert.throws(() => s.inject(W.request(W.kOp.STATFS, 1), 256), (e: unknown) => (e as { code?: string }).code === 'ERR_FUSE_STOPPED');
  s.stop(); // idempotent
});

test('xattrs: the session answers size probes and ERANGE from the whole value', async () => {
  const { s } = await started({
    getxattr: (_c, _n, name) => (name.toString() === 'user.k' ? 'value-123' : fuseErrno('ENODATA')),
    listxattr: () => ['user.k', Buffer.from('trusted.x')],
  });
  const get = async (size: number, name = 'user.k'): Promise<W.Reply> =>
    W.parseReply(await s.inject(W.request(W.kOp.GETXATTR, 2, W.nameBody(name, W.getxattrIn(size))), 16 + Math.max(size, 8)));
  const probe = await get(0);
  assert.equal(probe.payload.readUInt32LE(0), 9);
  assert.equal((await get(4)).error, -E.ERANGE);
  assert.equal((await get(64)).payload.toString(), 'value-123');
  assert.equal((await get(64, 'user.none')).error, -E.ENODATA);
  const list = W.parseReply(await s.inject(W.request(W.kOp.LISTXATTR, 2, W.getxattrIn(100)), 116));
  assert.equal(list.payload.toString('latin1'), 'user.k\0trusted.x\0');
  const listProbe = W.parseReply(await s.inject(W.request(W.kOp.LISTXATTR, 2, W.getxattrIn(0)), 24));
  assert.equal(listProbe.payload.readUInt32LE(0), 17);
  s.stop();
});

test('readdir and readdirplus: records, cookies, and what did not fit', async () => {
  const names = Array.from({ length: 40 }, (_, i) => `entry-${String(i).padStart(3, '0')}`);
  let unsent: string[] = [];
  const { s } = await started({
    readdir: (_c, _n, _fh, offset) =>
      names.slice(offset).map((n, i) => ({ name: n, ino: 100 + offset + i, mode: 0o100644, offset: offset + i + 1 })),
    readdirplus: (_c, _n, _fh, offset) =>
      names.slice(offset).map((n, i) => ({ name: n, offset: offset + i + 1, entry: { nodeid: 100 + offset + i, attr: attr(100 + offset + i, 0o40755) } })),
    readdirplusUnsent: (_c, _n, rest) => (unsent = rest.map((e) => e.name.toString())),
  });
  const rd = W.parseReply(await s.inject(W.request(W.kOp.READDIR, 1, W.readIn(1, 0, 256)), 16 + 4096));
  const ents = W.parseDirents(rd.payload, false);
  // 24 + 9 name bytes -> 40 per record: 6 fit in 256.
  assert.equal(ents.length, 6);
  assert.deepEqual(ents[0], { ino: 100, off: 1, type: 8, name: 'entry-000' });
  const rd2 = W.parseReply(await s.inject(W.request(W.kOp.READDIR, 1, W.readIn(1, 38, 4096)), 16 + 4096));
  assert.deepEqual(W.parseDirents(rd2.payload, false).map((e) => e.name), ['entry-038', 'entry-039']);
  const end = W.parseReply(await s.inject(W.request(W.kOp.READDIR, 1, W.readIn(1, 40, 4096)), 16 + 4096));
  assert.equal(end.len, 16);
  // Plus: the writable space (340 bytes) is smaller than the requested size; 3 records of 168
  // bytes would need 504, so 2 are sent and the rest is reported unsent.
  const rp = W.parseReply(await s.inject(W.request(W.kOp.READDIRPLUS, 1, W.readIn(1, 0, 4096)), 16 + 340));
  const plus = W.parseDirents(rp.payload, true);
  assert.equal(plus.length, 2);
  assert.equal(plus[1]?.nodeid, 101);
  assert.equal(plus[1]?.type, 4);
  assert.equal(unsent.length, 38);
  assert.equal(unsent[0], 'entry-002');
  s.stop();
});

test('forgets arrive batched; open/release/statfs/lseek/readlink replies', async () => {
  const forgets: FuseForget[] = [];
  const { s } = await started({
    forget: (items) => forgets.push(...items),
    open: (_c, nodeid) => ({ fh: nodeid * 10, keepCache: true }),
    release: () => undefined,
    statfs: () => ({ blocks: 100, bfree: 0, bavail: 0, files: 7, ffree: 0, bsize: 4096, namelen: 255, frsize: 4096 }),
    lseek: (_c, _n, _fh, offset, whence) => (whence === 3 ? offset : fuseErrno('ENXIO')),
    readlink: () => 'target/of/link',
  });
  const none = await Promise.all([2, 3, 4].map((n) => s.inject(W.request(W.kOp.FORGET, n, W.forgetIn(n)), 0)));
  assert.deepEqual(none.map((b) => b.length), [0, 0, 0]);
  const open = W.parseReply(await s.inject(W.request(W.kOp.OPEN, 3, W.openIn()), 32));
  assert.equal(Number(open.payload.readBigUInt64LE(0)), 30);
  assert.equal(open.payload.readUInt32LE(8), 2); // FOPEN_KEEP_CACHE
  assert.equal(W.parseReply(await s.inject(W.request(W.kOp.OPEN, 3, W.openIn(2 /* O_RDWR */)), 32)).error, -E.EROFS);
  assert.equal(W.parseReply(await s.inject(W.request(W.kOp.RELEASE, 3, W.releaseIn(30)), 16)).len, 16);
  const st = W.parseReply(await s.inject(W.request(W.kOp.STATFS, 1), 96));
  assert.equal(Number(st.payload.readBigUInt64LE(0)), 100);
  assert.equal(st.payload.readUInt32LE(44), 255);
  const lseekBody = Buffer.alloc(24);
  lseekBody.writeBigUInt64LE(30n, 0);
  lseekBody.writeBigUInt64LE(4096n, 8);
  lseekBody.writeUInt32LE(3, 16);
  const ls = W.parseReply(await s.inject(W.request(W.kOp.LSEEK, 3, lseekBody), 24));
  assert.equal(Number(ls.payload.readBigUInt64LE(0)), 4096);
  const rl = W.parseReply(await s.inject(W.request(W.kOp.READLINK, 9), 16 + 4095));
  assert.equal(rl.payload.toString(), 'target/of/link');
  // A mutating op never reaches the handler; FLUSH without a handler is ENOSYS.
  assert.equal(W.parseReply(await s.inject(W.request(W.kOp.MKDIR, 1, Buffer.alloc(16)), 256)).error, -E.EROFS);
  assert.equal(W.parseReply(await s.inject(W.request(W.kOp.FLUSH, 3, Buffer.alloc(24)), 16)).error, -E.ENOSYS);
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(forgets, [{ nodeid: 2, nlookup: 2 }, { nodeid: 3, nlookup: 3 }, { nodeid: 4, nlookup: 4 }]);
  s.stop();
});

test('extent tables are validated before they cross', () => {
  const t = new FuseExtentTable(8192);
  t.add({ fileOffset: 0, length: 4096, blobSlot: 0, chunkIndex: 0, sourceOffset: 0, sourceSize: 4096 });
  assert.throws(() => t.add({ fileOffset: 100, length: 4096, blobSlot: 0, chunkIndex: 1, sourceOffset: 0, sourceSize: 4096 }), /previous extent/);
  assert.throws(() => t.add({ fileOffset: 4096, length: 8192, blobSlot: 0, chunkIndex: 1, sourceOffset: 0, sourceSize: 8192 }), /past fileSize/);
  assert.throws(() => t.add({ fileOffset: 4096, length: 4096, blobSlot: 0, chunkIndex: 1, sourceOffset: 0, sourceSize: 10 }), /sourceSize/);
  t.addHole(4096, 4096);
  assert.equal(t.count, 2);
  const s = new FuseSession({}, { logger: capture() });
  s.setExtents(7, t);
  assert.equal(s.stats()['extentTables'], 1);
  assert.equal(s.removeExtents(7), true);
  assert.throws(() => s.registerBlob(5000, { dataPath: '/x', chunkMap: null }), /slot/);
  assert.throws(
    () => s.registerBlob(1, { dataPath: '/nonexistent/blob', chunkMap: null }),
    (e: unknown) => (e as { code?: string }).code === 'ERR_FUSE_BLOB',
  );
  s.stop();
});

test('a flood of requests to an async handler is answered completely', async () => {
  const { s } = await started({
    getattr: async (_c, nodeid) => {
      await Promise.resolve();
      return { attr: attr(nodeid, 0o100644, nodeid) };
    },
  });
  const n = 3000; // more than 8 batches of 256: the bridge must yield and come back
  const replies = await Promise.all(Array.from({ length: n }, (_, i) => s.inject(W.request(W.kOp.GETATTR, i + 2, W.getattrIn()), 16 + 104)));
  for (let i = 0; i < n; i++) {
    const r = W.parseReply(replies[i] as Buffer);
    assert.equal(r.error, 0);
    assert.equal(W.parseAttr(r.payload, 16).size, i + 2);
  }
  assert.ok((s.stats()['jsBatches']) > 8);
  assert.equal(s.stats()['pendingNow'], 0);
  s.stop();
});

test('attachVirtio listens on a socket; one transport per session', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'nydus-fuse-vu-'));
  const s = new FuseSession({}, { logger: capture() });
  try {
    assert.throws(() => s.attachVirtio({}), /socketPath or listenFd/);
    assert.throws(() => s.attachVirtio({ socketPath: join(dir, 'x.sock'), maxQueueSize: 1000 }), /power of two/);
    const info = s.attachVirtio({ socketPath: join(dir, 'vu.sock') });
    assert.equal(info.socketPath, join(dir, 'vu.sock'));
    assert.ok((await stat(join(dir, 'vu.sock'))).isSocket());
    const t = s.stats()['transport'] as Record<string, unknown>;
    assert.equal(t['kind'], 'virtio');
    assert.equal(t['connected'], false);
    assert.throws(() => s.attachLoopback(), (e: unknown) => (e as { code?: string }).code === 'ERR_FUSE_TRANSPORT');
  } finally {
    s.stop();
    await rm(dir, { recursive: true, force: true });
  }
});
