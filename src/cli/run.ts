/**
 * Process wrapper shared by the executables: runs a CLI main, maps errors to exit codes
 * (2 usage/config/not supported, 1 runtime failure) and prints the reason as one line.
 */
import { NydusError } from '../util/errors.js';

const kUsageCodes = new Set(['ERR_USAGE', 'ERR_CONFIG', 'ERR_NOT_SUPPORTED']);

export function exitCodeFor(err: unknown): number {
  return NydusError.is(err) && kUsageCodes.has(err.code) ? 2 : 1;
}

export function runMain(program: string, main: (argv: string[]) => Promise<number>): void {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      const message = err instanceof Error ? err.message : String(err);
      process.stderr.write(`${program}: ${message}\n`);
      if (process.env['NYDUS_DEBUG_STACK'] && err instanceof Error && err.stack) {
        process.stderr.write(`${err.stack}\n`);
      }
      process.exitCode = exitCodeFor(err);
    },
  );
}
