/**
 * `nydus-image` command line: build, inspect, check and export RAFS images. Flags follow
 * upstream nydus-image (src/bin/nydus-image/main.rs) so existing scripts keep working; each
 * subcommand lives in its own `nydus-image-<cmd>.ts`. Bad flags or values raise UsageError
 * (exit 2); failures while doing the work exit 1 (src/cli/run.ts).
 */
import yargs from 'yargs';

import { NotSupportedError, UsageError } from '../util/errors.js';
import { versionText } from './version.js';

const kCommands: Record<string, () => Promise<{ run(argv: string[]): Promise<number> }>> = {
  create: () => import('./nydus-image-create.js'),
  export: () => import('./nydus-image-export.js'),
  inspect: () => import('./nydus-image-inspect.js'),
  check: () => import('./nydus-image-check.js'),
};

const kUnsupported = new Set(['merge', 'compact', 'unpack', 'stat', 'chunkdict']);

/** Global options that take a value (upstream's --log-file/-L, --log-level/-l). */
const kGlobalWithValue = new Set(['-L', '--log-file', '-l', '--log-level']);

function findSubcommand(argv: string[]): number {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (kGlobalWithValue.has(a)) i++;
    else if (!a.startsWith('-')) return i;
  }
  return -1;
}

export async function main(argv: string[]): Promise<number> {
  const at = findSubcommand(argv);
  const cmd = at < 0 ? undefined : argv[at];
  const load = cmd === undefined ? undefined : kCommands[cmd];
  if (load) return (await load()).run([...argv.slice(0, at), ...argv.slice(at + 1)]);
  if (cmd !== undefined && kUnsupported.has(cmd)) throw new NotSupportedError(`nydus-image ${cmd}`);
  const parser = yargs(argv)
    .scriptName('nydus-image')
    .usage('$0 <create|inspect|check|export> [options]\n\nBuild, analyze, inspect or validate RAFS filesystems/Nydus accelerated container images')
    .command('create <SOURCE>', 'create RAFS filesystems from directories or tar files')
    .command('inspect [BOOTSTRAP]', 'inspect RAFS filesystem metadata')
    .command('check [BOOTSTRAP]', 'validate RAFS filesystem metadata and data blobs')
    .command('export', 'export RAFS filesystems as raw block disk images')
    .version(false)
    .option('version', { alias: 'V', type: 'boolean', describe: 'print version information' })
    .help('help')
    .alias('help', 'h')
    .exitProcess(false)
    .fail((msg, err) => {
      // yargs messages span lines ("Invalid values:\n  Argument: ..."); the CLI prints one.
      throw err ?? new UsageError(msg.replace(/\s*\n\s*/g, ' ').trim());
    });
  const args = await parser.parseAsync();
  if (args['help'] === true) return 0;
  if (args.version === true) {
    process.stdout.write(`${versionText('nydus-image')}\n`);
    return 0;
  }
  if (cmd === undefined) throw new UsageError('a subcommand is required (create, inspect, check, export); see --help');
  throw new UsageError(`unknown subcommand ${JSON.stringify(cmd)}; see --help`);
}
