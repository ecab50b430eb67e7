/**
 * The full nydusd command-line parser (yargs) over the flag table in nydusd-flags.ts: help,
 * unusual spellings and every usage error. Common command lines never get here: main() tries
 * nydusd-fast-args.ts first, which yields to this parser whenever it is not certain.
 *
 * Flags of features that are not built yet are parsed so they can be refused by name
 * (nydusd-options.ts), never silently ignored.
 */
import yargs from 'yargs';
import type { Argv } from 'yargs';

import { UsageError } from '../util/errors.js';
import { kConflicts, kImplies, kNydusdFlags, kSubcommands } from './nydusd-flags.js';

const kCommandHelp: Record<(typeof kSubcommands)[number], string> = {
  fuse: 'serve the image through /dev/fuse at --mountpoint (the default)',
  virtiofs: 'serve the image as a vhost-user virtio-fs backend on --sock',
  singleton: 'host blob cache / fscache services (not supported yet)',
  nbd: 'export a RAFS v6 image through NBD (not supported yet)',
  uffd: 'export a RAFS v6 image through userfaultfd (not supported yet)',
};

/** True when the command line asks for help (only then are the subcommands described). */
function wantsHelp(argv: string[]): boolean {
  return argv.some((a) => a === '--help' || a === '-h' || (/^-[a-zA-Z]+$/.test(a) && a.includes('h')));
}

export function nydusdParser(argv: string[]): Argv {
  let y = yargs(argv)
    .scriptName('nydusd')
    .usage(
      [
        'Serve a Nydus (RAFS) image over FUSE or as a vhost-user virtio-fs backend.',
        '',
        '  $0 [fuse] --mountpoint M --bootstrap B (--config C | --localfs-dir D)',
        '  $0 [virtiofs] --sock S --bootstrap B (--config C | --localfs-dir D)',
      ].join('\n'),
    );
  // The subcommands have no handlers: nydusd-options.ts reads them from `_`. Registered with
  // yargs, running one makes yargs render and cache the whole help text (~30 ms of a ~300 ms
  // start, most of it string-width measuring), so they are described only when help is shown.
  if (wantsHelp(argv)) {
    for (const c of kSubcommands) y = y.command(c, kCommandHelp[c]);
  }
  // yargs' own --version is replaced by ours (in the table), which prints the build info.
  y = y
    .parserConfiguration({ 'duplicate-arguments-array': false, 'boolean-negation': false, 'strip-aliased': true })
    .version(false);
  for (const [name, spec] of Object.entries(kNydusdFlags)) y = y.option(name, spec);
  for (const [a, b] of kConflicts) y = y.conflicts(a, b);
  for (const [a, b] of kImplies) y = y.implies(a, b);
  return y
    .help('help')
    .alias('help', 'h')
    .strictOptions(true)
    .wrap(Math.min(110, process.stdout.columns || 110))
    .exitProcess(false)
    .fail((msg, err) => {
      if (err) throw err;
      // yargs says "Unknown argument: x"; name it as the flag the user typed.
      const unknown = /^Unknown arguments?: (.*)$/.exec(msg);
      if (unknown?.[1]) {
        const flags = unknown[1].split(', ').map((f) => (f.length === 1 ? `-${f}` : `--${f}`));
        throw new UsageError(`unknown option ${flags.join(', ')}; see --help`);
      }
      throw new UsageError(msg.replace(/\s*\n\s*/g, ' '));
    });
}
