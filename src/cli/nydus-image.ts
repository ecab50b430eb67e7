/**
 * `nydus-image` command line: build, inspect and check RAFS images. Flags follow upstream
 * nydus-image. The subcommands arrive with the RAFS issue; --help and --version work now.
 */
import yargs from 'yargs';

import { NydusError, UsageError } from '../util/errors.js';
import { versionText } from './version.js';

export async function main(argv: string[]): Promise<number> {
  const parser = yargs(argv)
    .scriptName('nydus-image')
    .usage('$0 <create|inspect|check|export> [options]')
    .command('create <SOURCE>', 'build a RAFS image from a directory or a tar')
    .command('inspect <BOOTSTRAP>', 'print the superblock, blobs and tree of an image')
    .command('check', 'verify an image and its blobs')
    .command('export', 'export an image as a raw EROFS block device')
    .version(false)
    .option('version', { alias: 'V', type: 'boolean', describe: 'print version information' })
    .help('help')
    .alias('help', 'h')
    .exitProcess(false)
    .fail((msg, err) => {
      throw err ?? new UsageError(msg);
    });
  const args = await parser.parseAsync();
  if (args['help'] === true) return 0;
  if (args.version === true) {
    process.stdout.write(`${versionText('nydus-image')}\n`);
    return 0;
  }
  if (args._.length === 0) throw new UsageError('a subcommand is required (create, inspect, check, export); see --help');
  throw new NydusError('ERR_NOT_SUPPORTED', `nydus-image ${String(args._[0])} is not supported yet`);
}
