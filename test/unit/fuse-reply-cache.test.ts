/**
 * The native LOOKUP/GETATTR reply cache of an immutable session (FuseSessionOptions.immutable):
 * repeats are answered without the handler, answers stay byte-identical, errors are never
 * cached, a handler that counts lookups (has `forget`) counts them only in its writable ranges
 * (where it sees every LOOKUP and every FORGET) while the cache serves the rest, and every
 * re-INIT, DESTROY and transport reset empties the cache.
 */
import assert from 'node:assert/strict';
import { constants } from 'node:os';
import { test } from 'node:test';

import type { FuseAttr, FuseFilesystem, FuseForget, FuseLogger } from '../../src/fuse/index.js';
import { FuseSession, fuseErrno } from '../../src/fuse/index.js';
import * as W from '../helpers/fuse-wire.js';

const E = constants.errno;

function attr(ino: number, size = 0): FuseAttr {
  return { ino, mode: 0o100644, nlink: 1, uid: 0, gid: 0, size, atime: 1700000000, mtime: 1700000001, mtimeNsec: 5, ctime: 1700000002 };
}

function capture(): FuseLogger {
  return { error: () => undefined, warn: () => undefined };
}

interface Counting {
  handler: FuseFilesystem;
  calls: { lookup: number; getattr: number };
  /** Size reported for every node: changing it shows whether the handler was asked again. */
  size: { v: number };
}

function counting(withForget = false): Counting {
  const calls = { lookup: 0, getattr: 0 };
  const size = { v: 100 };
  const handler: FuseFilesystem = {
    lookup(_ctx, parent, name) {
      calls.lookup++;
      const n = name.toString();
      if (n === 'missing') return { nodeid: 0, entryTimeout: 7 };
      if (n === 'broken') return fuseErrno('EIO');
      return { nodeid: parent * 100 + n.length, attr: attr(parent * 100 + n.length, size.v), entryTimeout: 5, attrTimeout: 6 };
    },
    getattr(_ctx, nodeid) {
      calls.getattr++;
      if (nodeid === 99) return fuseErrno('ENOENT');
      return { attr: attr(nodeid, size.v), attrTimeout: 6 };
    },
  };
  if (withForget) handler.forget = () => undefined;
  return { handler, calls, size };
}

async function session(h: FuseFilesystem, immutable = true): Promise<FuseSession> {
  const s = new FuseSession(h, { logger: capture(), immutable });
  s.attachLoopback();
  assert.equal(W.parseReply(await s.inject(W.initRequest(), 80)).error, 0);
  return s;
}

const lookup = (s: FuseSession, parent: number, name: string): Promise<Buffer> =>
  s.inject(W.request(W.kOp.LOOKUP, parent, W.nameBody(name)), 16 + 128);
const getattr = (s: FuseSession, node: number): Promise<Buffer> => s.inject(W.request(W.kOp.GETATTR, node, W.getattrIn()), 16 + 104);
/** The reply without its header's `unique`, which differs per request. */
const body = (b: Buffer): Buffer => Buffer.concat([b.subarray(0, 8), b.subarray(16)]);

test('an immutable session answers repeated LOOKUP and GETATTR natively, byte for byte', async () => {
  const c = counting();
  const s = await session(c.handler);
  const first = await lookup(s, 1, 'abc');
  c.size.v = 999; // the handler would now answer differently: a cache hit must not ask it
  const again = await lookup(s, 1, 'abc');
  assert.equal(c.calls.lookup, 1);
  assert.deepEqual(body(again), body(first));
  assert.equal(W.parseEntry(W.parseReply(again).payload).nodeid, 103);
  // The entry's attributes answer a GETATTR of that node (stat after lookup).
  const ga = W.parseReply(await getattr(s, 103));
  assert.equal(c.calls.getattr, 0);
  assert.equal(ga.error, 0);
  assert.equal(W.parseAttr(ga.payload, 16).size, 100);
  // Another name and another node are not in the cache.
  assert.equal(W.parseEntry(W.parseReply(await lookup(s, 1, 'abcd')).payload).attr.size, 999);
  assert.equal(c.calls.lookup, 2);
  assert.equal(W.parseAttr(W.parseReply(await getattr(s, 5)).payload, 16).size, 999);
  assert.equal(W.parseAttr(W.parseReply(await getattr(s, 5)).payload, 16).size, 999);
  assert.equal(c.calls.getattr, 1);
  // The same name under another parent is another entry.
  await lookup(s, 2, 'abc');
  assert.equal(c.calls.lookup, 3);
  assert.equal(s.stats()['cachedReplies'], 3);
  s.stop();
});

test('negative entries are cached, errors are not', async () => {
  const c = counting();
  const s = await session(c.handler);
  for (let i = 0; i < 3; i++) {
    const neg = W.parseReply(await lookup(s, 1, 'missing'));
    assert.equal(neg.error, 0);
    assert.equal(W.parseEntry(neg.payload).nodeid, 0);
    assert.equal(W.parseEntry(neg.payload).entryValid, 7);
  }
  assert.equal(c.calls.lookup, 1);
  for (let i = 0; i < 3; i++) assert.equal(W.parseReply(await lookup(s, 1, 'broken')).error, -E.EIO);
  assert.equal(c.calls.lookup, 4);
  for (let i = 0; i < 2; i++) assert.equal(W.parseReply(await getattr(s, 99)).error, -E.ENOENT);
  assert.equal(c.calls.getattr, 2);
  s.stop();
});

test('re-INIT and DESTROY empty the cache (transport reset: native/test/fuse_reply_cache_test.cc)', async () => {
  const c = counting();
  const s = await session(c.handler);
  await lookup(s, 1, 'abc');
  await getattr(s, 7);
  // The guest rebooted: INIT on an initialized session.
  assert.equal(W.parseReply(await s.inject(W.initRequest(), 80)).error, 0);
  c.size.v = 200;
  assert.equal(W.parseEntry(W.parseReply(await lookup(s, 1, 'abc')).payload).attr.size, 200);
  assert.equal(W.parseAttr(W.parseReply(await getattr(s, 7)).payload, 16).size, 200);
  assert.deepEqual(c.calls, { lookup: 2, getattr: 2 });
  // Unmount: DESTROY, then a fresh INIT.
  assert.equal(W.parseReply(await s.inject(W.request(W.kOp.DESTROY, 0), 16)).error, 0);
  assert.equal(W.parseReply(await s.inject(W.initRequest(), 80)).error, 0);
  c.size.v = 300;
  assert.equal(W.parseEntry(W.parseReply(await lookup(s, 1, 'abc')).payload).attr.size, 300);
  assert.equal(c.calls.lookup, 3);
  s.stop();
});

test('a mutable handler, or one counting lookups in its writable ranges, sees every request there', async () => {
  // [forget, immutable, writable range]: only the immutable handler's nodes outside writable
  // ranges may be answered from the cache (it keeps no lookup counts for those).
  for (const [withForget, immutable, writable] of [[true, true, true], [false, false, false], [true, false, false]] as const) {
    const c = counting(withForget);
    const s = await session(c.handler, immutable);
    if (writable) s.setWritable(1, 200, true);
    await lookup(s, 1, 'abc');
    await lookup(s, 1, 'abc');
    await getattr(s, 103);
    await getattr(s, 103);
    assert.deepEqual(c.calls, { lookup: 2, getattr: 2 });
    assert.equal(s.stats()['cachedReplies'], 0);
    s.stop();
  }
});

test('an immutable handler with forget keeps the cache outside its writable ranges and hears only their forgets', async () => {
  const c = counting(true);
  const forgets: FuseForget[] = [];
  c.handler.forget = (items) => forgets.push(...items);
  const s = await session(c.handler);
  // Directory 7 and what it holds (nodes 700 + name length) are writable.
  s.setWritable(7, 8, true);
  s.setWritable(700, 800, true);
  await lookup(s, 1, 'abc');
  await lookup(s, 1, 'abc');
  assert.equal(c.calls.lookup, 1, 'node 1 is not writable: the repeat is answered natively');
  await lookup(s, 7, 'abc');
  await lookup(s, 7, 'abc');
  assert.equal(c.calls.lookup, 3);
  for (const [node, n] of [[103, 2], [703, 3]] as const) await s.inject(W.request(W.kOp.FORGET, node, W.forgetIn(n)), 0);
  await lookup(s, 7, 'x'); // a round trip: the forgets were drained before its answer
  assert.deepEqual(forgets, [{ nodeid: 703, nlookup: 3 }]);
  s.stop();
});
