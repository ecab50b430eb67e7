/**
 * The `--log-file` sink: a winston logger (loaded on first use, so a daemon logging to stderr never
 * loads it) whose one transport appends formatted lines (text, or JSON with --log-format json)
 * with one synchronous write each, like the stderr writer: nothing is held in memory and a line is
 * in the file before the call returns (a crash loses nothing already logged). With
 * `--log-rotation-size` the file rotates by size: the current file keeps its name, rotated ones
 * are `<name>1<ext>` (newest) .. `<name>9<ext>`, kLogRotationKeep files in all.
 *
 * (winston's own File transport lost the records written while it reopened a rotated file and
 * threw when closed during a rotation, hence the transport here.)
 */
import { closeSync, fstatSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { createRequire } from 'node:module';
import { extname } from 'node:path';

import type winston from 'winston';
import type TransportStream from 'winston-transport';

import { UsageError } from './errors.js';
import { kLevelNumbers } from './log-format.js';
import type { LogRecord, LogSink } from './log-format.js';

/** Files kept when --log-rotation-size is set (the current one plus rotated ones). */
export const kLogRotationKeep = 10;

function code(err: unknown): string {
  return (err as NodeJS.ErrnoException).code ?? String(err);
}

/** `<name><n><ext>`: the n-th newest rotated file (n >= 1). */
export function rotatedLogName(filename: string, n: number): string {
  const ext = extname(filename);
  return `${filename.slice(0, filename.length - ext.length)}${n}${ext}`;
}

/** A stuck file system must not hold the process past its stop timeout. */
const kCloseTimeoutMs = 2000;

/** Opens `filename` (already with its extension) for appending; fails now, naming the file. */
export function openLogFile(filename: string, rotationSizeMb: number, format: (rec: LogRecord) => string): LogSink {
  const file = openRotatingFile(filename, rotationSizeMb);
  // Synchronous (winston is CommonJS) so createLogger stays synchronous.
  const w = createRequire(import.meta.url)('winston') as typeof winston;
  // winston exports the transport base class as `Transport` (its typings only as a namespace).
  const Transport = (w as unknown as { Transport: typeof TransportStream }).Transport;
  class SyncFileTransport extends Transport {
    override log(info: unknown, next: () => void): void {
      file.write(format(info as LogRecord));
      next();
    }
  }
  const logger = w.createLogger({ level: 'trace', levels: kLevelNumbers, transports: [new SyncFileTransport()], exitOnError: false });
  return {
    write: (rec) => {
      logger.log(rec);
    },
    close: async () => {
      const finished = new Promise<void>((resolve) => logger.once('finish', () => resolve()));
      logger.end();
      await Promise.race([finished, new Promise<void>((resolve) => setTimeout(resolve, kCloseTimeoutMs).unref())]);
      file.close();
    },
  };
}

interface RotatingFile {
  write(line: string): void;
  close(): void;
}

function openRotatingFile(filename: string, rotationSizeMb: number): RotatingFile {
  const open = (): number => openSync(filename, 'a', 0o644);
  let fd: number;
  try {
    fd = open();
  } catch (err) {
    throw new UsageError(`--log-file ${filename}: cannot open for writing (${code(err)})`);
  }
  const limit = rotationSizeMb * 1024 * 1024;
  let size = fstatSync(fd).size;
  let failed = false;
  // A log file that fails later (disk full, removed directory) must not take the daemon down.
  const fail = (what: string, err: unknown): void => {
    if (!failed) process.stderr.write(`nydusd: --log-file ${filename}: ${what} failed (${code(err)}); log lines are lost\n`);
    failed = true;
  };
  const rotate = (): void => {
    closeSync(fd);
    fd = -1;
    rmSync(rotatedLogName(filename, kLogRotationKeep - 1), { force: true });
    for (let n = kLogRotationKeep - 2; n >= 1; n--) {
      try {
        renameSync(rotatedLogName(filename, n), rotatedLogName(filename, n + 1));
      } catch (err) {
        if (code(err) !== 'ENOENT') throw err;
      }
    }
    renameSync(filename, rotatedLogName(filename, 1));
    fd = open();
    size = 0;
  };
  return {
    write: (text) => {
      if (fd < 0) return;
      const line = Buffer.from(`${text}\n`);
      try {
        for (let off = 0; off < line.length; ) off += writeSync(fd, line, off);
        size += line.length;
        if (limit > 0 && size >= limit) rotate();
      } catch (err) {
        fail(fd < 0 ? 'rotating' : 'writing', err);
        if (fd < 0) {
          try {
            fd = open();
            size = fstatSync(fd).size;
          } catch {
            // Nothing more to do: the failure was reported once.
          }
        }
      }
    },
    close: () => {
      if (fd >= 0) closeSync(fd);
      fd = -1;
    },
  };
}
