/**
 * The writable route of the FUSE session (FuseSession.setWritable; native/core/fuse/
 * session_writable.cc): mutating requests on nodes of a writable range reach the handler with
 * their arguments decoded, everywhere else they are answered EROFS without it; malformed
 * requests (short structs, unterminated or over-long names, WRITE/SETXATTR sizes beyond the
 * request) are answered with an errno before the handler sees anything, and the session keeps
 * serving. A writable node's LOOKUP answers are never remembered natively.
 */
import assert from 'node:assert/strict';
import { constants } from 'node:os';
import { test } from 'node:test';

import type { FuseAttr, FuseFilesystem, FuseSetattr } from '../../src/fuse/index.js';
import { FuseSession } from '../../src/fuse/index.js';
import * as W from '../helpers/fuse-wire.js';

const E = constants.errno;
const kOp = { ...W.kOp, SYMLINK: 6, MKNOD: 8, UNLINK: 10, RMDIR: 11, RENAME: 12, LINK: 13, SETXATTR: 21, REMOVEXATTR: 24, CREATE: 35, FALLOCATE: 43, RENAME2: 45 };

function attr(ino: number, mode = 0o100644, size = 0): FuseAttr {
  return { ino, mode, nlink: 1, uid: 0, gid: 0, size, atime: 1, mtime: 2, ctime: 3 };
}

function u32s(...v: number[]): Buffer {
  const b = Buffer.alloc(v.length * 4);
  v.forEach((x, i) => b.writeUInt32LE(x, i * 4));
  return b;
}

function u64(v: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(v));
  return b;
}

function writeIn(fh: number, offset: number, data: Buffer, size = data.length): Buffer {
  const b = Buffer.alloc(40);
  b.writeBigUInt64LE(BigInt(fh), 0);
  b.writeBigUInt64LE(BigInt(offset), 8);
  b.writeUInt32LE(size, 16);
  return Buffer.concat([b, data]);
}

function setattrIn(valid: number, size: number, mode: number): Buffer {
  const b = Buffer.alloc(88);
  b.writeUInt32LE(valid, 0);
  b.writeBigUInt64LE(BigInt(size), 16);
  b.writeUInt32LE(mode, 68);
  return b;
}

async function session(): Promise<{ s: FuseSession; calls: unknown[][]; lookups: () => number }> {
  const calls: unknown[][] = [];
  let lookups = 0;
  const rec = (name: string) => (...a: unknown[]): void => {
    calls.push([name, ...a.slice(1)]);
  };
  const h: FuseFilesystem = {
    lookup: (_c, _p, name) => {
      lookups++;
      return { nodeid: 50 + name.length, attr: attr(50 + name.length), entryTimeout: 100, attrTimeout: 100, generation: 0 };
    },
    getattr: (_c, n) => ({ attr: attr(n) }),
    mkdir: (...a) => (rec('mkdir')(...a), { nodeid: 60, generation: 0, attr: attr(60, 0o40755) }),
    mknod: (...a) => (rec('mknod')(...a), { nodeid: 61, generation: 0, attr: attr(61, 0o10644) }),
    symlink: (...a) => (rec('symlink')(...a), { nodeid: 62, generation: 0, attr: attr(62, 0o120777) }),
    link: (...a) => (rec('link')(...a), { nodeid: 63, generation: 0, attr: attr(63) }),
    unlink: (...a) => rec('unlink')(...a),
    rmdir: (...a) => rec('rmdir')(...a),
    rename: (...a) => rec('rename')(...a),
    setattr: (_c, n, set: FuseSetattr) => (calls.push(['setattr', n, set]), { attr: attr(n, 0o100600, set.size ?? 0) }),
    create: (...a) => (rec('create')(...a), { entry: { nodeid: 64, generation: 0, attr: attr(64) }, open: { fh: 77 } }),
    write: (_c, n, fh, off, data) => (calls.push(['write', n, fh, off, data.toString()]), data.length),
    setxattr: (...a) => rec('setxattr')(...a),
    removexattr: (...a) => rec('removexattr')(...a),
    open: (_c, n, flags) => (calls.push(['open', n, flags]), { fh: 5 }),
  };
  const s = new FuseSession(h, { immutable: true, logger: { error: () => undefined, warn: () => undefined } });
  s.attachLoopback();
  assert.equal(W.parseReply(await s.inject(W.initRequest(), 80)).error, 0);
  return { s, calls, lookups: () => lookups };
}

const reply = async (s: FuseSession, op: number, node: number, body: Buffer, cap = 256): Promise<W.Reply> => W.parseReply(await s.inject(W.request(op, node, body), cap));

test('mutating requests reach the handler decoded only for writable nodes', async () => {
  const { s, calls } = await session();
  assert.equal((await reply(s, kOp.MKDIR, 5, W.nameBody('d', u32s(0o755, 0o22)))).error, -E.EROFS);
  assert.equal((await reply(s, kOp.OPEN, 5, W.openIn(2))).error, -E.EROFS);
  assert.deepEqual(calls, []);
  s.setWritable(1, 10, true);
  const md = await reply(s, kOp.MKDIR, 5, W.nameBody('d', u32s(0o755, 0o22)));
  assert.equal(md.error, 0);
  assert.equal(W.parseEntry(md.payload).nodeid, 60);
  assert.equal((await reply(s, kOp.MKNOD, 5, W.nameBody('f', u32s(0o10644, 0x0103, 0o22, 0)))).error, 0);
  assert.equal((await reply(s, kOp.SYMLINK, 5, Buffer.concat([W.nameBody('l'), W.nameBody('../t')]))).error, 0);
  assert.equal((await reply(s, kOp.LINK, 5, W.nameBody('hl', u64(7)))).error, 0);
  assert.equal((await reply(s, kOp.UNLINK, 5, W.nameBody('x'))).len, 16);
  assert.equal((await reply(s, kOp.RMDIR, 5, W.nameBody('y'))).len, 16);
  assert.equal((await reply(s, kOp.RENAME, 5, Buffer.concat([W.nameBody('a', u64(6)), W.nameBody('b')]))).len, 16);
  assert.equal((await reply(s, kOp.RENAME2, 5, Buffer.concat([W.nameBody('a', Buffer.concat([u64(6), u32s(1, 0)])), W.nameBody('c')]))).len, 16);
  const sa = await reply(s, kOp.SETATTR, 7, setattrIn(1 | 8, 4096, 0o600));
  assert.equal(sa.error, 0);
  assert.equal(W.parseAttr(sa.payload, 16).size, 4096);
  const cr = await reply(s, kOp.CREATE, 5, W.nameBody('new', u32s(0o1101, 0o644, 0o22, 0)));
  assert.equal(cr.error, 0);
  assert.equal(W.parseEntry(cr.payload).nodeid, 64);
  assert.equal(Number(cr.payload.readBigUInt64LE(128)), 77);
  const wr = await reply(s, kOp.WRITE, 7, writeIn(77, 10, Buffer.from('hello')));
  assert.equal(wr.payload.readUInt32LE(0), 5);
  assert.equal((await reply(s, kOp.SETXATTR, 7, Buffer.concat([u32s(3, 1), W.nameBody('user.k'), Buffer.from('val')]))).len, 16);
  assert.equal((await reply(s, kOp.REMOVEXATTR, 7, W.nameBody('user.k'))).len, 16);
  assert.equal((await reply(s, kOp.OPEN, 7, W.openIn(2))).error, 0);
  // FALLOCATE without a handler method, and COPY_FILE_RANGE: ENOSYS (the kernel falls back).
  assert.equal((await reply(s, kOp.FALLOCATE, 7, Buffer.alloc(32))).error, -E.ENOSYS);
  assert.deepEqual(calls, [
    ['mkdir', 5, Buffer.from('d'), 0o755, 0o22],
    ['mknod', 5, Buffer.from('f'), 0o10644, 0x0103, 0o22],
    ['symlink', 5, Buffer.from('l'), Buffer.from('../t')],
    ['link', 7, 5, Buffer.from('hl')],
    ['unlink', 5, Buffer.from('x')],
    ['rmdir', 5, Buffer.from('y')],
    ['rename', 5, Buffer.from('a'), 6, Buffer.from('b'), 0],
    ['rename', 5, Buffer.from('a'), 6, Buffer.from('c'), 1],
    ['setattr', 7, { mode: 0o600, size: 4096 }],
    ['create', 5, Buffer.from('new'), 0o1101, 0o644, 0o22],
    ['write', 7, 77, 10, 'hello'],
    ['setxattr', 7, Buffer.from('user.k'), Buffer.from('val'), 1],
    ['removexattr', 7, Buffer.from('user.k')],
    ['open', 7, 2],
  ]);
  s.setWritable(1, 10, false);
  assert.equal((await reply(s, kOp.UNLINK, 5, W.nameBody('x'))).error, -E.EROFS);
  s.stop();
});

test('malformed mutating requests get an errno before the handler, and the session keeps serving', async () => {
  const { s, calls } = await session();
  s.setWritable(1, 10, true);
  const cases: [number, Buffer, number][] = [
    [kOp.MKDIR, u32s(0o755), E.EINVAL], // short fuse_mkdir_in
    [kOp.MKDIR, Buffer.concat([u32s(0o755, 0), Buffer.from('noterm')]), E.EINVAL], // no NUL
    [kOp.MKDIR, W.nameBody('', u32s(0o755, 0)), E.EINVAL], // empty name
    [kOp.UNLINK, W.nameBody('n'.repeat(1100)), E.ENAMETOOLONG],
    [kOp.SYMLINK, W.nameBody('only-one'), E.EINVAL], // no target
    [kOp.RENAME, W.nameBody('a', u64(6)), E.EINVAL], // one name
    [kOp.SETATTR, Buffer.alloc(40), E.EINVAL], // short fuse_setattr_in
    [kOp.WRITE, writeIn(77, 0, Buffer.from('abc'), 1000), E.EINVAL], // size beyond the data
    [kOp.WRITE, Buffer.alloc(20), E.EINVAL],
    [kOp.SETXATTR, Buffer.concat([u32s(100, 0), W.nameBody('user.k'), Buffer.from('v')]), E.EINVAL],
    [kOp.SETXATTR, Buffer.concat([u32s(70000, 0), W.nameBody('user.k')]), E.E2BIG],
    [kOp.SETXATTR, Buffer.concat([u32s(1, 0), W.nameBody('u'.repeat(300)), Buffer.from('v')]), E.ERANGE],
    [kOp.CREATE, W.nameBody('c', u32s(0)), E.EINVAL],
    [kOp.LINK, Buffer.from([1, 2]), E.EINVAL],
  ];
  for (const [op, body, errno] of cases) {
    assert.equal((await reply(s, op, 5, body)).error, -errno, `opcode ${op}`);
  }
  assert.deepEqual(calls, []);
  assert.equal((await reply(s, kOp.UNLINK, 5, W.nameBody('ok'))).len, 16);
  assert.deepEqual(calls, [['unlink', 5, Buffer.from('ok')]]);
  s.stop();
});

test('LOOKUP and GETATTR of writable nodes are never answered from the native cache', async () => {
  const { s, lookups } = await session();
  await reply(s, W.kOp.LOOKUP, 1, W.nameBody('a'));
  await reply(s, W.kOp.LOOKUP, 1, W.nameBody('a'));
  assert.equal(lookups(), 1, 'an immutable session answers the repeat natively');
  s.setWritable(1, 2, true);
  await reply(s, W.kOp.LOOKUP, 1, W.nameBody('a'));
  await reply(s, W.kOp.LOOKUP, 1, W.nameBody('a'));
  assert.equal(lookups(), 3, 'every LOOKUP in a writable directory reaches the handler');
  s.stop();
});
