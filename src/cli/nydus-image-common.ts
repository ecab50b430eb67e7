/**
 * Pieces shared by the nydus-image subcommands: a strict yargs parser that reports problems as
 * UsageError (exit 2), upstream's global logging flags, number parsing ("0x" hex or decimal, as
 * upstream's clap value parsers accept), and the warning/summary output.
 */
import { appendFileSync } from 'node:fs';

import yargs, { type Argv } from 'yargs';

import { NydusError, UsageError } from '../util/errors.js';

export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error';

export function baseParser(argv: string[], usage: string, positional?: string): Argv {
  return yargs(argv)
    .scriptName('nydus-image')
    .usage(usage)
    .strict()
    .version(false)
    .help('help')
    .alias('help', 'h')
    .exitProcess(false)
    .option('log-file', { alias: 'L', type: 'string', describe: 'Log file path' })
    .option('log-level', {
      alias: 'l',
      type: 'string',
      choices: ['trace', 'debug', 'info', 'warn', 'error'],
      default: 'info',
      describe: 'Log level',
    })
    .fail((msg, err) => {
      // yargs messages span lines ("Invalid values:\n  Argument: ..."); the CLI prints one.
      if (err) throw err;
      if (positional && msg.startsWith('Not enough non-option arguments')) throw new UsageError(`the ${positional} argument is required`);
      throw new UsageError(msg.replace(/\s*\n\s*/g, ' ').trim());
    });
}

/** Unsigned integer from "0x..." hex or decimal, like upstream's chunk-size/batch-size parsers. */
export function parseNumberArg(value: string, flag: string): number {
  const v = value.trim();
  let n: number;
  if (/^0[xX][0-9a-fA-F]+$/.test(v)) n = parseInt(v.slice(2), 16);
  else if (/^\d+$/.test(v)) n = parseInt(v, 10);
  else throw new UsageError(`invalid ${flag} ${JSON.stringify(value)}: expected a decimal or 0x-prefixed hex number`);
  if (!Number.isSafeInteger(n)) throw new UsageError(`invalid ${flag} ${JSON.stringify(value)}: too large`);
  return n;
}

/** Messages at or above `level` go to stderr, or appended to --log-file when given. */
export class CliLog {
  private readonly _rank: number;
  private readonly _write: (line: string) => void;

  constructor(level: string | undefined, logFile?: string) {
    this._rank = ['trace', 'debug', 'info', 'warn', 'error'].indexOf(level ?? 'info');
    this._write = logFile === undefined ? (l): void => void process.stderr.write(l) : (l): void => appendFileSync(logFile, l);
  }

  static fromArgs(args: Record<string, unknown>): CliLog {
    return new CliLog(asString(args['log-level']), asString(args['log-file']));
  }

  info(msg: string): void {
    if (this._rank <= 2) this._write(`${msg}\n`);
  }

  warn(msg: string): void {
    if (this._rank <= 3) this._write(`nydus-image: warning: ${msg}\n`);
  }
}

/** An error as a nydus-image user reads it: where the reader needs more, name the flag that gives it. */
export function userMessage(err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err);
  return NydusError.is(err) && err.code === 'ERR_RAFS_BLOB_META_REQUIRED' ? `${msg}: give the directory holding it with --blob-dir (-D)` : msg;
}

export function asString(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}
