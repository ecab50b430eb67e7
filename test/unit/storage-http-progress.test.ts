/**
 * Body progress of a ranged GET (ReadOptions.onProgress, HttpRequest.onBody) against a node:http
 * server in process: the bytes of a reply whose head matches the range are reported while the
 * body is still arriving (the server sends the second half only after the client reported the
 * first); replies that are not the range asked for report nothing and fail as before.
 */
import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';

import { kHttpProxySchema } from '../../src/config/schema-common.js';
import { HttpProxyBackend } from '../../src/storage/http-proxy.js';
import { nullLogger } from '../../src/util/logger.js';

const blob = Buffer.from(Array.from({ length: 256 * 1024 }, (_, i) => (i * 7 + 3) & 0xff));
const kId = 'a'.repeat(64);
/** What the server does with the next GET. */
let mode: 'split' | 'wrong-range' | 'ignore-range' = 'split';
/** Resolved by the test once the client reported the first half. */
let firstHalfSeen: () => void = () => undefined;

const server = createServer((req: IncomingMessage, res: ServerResponse) => {
  const m = /bytes=(\d+)-(\d+)/.exec(req.headers.range ?? '');
  const start = Number(m?.[1] ?? 0);
  const end = Number(m?.[2] ?? blob.length - 1);
  if (req.method === 'HEAD') {
    res.writeHead(200, { 'content-length': blob.length }).end();
    return;
  }
  if (mode === 'ignore-range') {
    res.writeHead(200, { 'content-length': blob.length }).end(blob);
    return;
  }
  const s = mode === 'wrong-range' ? start + 1 : start;
  const body = blob.subarray(s, s + (end - start + 1));
  res.writeHead(206, { 'content-length': body.length, 'content-range': `bytes ${s}-${s + body.length - 1}/${blob.length}` });
  const half = body.length >> 1;
  res.write(body.subarray(0, half));
  if (mode !== 'split') {
    res.end(body.subarray(half));
    return;
  }
  // The rest only once the client reported the first half: progress must come before the end.
  new Promise<void>((r) => (firstHalfSeen = r)).then(() => res.end(body.subarray(half)), () => undefined);
});
let backend: HttpProxyBackend;

before(async () => {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  backend = await HttpProxyBackend.create(kHttpProxySchema.parse({ addr: `http://127.0.0.1:${port}`, path: '/b' }), { at: 'backend', headers: {}, log: nullLogger() });
});
after(async () => {
  await backend.close();
  server.closeAllConnections();
  await new Promise<void>((r) => server.close(() => r()));
});

test('a matching 206 reports its bytes while they arrive, in the buffer the read returns', async () => {
  mode = 'split';
  const offset = 4096;
  const length = 128 * 1024;
  const seen: number[] = [];
  let seenBuf: Buffer | undefined;
  const got = await backend.tryRead(kId, offset, length, undefined, {
    onProgress: (buf, bytes) => {
      seen.push(bytes);
      seenBuf = buf;
      assert.ok(buf.subarray(0, bytes).equals(blob.subarray(offset, offset + bytes)), `first ${bytes} bytes`);
      if (bytes >= length >> 1) firstHalfSeen();
    },
  });
  assert.ok(got.equals(blob.subarray(offset, offset + length)));
  assert.ok(seen.length >= 2, `progress calls: ${seen.join(',')}`);
  assert.ok(seen.some((n) => n >= length >> 1 && n < length), 'progress reported before the body ended');
  assert.equal(seen.at(-1), length);
  assert.equal(seenBuf, got, 'the same buffer');
});

test('a reply with another range, or one that ignored Range, reports nothing and fails', async () => {
  for (const m of ['wrong-range', 'ignore-range'] as const) {
    mode = m;
    let calls = 0;
    await assert.rejects(
      backend.tryRead(kId, 4096, 1000, undefined, { onProgress: () => void calls++ }),
      m === 'wrong-range' ? /asked for bytes 4096-5095, the server sent 4097-5096/ : /HTTP 200 with a 262144-byte body, more than the 1000 bytes asked for/,
    );
    assert.equal(calls, 0, m);
  }
});
