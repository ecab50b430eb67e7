import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, test } from 'node:test';

import { attachNativeLog } from '../../src/daemon/native-log.js';
import { native } from '../../src/native/index.js';
import { createLogger, logFilePath } from '../../src/util/logger.js';
import type { LogFormat, LogLevel } from '../../src/util/logger.js';

const dir = mkdtempSync(join(tmpdir(), 'nydus-log-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function capture(level: LogLevel, format: LogFormat = 'text') {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines.push(...chunk.toString().split('\n').filter(Boolean));
      cb();
    },
  });
  return { logger: createLogger({ level, format, stream }), lines };
}

async function flush(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
}

test('text lines: time, level, module, message, fields', async () => {
  const { logger, lines } = capture('info');
  logger.child('storage').info('blob opened', { blob: 'abc', chunks: 3, path: '/a b' });
  await flush();
  assert.equal(lines.length, 1);
  assert.match(lines[0] ?? '', /^\[\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\] INFO {2}\[storage\] blob opened blob=abc chunks=3 path="\/a b"$/);
});

test('json lines carry the same record', async () => {
  const { logger, lines } = capture('debug', 'json');
  logger.child('daemon').debug('state change', { from: 'INIT', to: 'READY' });
  logger.warn('careful');
  await flush();
  const recs = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.equal(recs.length, 2);
  assert.deepEqual({ ...recs[0], time: undefined }, { time: undefined, level: 'debug', module: 'daemon', msg: 'state change', from: 'INIT', to: 'READY' });
  assert.equal(recs[1]?.['level'], 'warn');
  assert.equal(recs[1]?.['module'], 'nydusd');
  assert.match(String(recs[0]?.['time']), /Z$/);
});

test('levels filter, and disabled levels never build their message', async () => {
  const { logger, lines } = capture('info');
  let built = 0;
  const costly = (): string => {
    built++;
    return 'expensive';
  };
  logger.trace(costly);
  logger.debug(costly);
  assert.equal(built, 0);
  assert.equal(logger.traceEnabled, false);
  assert.equal(logger.debugEnabled, false);
  logger.info(costly);
  assert.equal(built, 1);
  logger.setLevel('trace');
  assert.equal(logger.traceEnabled, true);
  logger.trace(costly);
  logger.setLevel('error');
  logger.warn('dropped');
  logger.error('kept');
  await flush();
  assert.deepEqual(
    lines.map((l) => l.replace(/^\[[^\]]+\] /, '')),
    ['INFO  [nydusd] expensive', 'TRACE [nydusd] expensive', 'ERROR [nydusd] kept'],
  );
});

test('--log-file: JSON lines, ".log" appended when there is no extension', async () => {
  assert.equal(logFilePath('/var/log/nydusd'), '/var/log/nydusd.log');
  assert.equal(logFilePath('/var/log/nydusd.txt'), '/var/log/nydusd.txt');
  const logger = createLogger({ level: 'info', format: 'text', file: join(dir, 'daemon') });
  logger.info('to the file', { n: 1 });
  logger.debug('not at info');
  await logger.close();
  const lines = readFileSync(join(dir, 'daemon.log'), 'utf8').trim().split('\n');
  assert.equal(lines.length, 1);
  const rec = JSON.parse(lines[0] ?? '') as Record<string, unknown>;
  assert.equal(rec['msg'], 'to the file');
  assert.equal(rec['n'], 1);
});

test('an unwritable --log-file is a usage error naming the file', () => {
  assert.throws(() => createLogger({ level: 'info', file: join(dir, 'no-such-dir', 'x.log') }), {
    code: 'ERR_USAGE',
    message: /--log-file .*no-such-dir\/x\.log: cannot open for writing \(ENOENT\)/,
  });
});

test('--log-rotation-size rotates the file', async () => {
  const logger = createLogger({ level: 'info', file: join(dir, 'rot.log'), rotationSizeMb: 1 });
  const line = 'x'.repeat(1000);
  for (let i = 0; i < 3000; i++) logger.info(line);
  await logger.close();
  const files = readdirSync(dir).filter((f) => f.startsWith('rot'));
  assert.ok(files.length >= 2, `rotated files: ${files.join(', ')}`);
});

test('native log records arrive through the same logger, filtered by level', async () => {
  const { logger, lines } = capture('info');
  attachNativeLog(logger);
  try {
    native().nativeLog(2, 'cache', 'from C++');
    native().nativeLog(1, 'cache', 'debug from C++ is filtered in the core');
    for (let i = 0; i < 50 && lines.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(lines.length, 1);
    assert.match(lines[0] ?? '', /INFO {2}\[native:cache\] from C\+\+$/);
  } finally {
    await logger.close();
  }
});
