/**
 * Log records and their two line formats (text for people, JSON lines for machines and files),
 * shared by the stderr writer (logger.ts) and the --log-file sink (log-file.ts). No imports: it
 * is loaded on every start.
 */

export const kLogLevels = ['error', 'warn', 'info', 'debug', 'trace'] as const;
export type LogLevel = (typeof kLogLevels)[number];
export type LogFormat = 'text' | 'json';
export type LogFields = Record<string, unknown>;

/** Numeric levels (lower is more severe). */
export const kLevelNumbers: Record<LogLevel, number> = { error: 0, warn: 1, info: 2, debug: 3, trace: 4 };

function stringifyField(v: unknown): string {
  if (typeof v === 'string') return /[\s"=]/.test(v) ? JSON.stringify(v) : v;
  if (typeof v === 'number' || typeof v === 'boolean' || v === null || v === undefined) return String(v);
  if (v instanceof Error) return JSON.stringify(v.message);
  return JSON.stringify(v);
}

/** One record as the sinks receive it: the caller's fields, then the fixed keys. */
export type LogRecord = LogFields & { level: LogLevel; message: string; module: string; time: string };

const kReserved = new Set(['level', 'message', 'module', 'time']);

/** `[time] LEVEL [module] message k=v ...` (the default, on stderr and in --log-file). */
export function formatText(rec: LogRecord): string {
  const { level, message, module, time } = rec;
  let line = `[${time}] ${level.toUpperCase().padEnd(5)} ${module ? `[${module}] ` : ''}${message}`;
  for (const [k, v] of Object.entries(rec)) {
    if (!kReserved.has(k)) line += ` ${k}=${stringifyField(v)}`;
  }
  return line;
}

/** One JSON object per line (`--log-format json`). */
export function formatJson(rec: LogRecord): string {
  const { level, message, module, time, ...rest } = rec;
  const fields: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(rest)) fields[k] = v instanceof Error ? v.message : v;
  return JSON.stringify({ time, level, module, msg: message, ...fields });
}

/** Where records go: a stream of formatted lines, or the log file. */
export interface LogSink {
  write(rec: LogRecord): void;
  close(): Promise<void>;
}

