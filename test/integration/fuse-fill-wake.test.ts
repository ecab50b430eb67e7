/**
 * A READ parked on a missing chunk is completed by the cache fill that makes the chunk ready,
 * natively: the fill wakes it on its own thread (no chunksReady call from JavaScript, no answer
 * from the miss handler needed), and the handler's late success answer is not a stale reply.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';

import type { FuseFilesystem, FuseLogger } from '../../src/fuse/index.js';
import { FuseExtentTable, FuseSession } from '../../src/fuse/index.js';
import { DigestAlgo, fill, openChunkMap } from '../../src/native/index.js';
import * as W from '../helpers/fuse-wire.js';

const tmpRoot = mkdtempSync(join(tmpdir(), 'nydus-fill-wake-'));
after(() => rmSync(tmpRoot, { recursive: true, force: true }));

const kChunk = 4096;

test('the fill wakes every READ parked on its chunks; the miss handler does not have to answer', async () => {
  const dataPath = join(tmpRoot, 'blob.data');
  const fh = await open(dataPath, 'w+');
  const map = openChunkMap(`${dataPath}.chunk_map`, 2);
  const content = Buffer.alloc(2 * kChunk);
  for (let i = 0; i < content.length; i++) content[i] = (i * 7) & 0xff;
  const table = new FuseExtentTable(content.length);
  for (let c = 0; c < 2; c++) table.add({ fileOffset: c * kChunk, length: kChunk, blobSlot: 0, chunkIndex: c, sourceOffset: c * kChunk, sourceSize: kChunk });
  let misses = 0;
  let answer: (() => void) | undefined;
  const answered = new Promise<void>((r) => (answer = r));
  const handler: FuseFilesystem = {
    open: () => ({ fh: 7, keepCache: true, extents: table }),
    release: () => undefined,
    // Holds its answer until the test releases it: the READs must complete without it.
    readMiss: async () => {
      misses++;
      await answered;
    },
  };
  const logger: FuseLogger = { error: () => undefined, warn: () => undefined };
  const s = new FuseSession(handler, { logger, entryTimeout: 1, attrTimeout: 1 });
  s.attachLoopback();
  try {
    assert.equal(W.parseReply(await s.inject(W.initRequest(), 80)).error, 0);
    s.registerBlob(0, { dataPath, chunkMap: map });
    assert.equal(W.parseReply(await s.inject(W.request(W.kOp.OPEN, 2, W.openIn()), 32)).error, 0);
    const reads = [0, 100, kChunk - 10].map((off) => s.inject(W.request(W.kOp.READ, 2, W.readIn(7, off, 64)), 16 + 64));
    for (let i = 0; i < 200 && misses < 3; i++) await new Promise((r) => setTimeout(r, 5));
    assert.equal(misses, 3, 'every READ parked and reached the miss handler');
    const out = await fill({
      algo: 0, digester: DigestAlgo.Blake3, validate: false, src: content, fd: fh.fd, map, allowSpill: false,
      chunks: [0, 1].map((c) => ({ srcOffset: c * kChunk, storedSize: kChunk, fileOffset: c * kChunk, size: kChunk, compressed: false, index: c, compressedOffset: c * kChunk })),
    });
    assert.deepEqual([...out.status], [0, 0]);
    const replies = (await Promise.all(reads)).map((b) => W.parseReply(b));
    [0, 100, kChunk - 10].forEach((off, i) => {
      const r = replies[i];
      assert.equal(r?.error, 0);
      const want = content.subarray(off, off + 64);
      assert.ok(r?.payload.equals(want), `READ at ${off}`);
    });
    // The handler's answers arrive after the READs completed: expected, not stale.
    answer?.();
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(s.stats()['staleReplies'], 0);
  } finally {
    s.stop();
    await fh.close();
    map.close();
  }
});
