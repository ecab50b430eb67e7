/**
 * The daemon's logger (winston underneath): levels as `--log-level`, human-readable lines on
 * stderr by default, JSON lines with `--log-format json` and always in `--log-file`. Native log
 * records (C++ core) arrive through the same logger.
 *
 * Zero cost when off (style rule 10): every method compares a number before doing anything, and
 * takes a message function for anything costly to format, so `log.trace(() => ...)` on a hot
 * path costs one comparison when trace is off.
 */
import { closeSync, openSync } from 'node:fs';
import { extname } from 'node:path';
import { Writable } from 'node:stream';

import winston from 'winston';

import { native } from '../native/index.js';
import { UsageError } from './errors.js';

export const kLogLevels = ['error', 'warn', 'info', 'debug', 'trace'] as const;
export type LogLevel = (typeof kLogLevels)[number];
export type LogFormat = 'text' | 'json';
export type LogMessage = string | (() => string);
export type LogFields = Record<string, unknown>;

const kWinstonLevels: Record<LogLevel, number> = { error: 0, warn: 1, info: 2, debug: 3, trace: 4 };
// Native core levels (common/log.h): trace 0 .. error 4, off 5.
const kNativeToLevel: readonly LogLevel[] = ['trace', 'debug', 'info', 'warn', 'error'];
const kLevelToNative: Record<LogLevel, number> = { trace: 0, debug: 1, info: 2, warn: 3, error: 4 };
/** Files kept when --log-rotation-size is set (the current one plus rotated ones). */
export const kLogRotationKeep = 10;

export interface LoggerOptions {
  level: LogLevel;
  /** Format of the stderr stream (the log file is always JSON lines). */
  format?: LogFormat;
  /** Log to this file instead of stderr; ".log" is appended when it has no extension. */
  file?: string;
  /** Rotate the file at this many MiB (0: never). */
  rotationSizeMb?: number;
  /** Tests: write here instead of stderr. */
  stream?: Writable;
}

function stringifyField(v: unknown): string {
  if (typeof v === 'string') return /[\s"=]/.test(v) ? JSON.stringify(v) : v;
  if (typeof v === 'number' || typeof v === 'boolean' || v === null || v === undefined) return String(v);
  if (v instanceof Error) return JSON.stringify(v.message);
  return JSON.stringify(v);
}

const kReserved = new Set(['level', 'message', 'module', 'time', Symbol.for('level'), Symbol.for('message')]);

const textFormat = winston.format.printf((info) => {
  const { level, message, module, time } = info as { level: string; message: string; module?: string; time?: string };
  let line = `[${time ?? new Date().toISOString()}] ${level.toUpperCase().padEnd(5)} ${module ? `[${module}] ` : ''}${message}`;
  for (const [k, v] of Object.entries(info)) {
    if (!kReserved.has(k)) line += ` ${k}=${stringifyField(v)}`;
  }
  return line;
});

const jsonFormat = winston.format.printf((info) => {
  const { level, message, module, time, ...rest } = info as Record<string, unknown>;
  const fields: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(rest)) fields[k] = v instanceof Error ? v.message : v;
  return JSON.stringify({ time, level, module, msg: message, ...fields });
});

/** `--log-file` as upstream: a name without an extension gets ".log". */
export function logFilePath(file: string): string {
  return extname(file) === '' ? `${file}.log` : file;
}

/** A logger bound to a module name; cheap to create, shares its root's level and transports. */
export class Logger {
  constructor(
    protected readonly _root: LogRoot,
    readonly module: string,
  ) {}

  get level(): LogLevel {
    return this._root.levelName;
  }
  enabled(level: LogLevel): boolean {
    return kWinstonLevels[level] <= this._root.threshold;
  }
  get traceEnabled(): boolean {
    return this._root.threshold >= 4;
  }
  get debugEnabled(): boolean {
    return this._root.threshold >= 3;
  }

  error(msg: LogMessage, fields?: LogFields): void {
    if (this._root.threshold >= 0) this._root.write('error', this.module, msg, fields);
  }
  warn(msg: LogMessage, fields?: LogFields): void {
    if (this._root.threshold >= 1) this._root.write('warn', this.module, msg, fields);
  }
  info(msg: LogMessage, fields?: LogFields): void {
    if (this._root.threshold >= 2) this._root.write('info', this.module, msg, fields);
  }
  debug(msg: LogMessage, fields?: LogFields): void {
    if (this._root.threshold >= 3) this._root.write('debug', this.module, msg, fields);
  }
  trace(msg: LogMessage, fields?: LogFields): void {
    if (this._root.threshold >= 4) this._root.write('trace', this.module, msg, fields);
  }
  log(level: LogLevel, msg: LogMessage, fields?: LogFields): void {
    if (kWinstonLevels[level] <= this._root.threshold) this._root.write(level, this.module, msg, fields);
  }

  child(module: string): Logger {
    return new Logger(this._root, module);
  }
}

class LogRoot {
  threshold: number;
  levelName: LogLevel;
  nativeAttached = false;
  readonly winston: winston.Logger;
  private readonly _fileTransport: winston.transport | undefined;

  constructor(opts: LoggerOptions) {
    this.levelName = opts.level;
    this.threshold = kWinstonLevels[opts.level];
    const transports: winston.transport[] = [];
    if (opts.file !== undefined) {
      const filename = logFilePath(opts.file);
      try {
        // Fail now with a clear message; winston would report it asynchronously.
        closeSync(openSync(filename, 'a'));
      } catch (err) {
        throw new UsageError(`--log-file ${filename}: cannot open for writing (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
      }
      const rotate = (opts.rotationSizeMb ?? 0) > 0;
      this._fileTransport = new winston.transports.File({
        filename,
        format: jsonFormat,
        ...(rotate ? { maxsize: (opts.rotationSizeMb ?? 0) * 1024 * 1024, maxFiles: kLogRotationKeep, tailable: true } : {}),
      });
      transports.push(this._fileTransport);
    } else if (opts.stream) {
      transports.push(new winston.transports.Stream({ stream: opts.stream, format: opts.format === 'json' ? jsonFormat : textFormat }));
    } else {
      transports.push(
        new winston.transports.Console({
          stderrLevels: [...kLogLevels],
          format: opts.format === 'json' ? jsonFormat : textFormat,
        }),
      );
    }
    this.winston = winston.createLogger({ levels: kWinstonLevels, level: 'trace', transports, exitOnError: false });
  }

  write(level: LogLevel, module: string, msg: LogMessage, fields?: LogFields): void {
    const message = typeof msg === 'function' ? msg() : msg;
    this.winston.log({ ...fields, level, message, module, time: new Date().toISOString() });
  }

  setLevel(level: LogLevel): void {
    this.levelName = level;
    this.threshold = kWinstonLevels[level];
    if (this.nativeAttached) native().setLogLevel(kLevelToNative[level]);
  }

  async close(): Promise<void> {
    if (this.nativeAttached) {
      native().setLogHandler(null);
      this.nativeAttached = false;
    }
    const t = this._fileTransport;
    const done = t ? new Promise<void>((resolve) => t.once('finish', () => resolve())) : Promise.resolve();
    this.winston.end();
    // A stuck file system must not hold the process past its stop timeout.
    await Promise.race([done, new Promise<void>((resolve) => setTimeout(resolve, 2000).unref())]);
  }
}

/** The process-wide logger: adds level control, the native bridge and close(). */
export class RootLogger extends Logger {
  constructor(opts: LoggerOptions) {
    super(new LogRoot(opts), 'nydusd');
  }

  setLevel(level: LogLevel): void {
    this._root.setLevel(level);
  }

  /** Routes native core log records into this logger and mirrors the level into the core. */
  attachNative(): void {
    const root = this._root;
    native().setLogHandler((level, module, message) => {
      const name = kNativeToLevel[level] ?? 'error';
      if (kWinstonLevels[name] <= root.threshold) root.write(name, `native:${module}`, message);
    });
    native().setLogLevel(kLevelToNative[root.levelName]);
    root.nativeAttached = true;
  }

  /** Drops every record, errors included. */
  silence(): void {
    this._root.threshold = -1;
  }

  /** Flushes and closes the transports (and detaches the native bridge). */
  close(): Promise<void> {
    return this._root.close();
  }
}

export function createLogger(opts: LoggerOptions): RootLogger {
  return new RootLogger(opts);
}

/** A logger that drops everything (library defaults, tests that do not care). */
export function nullLogger(): Logger {
  const root = new RootLogger({ level: 'error', stream: new Writable({ write: (_c, _e, cb) => cb() }) });
  root.silence();
  return root;
}
