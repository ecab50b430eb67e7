/**
 * The `--log-file` sink: formatted lines (text, or JSON with --log-format json) appended with one
 * synchronous write each, like the stderr writer, so nothing is held in memory and a line is in
 * the file before the call returns (a crash loses nothing already logged). With
 * `--log-rotation-size` the file rotates by size: the current file keeps its name, rotated ones
 * are `<name>1<ext>` (newest) .. `<name>9<ext>`, kLogRotationKeep files in all.
 *
 * (winston's File transport did this before; it lost the records written while it reopened a
 * rotated file and threw when closed during a rotation.)
 */
import { closeSync, fstatSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { extname } from 'node:path';

import { UsageError } from './errors.js';
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

/** Opens `filename` (already with its extension) for appending; fails now, naming the file. */
export function openLogFile(filename: string, rotationSizeMb: number, format: (rec: LogRecord) => string): LogSink {
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
    write: (rec) => {
      if (fd < 0) return;
      const line = Buffer.from(`${format(rec)}\n`);
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
      return Promise.resolve();
    },
  };
}
