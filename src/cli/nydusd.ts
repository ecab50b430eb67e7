/**
 * `nydusd` command line. Flags follow upstream nydusd (reference/nydusd-cli-api.md §1.2).
 * The daemon behind them arrives with the daemon issue; until then every run mode exits with a
 * clear "not supported yet" message and status 2, while --help and --version work.
 */
import yargs from 'yargs';

import { NydusError, UsageError } from '../util/errors.js';
import { versionText } from './version.js';

export async function main(argv: string[]): Promise<number> {
  const parser = yargs(argv)
    .scriptName('nydusd')
    .usage('$0 [fuse] --mountpoint M --bootstrap B [--config C]\n$0 virtiofs --sock S --bootstrap B [--config C]')
    .command('fuse', 'serve the image through /dev/fuse at --mountpoint (default mode)')
    .command('virtiofs', 'serve the image as a vhost-user virtio-fs backend on --sock')
    .option('config', { alias: 'C', type: 'string', describe: 'configuration file (v1 JSON, v2 JSON or TOML)' })
    .option('bootstrap', { alias: 'B', type: 'string', describe: 'RAFS bootstrap (metadata) file' })
    .option('mountpoint', { alias: 'M', type: 'string', describe: 'FUSE mountpoint' })
    .option('sock', { type: 'string', describe: 'vhost-user socket path (virtio-fs mode)' })
    .option('log-level', {
      alias: 'l',
      choices: ['trace', 'debug', 'info', 'warn', 'error'] as const,
      default: 'info',
      describe: 'log level',
    })
    .version(false)
    .option('version', { alias: 'V', type: 'boolean', describe: 'print version information' })
    .help('help')
    .alias('help', 'h')
    .strictOptions(false)
    .exitProcess(false)
    .fail((msg, err) => {
      throw err ?? new UsageError(msg);
    });
  const args = await parser.parseAsync();
  if (args['help'] === true) return 0;
  if (args.version === true) {
    process.stdout.write(`${versionText('nydusd')}\n`);
    return 0;
  }
  throw new NydusError('ERR_NOT_SUPPORTED', 'serving images is not supported yet (the daemon is under construction)');
}
