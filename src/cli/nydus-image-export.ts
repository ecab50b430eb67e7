/**
 * `nydus-image export --block`: a RAFS v6 image as one raw EROFS disk (see
 * src/rafs/export/block.ts). Flags as upstream: --bootstrap/-B with --localfs-dir/-D (also
 * accepted as --blob-dir), --output/-O, --threads (1-32; the export runs on one thread here),
 * --verity. A BlobCacheEntry --config is not supported yet.
 */
import { exportBlockImage } from '../rafs/export/block.js';
import { NotSupportedError, UsageError } from '../util/errors.js';
import { CliLog, asString, baseParser, parseNumberArg } from './nydus-image-common.js';

function parser(argv: string[]) {
  return baseParser(argv, '$0 export --block --bootstrap BOOTSTRAP --localfs-dir DIR [--output DISK] [--verity]\n\nExport RAFS filesystems as raw block disk images')
    .option('block', { type: 'boolean', describe: 'Export RAFS filesystems as raw block disk images' })
    .option('bootstrap', { alias: 'B', type: 'string', describe: 'Bootstrap of the RAFS filesystem to be exported' })
    .option('config', { alias: 'C', type: 'string', describe: 'Configuration file containing a `BlobCacheEntry` object' })
    .option('localfs-dir', { alias: ['D', 'blob-dir'], type: 'string', describe: 'Directory holding the data blobs (localfs backend)' })
    .option('threads', { type: 'string', default: '4', describe: 'Number of worker threads, valid values: [1-32]' })
    .option('output', { alias: 'O', type: 'string', describe: 'File path for saving the exported content' })
    .option('verity', { type: 'boolean', describe: 'Generate dm-verity data for block device' });
}

export async function run(argv: string[]): Promise<number> {
  const args = (await parser(argv).parseAsync()) as Record<string, unknown>;
  if (args['help'] === true) return 0;
  const log = CliLog.fromArgs(args);
  if (args['block'] !== true) throw new UsageError('export needs --block (the only export type)');
  if (asString(args['config']) !== undefined) {
    if (asString(args['localfs-dir']) !== undefined) throw new UsageError('--config conflicts with --localfs-dir');
    throw new NotSupportedError('export with a BlobCacheEntry --config');
  }
  const bootstrap = asString(args['bootstrap']);
  const dir = asString(args['localfs-dir']);
  if (bootstrap === undefined || dir === undefined) {
    throw new UsageError('both option `-C/--config` and `-D/--localfs-dir` are missing; export needs --bootstrap and --localfs-dir');
  }
  const threads = parseNumberArg(asString(args['threads']) ?? '4', '--threads');
  if (threads < 1 || threads > 32) throw new UsageError(`invalid --threads ${threads}: valid values are 1-32`);
  const output = asString(args['output']);
  const result = exportBlockImage({ bootstrap, blobDir: dir, verity: args['verity'] === true, ...(output !== undefined ? { output } : {}) });
  if (result.verity) process.stdout.write(`${result.verity.options}\n`);
  log.info(`exported ${result.blocks} blocks to ${result.output}`);
  return 0;
}
