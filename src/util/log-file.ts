/**
 * The `--log-file` sink: JSON lines through winston's File transport (size rotation keeping
 * kLogRotationKeep files, tailable names, flush on close). winston is required here, on first
 * use, so a daemon logging to stderr never loads it.
 */
import { closeSync, openSync } from 'node:fs';
import { createRequire } from 'node:module';

import type winston from 'winston';

import { UsageError } from './errors.js';
import { kLevelNumbers } from './log-format.js';
import type { LogRecord, LogSink } from './log-format.js';

/** Files kept when --log-rotation-size is set (the current one plus rotated ones). */
export const kLogRotationKeep = 10;

/** A stuck file system must not hold the process past its stop timeout. */
const kCloseTimeoutMs = 2000;

/** Opens `filename` (already with its extension) for appending; fails now, naming the file. */
export function openLogFile(filename: string, rotationSizeMb: number, format: (rec: LogRecord) => string): LogSink {
  try {
    // winston would only report an unwritable file asynchronously.
    closeSync(openSync(filename, 'a'));
  } catch (err) {
    throw new UsageError(`--log-file ${filename}: cannot open for writing (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  // Synchronous (winston is CommonJS) so createLogger stays synchronous.
  const w = createRequire(import.meta.url)('winston') as typeof winston;
  const transport = new w.transports.File({
    filename,
    format: w.format.printf((info) => format(info as unknown as LogRecord)),
    ...(rotationSizeMb > 0 ? { maxsize: rotationSizeMb * 1024 * 1024, maxFiles: kLogRotationKeep, tailable: true } : {}),
  });
  const logger = w.createLogger({ level: 'trace', levels: kLevelNumbers, transports: [transport], exitOnError: false });
  return {
    write: (rec) => {
      logger.log(rec);
    },
    close: async () => {
      const finished = new Promise<void>((resolve) => transport.once('finish', () => resolve()));
      logger.end();
      await Promise.race([finished, new Promise<void>((resolve) => setTimeout(resolve, kCloseTimeoutMs).unref())]);
    },
  };
}
