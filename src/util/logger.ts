/**
 * The daemon's logger: levels as `--log-level`, human-readable text lines by default (on stderr,
 * or in `--log-file`, as upstream writes them), JSON lines with `--log-format json`. Records from
 * outside JavaScript (the native core: src/daemon/native-log.ts) arrive through the same logger,
 * following its level through a level hook.
 *
 * Lines are formatted here and written directly: to stderr (or a test stream), or appended to
 * `--log-file` with size rotation (log-file.ts).
 *
 * Zero cost when off (style rule 10): every method compares a number before doing anything, and
 * takes a message function for anything costly to format, so `log.trace(() => ...)` on a hot
 * path costs one comparison when trace is off.
 */
import { extname } from 'node:path';
import type { Writable } from 'node:stream';

import { openLogFile } from './log-file.js';
import { formatJson, formatText, kLevelNumbers } from './log-format.js';
import type { LogFields, LogFormat, LogLevel, LogRecord, LogSink } from './log-format.js';

export type { LogFields, LogFormat, LogLevel } from './log-format.js';
export { kLogLevels } from './log-format.js';
export { kLogRotationKeep } from './log-file.js';

export type LogMessage = string | (() => string);

/** Lets another source of records follow the logger: told the level now and on every change. */
export interface LevelHook {
  level(level: LogLevel): void;
  /** The logger closes: stop sending records. */
  close(): void;
}

export interface LoggerOptions {
  level: LogLevel;
  /** Format of the lines, on stderr or in the file (default text). */
  format?: LogFormat;
  /** Log to this file instead of stderr; ".log" is appended when it has no extension. */
  file?: string;
  /** Rotate the file at this many MiB (0: never). */
  rotationSizeMb?: number;
  /** Tests: write here instead of stderr. */
  stream?: Pick<Writable, 'write'>;
}

/** Lines straight to a stream (stderr: synchronous for files and pipes on Linux). */
function streamSink(stream: Pick<Writable, 'write'>, format: (rec: LogRecord) => string): LogSink {
  return {
    write: (rec) => {
      stream.write(`${format(rec)}\n`);
    },
    close: () => Promise.resolve(),
  };
}

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
    return kLevelNumbers[level] <= this._root.threshold;
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
    if (kLevelNumbers[level] <= this._root.threshold) this._root.write(level, this.module, msg, fields);
  }

  child(module: string): Logger {
    return new Logger(this._root, module);
  }
}

class LogRoot {
  threshold: number;
  levelName: LogLevel;
  readonly hooks: LevelHook[] = [];
  private readonly _sink: LogSink;

  constructor(opts: LoggerOptions) {
    this.levelName = opts.level;
    this.threshold = kLevelNumbers[opts.level];
    const format = opts.format === 'json' ? formatJson : formatText;
    if (opts.file !== undefined) {
      this._sink = openLogFile(logFilePath(opts.file), opts.rotationSizeMb ?? 0, format);
    } else {
      this._sink = streamSink(opts.stream ?? process.stderr, format);
    }
  }

  /** Called with every error record written (the API's error events). */
  errorListeners: ((module: string, message: string) => void)[] = [];

  write(level: LogLevel, module: string, msg: LogMessage, fields?: LogFields): void {
    const message = typeof msg === 'function' ? msg() : msg;
    this._sink.write({ ...fields, level, message, module, time: new Date().toISOString() });
    if (level === 'error') for (const l of this.errorListeners) l(module, message);
  }

  setLevel(level: LogLevel): void {
    this.levelName = level;
    this.threshold = kLevelNumbers[level];
    for (const h of this.hooks) h.level(level);
  }

  async close(): Promise<void> {
    for (const h of this.hooks.splice(0)) h.close();
    await this._sink.close();
  }
}

/** The process-wide logger: adds level control, level hooks and close(). */
export class RootLogger extends Logger {
  constructor(opts: LoggerOptions) {
    super(new LogRoot(opts), 'nydusd');
  }

  setLevel(level: LogLevel): void {
    this._root.setLevel(level);
  }

  /** Tells `hook` the level now and on every change, and closes it with the logger. */
  addLevelHook(hook: LevelHook): void {
    this._root.hooks.push(hook);
    hook.level(this._root.levelName);
  }

  /** `listener` sees every error record that is written (not those below the level). */
  onError(listener: (module: string, message: string) => void): void {
    this._root.errorListeners.push(listener);
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
  const root = new RootLogger({ level: 'error', stream: { write: () => true } });
  root.silence();
  return root;
}
