/**
 * Process wrapper shared by the executables: runs a CLI main, maps errors to exit codes
 * (2 usage/config/not supported, 1 runtime failure) and prints the reason as one line. Output
 * whose reader went away (`nydus-image check -v | head -1`) is dropped quietly: the command
 * finishes and exits with its own status, and a daemon whose log pipe closed keeps serving.
 */
import { NydusError } from '../util/errors.js';

const kUsageCodes = new Set(['ERR_USAGE', 'ERR_CONFIG', 'ERR_NOT_SUPPORTED']);

export function exitCodeFor(err: unknown): number {
  return NydusError.is(err) && kUsageCodes.has(err.code) ? 2 : 1;
}

/** Errors of a write to a pipe or socket whose reader is gone (the first, and any after it). */
const kGoneReader = new Set(['EPIPE', 'ERR_STREAM_DESTROYED']);

/**
 * Node ignores SIGPIPE, so a write to a closed pipe fails with EPIPE as an 'error' event; with no
 * listener that is an uncaught exception and a stack trace. Only that case is swallowed.
 */
export function dropOutputWhenReaderGone(stream: NodeJS.WriteStream): void {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (!kGoneReader.has(err.code ?? '')) throw err;
  });
}

export function runMain(program: string, main: (argv: string[]) => Promise<number>): void {
  dropOutputWhenReaderGone(process.stdout);
  dropOutputWhenReaderGone(process.stderr);
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
