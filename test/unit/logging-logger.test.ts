import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
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

test('--log-file: text lines as upstream, JSON lines with format json; ".log" appended when there is no extension', async () => {
  assert.equal(logFilePath('/var/log/nydusd'), '/var/log/nydusd.log');
  assert.equal(logFilePath('/var/log/nydusd.txt'), '/var/log/nydusd.txt');
  const text = createLogger({ level: 'info', file: join(dir, 'daemon') });
  text.info('to the file', { n: 1 });
  text.debug('not at info');
  await text.close();
  const lines = readFileSync(join(dir, 'daemon.log'), 'utf8').trim().split('\n');
  assert.equal(lines.length, 1);
  assert.match(lines[0] ?? '', /^\[\d{4}-\d\d-\d\dT[\d:.]+Z\] INFO {2}\[nydusd\] to the file n=1$/);
  const json = createLogger({ level: 'info', format: 'json', file: join(dir, 'daemon-json') });
  json.info('to the file', { n: 1 });
  json.debug('not at info');
  await json.close();
  const jl = readFileSync(join(dir, 'daemon-json.log'), 'utf8').trim().split('\n');
  assert.equal(jl.length, 1);
  const rec = JSON.parse(jl[0] ?? '') as Record<string, unknown>;
  assert.equal(rec['msg'], 'to the file');
  assert.equal(rec['n'], 1);
  assert.equal(rec['level'], 'info');
});

test('an unwritable --log-file is a usage error naming the file', () => {
  assert.throws(() => createLogger({ level: 'info', file: join(dir, 'no-such-dir', 'x.log') }), {
    code: 'ERR_USAGE',
    message: /--log-file .*no-such-dir\/x\.log: cannot open for writing \(ENOENT\)/,
  });
});

test('--log-rotation-size rotates by size: no line lost, newest rotated file is <name>1, 10 files kept', async () => {
  const rot = join(dir, 'rot');
  mkdirSync(rot);
  const logger = createLogger({ level: 'info', file: join(rot, 'd.log'), rotationSizeMb: 1 });
  const pad = 'x'.repeat(1000);
  const n = 12_000; // ~12.5 MiB: more rotations than files kept
  for (let i = 0; i < n; i++) logger.info(`line ${i} ${pad}`);
  await logger.close();
  const files = readdirSync(rot).sort();
  assert.deepEqual(files, ['d.log', ...Array.from({ length: 9 }, (_, i) => `d${i + 1}.log`)].sort());
  // Oldest first: d9 .. d1, then d.log; together the newest lines, in order, none missing.
  const numbers = ['d9.log', 'd8.log', 'd7.log', 'd6.log', 'd5.log', 'd4.log', 'd3.log', 'd2.log', 'd1.log', 'd.log'].flatMap((f) =>
    readFileSync(join(rot, f), 'utf8')
      .trim()
      .split('\n')
      .map((l) => Number(/ line (\d+) /.exec(l)?.[1])),
  );
  const first = numbers[0]!;
  assert.ok(first > 0, 'the oldest files were dropped');
  assert.deepEqual(numbers, Array.from({ length: n - first }, (_, i) => first + i));
  for (const f of files.filter((x) => x !== 'd.log')) assert.ok(statSync(join(rot, f)).size >= 1024 * 1024, f);
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
