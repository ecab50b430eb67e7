/**
 * The nydusd command line (yargs), with upstream's names, aliases and defaults
 * (src/bin/nydusd/main.rs; reference/nydusd-cli-api.md §1.2) plus the vhost-user backend
 * conventions (--socket-path, --fd, --print-capabilities) and --log-format (ours).
 *
 * Flags of features that are not built yet are parsed so they can be refused by name
 * (nydusd-options.ts), never silently ignored.
 */
import yargs from 'yargs';
import type { Argv } from 'yargs';

import { UsageError } from '../util/errors.js';

export const kSubcommands = ['fuse', 'virtiofs', 'singleton', 'nbd', 'uffd'] as const;

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
  return y
    .parserConfiguration({ 'duplicate-arguments-array': false, 'boolean-negation': false, 'strip-aliased': true })
    .option('config', { alias: 'C', type: 'string', describe: 'configuration file (v1 JSON, v2 JSON or TOML)' })
    .option('bootstrap', { alias: 'B', type: 'string', describe: 'RAFS metadata (bootstrap) file' })
    .option('localfs-dir', {
      alias: 'D',
      type: 'string',
      describe: 'blob directory: enables the localfs backend and a blob cache in the same directory (instead of --config)',
    })
    .option('mountpoint', { alias: 'M', type: 'string', describe: 'FUSE mountpoint' })
    .option('sock', { alias: 'socket-path', type: 'string', describe: 'vhost-user socket to create (virtio-fs)' })
    .option('fd', { type: 'number', describe: 'already-listening vhost-user socket inherited from the parent (virtio-fs)' })
    .option('print-capabilities', { type: 'boolean', describe: 'print the vhost-user backend capabilities (JSON) and exit' })
    .option('fuse-threads', { alias: 'thread-num', type: 'number', default: 4, describe: 'FUSE worker threads, 1..1024' })
    .option('log-level', {
      alias: 'l',
      choices: ['trace', 'debug', 'info', 'warn', 'error'] as const,
      default: 'info' as const,
      describe: 'log level',
    })
    .option('log-file', { alias: 'L', type: 'string', describe: 'log to this file (JSON lines; ".log" appended when no extension)' })
    .option('log-format', { choices: ['text', 'json'] as const, default: 'text' as const, describe: 'format of log lines on stderr' })
    .option('log-rotation-size', { type: 'number', default: 0, describe: 'rotate --log-file at this many MiB (0: never)' })
    .option('rlimit-nofile', { type: 'number', default: 1000000, describe: 'raise RLIMIT_NOFILE to this (0: leave unchanged)' })
    .option('id', { type: 'string', describe: 'service instance identifier (requires --supervisor)' })
    .option('supervisor', { type: 'string', describe: 'supervisor socket for live upgrade (requires --id)' })
    .option('virtual-mountpoint', { alias: 'm', type: 'string', default: '/', describe: 'path of the image inside the filesystem' })
    .option('failover-policy', {
      choices: ['none', 'resend', 'flush'] as const,
      default: 'resend' as const,
      describe: 'FUSE failover policy (only used with a supervisor)',
    })
    // Recognised so they can be refused clearly (later work).
    .option('apisock', { alias: 'A', type: 'string', describe: 'API socket (not supported yet)' })
    .option('upgrade', { type: 'boolean', describe: 'start in upgrade mode (not supported yet)' })
    .option('writable', { type: 'boolean', describe: 'read-write mount (not supported yet)' })
    .option('prefetch-files', { type: 'string', describe: 'file listing paths to prefetch (not supported yet)' })
    .option('shared-dir', { alias: 's', type: 'string', describe: 'passthrough directory (not supported yet)' })
    .option('hybrid-mode', { type: 'boolean', describe: 'RAFS and passthroughfs together (not supported yet)' })
    .option('dedup-db', { type: 'string', describe: 'chunk dedup database (not supported yet)' })
    .option('fscache', { alias: 'F', type: 'string', hidden: true })
    .option('fscache-tag', { type: 'string', hidden: true })
    .option('fscache-threads', { type: 'number', hidden: true })
    .option('threads', { type: 'number', hidden: true })
    .conflicts('localfs-dir', 'config')
    .conflicts('bootstrap', 'shared-dir')
    .implies('id', 'supervisor')
    .implies('supervisor', 'id')
    .version(false)
    .option('version', { alias: 'V', type: 'boolean', describe: 'print version information' })
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
