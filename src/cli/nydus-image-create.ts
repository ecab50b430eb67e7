/**
 * `nydus-image create`: flags, defaults, aliases and conflicts as upstream's clap definition
 * (v6, zstd, blake3, 1 MiB chunks; --bootstrap or --blob-dir; --blob or --blob-dir). Conversion
 * types other than dir-rafs/tar-rafs/targz-rafs, and features that need another image (chunk
 * dict, parent bootstrap) or encryption, are recognised and refused as "not supported yet".
 */
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';

import { createImage, defaultBuildOptions, type BuildOptions } from '../rafs/builder/index.js';
import { ProgressBar } from '../rafs/builder/progress.js';
import { NotSupportedError, UsageError } from '../util/errors.js';
import { CliLog, asString, baseParser, parseNumberArg } from './nydus-image-common.js';
import { buildInfo } from './version.js';

const kTypes = [
  'directory',
  'dir-rafs',
  'estargz-rafs',
  'estargz-ref',
  'estargztoc-ref',
  'tar-rafs',
  'tar-tarfs',
  'targz-rafs',
  'targz-ref',
  'stargz_index',
] as const;

function parser(argv: string[]) {
  return baseParser(argv, '$0 create [options] <SOURCE>\n\nCreate RAFS filesystems from directories, tar files or OCI images', 'SOURCE')
    .command('$0 <SOURCE>', false)
    .positional('SOURCE', { type: 'string', describe: 'source from which to build the RAFS filesystem' })
    .option('type', { alias: ['t', 'source-type'], type: 'string', choices: kTypes, default: 'dir-rafs', describe: 'Conversion type' })
    .option('bootstrap', { alias: 'B', type: 'string', describe: 'File path to save the generated RAFS metadata blob' })
    .option('blob-dir', { alias: 'D', type: 'string', describe: 'Directory path to save generated RAFS metadata and data blobs' })
    .option('blob', { alias: 'b', type: 'string', describe: 'File path to save the generated RAFS data blob' })
    .option('blob-inline-meta', { alias: 'inline-bootstrap', type: 'boolean', describe: 'Inline RAFS metadata and blob metadata into the data blob' })
    .option('blob-id', { type: 'string', describe: 'OSS object id for the generated RAFS data blob' })
    .option('blob-data-size', { type: 'string', describe: "Set data blob size for 'estargztoc-ref' conversion" })
    .option('blob-offset', { type: 'string', default: '0', hidden: true })
    .option('chunk-size', { type: 'string', describe: 'Size of data chunks: power of two in 0x1000-0x1000000' })
    .option('batch-size', { type: 'string', default: '0', describe: 'Batch size to merge small chunks (0 = off)' })
    .option('compressor', { type: 'string', choices: ['none', 'lz4_block', 'zstd'], default: 'zstd', describe: 'Algorithm to compress data chunks' })
    .option('digester', { type: 'string', choices: ['blake3', 'sha256'], default: 'blake3', describe: 'Algorithm to digest data chunks' })
    .option('config', { alias: 'C', type: 'string', describe: 'Configuration file for storage backend, cache and RAFS' })
    .option('fs-version', { alias: 'v', type: 'string', choices: ['5', '6'], default: '6', describe: 'RAFS format version number' })
    .option('features', { type: 'string', describe: 'Enable features: blob-toc' })
    .option('chunk-dict', { type: 'string', describe: 'File path of chunk dictionary for data deduplication' })
    .option('parent-bootstrap', { type: 'string', describe: 'File path of the parent/referenced RAFS metadata blob' })
    .option('aligned-chunk', { type: 'boolean', describe: 'Align uncompressed data chunks to 4K, only for RAFS V5' })
    .option('repeatable', { type: 'boolean', describe: 'Generate reproducible RAFS metadata (no uid/gid)' })
    .option('disable-check', { type: 'boolean', hidden: true })
    .option('whiteout-spec', { type: 'string', choices: ['oci', 'overlayfs', 'none'], default: 'oci', describe: 'Type of whiteout specification' })
    .option('prefetch-policy', { type: 'string', choices: ['fs', 'blob', 'none'], default: 'none', describe: 'Data prefetch policy (paths are read from stdin or --prefetch-files)' })
    .option('prefetch-files', { type: 'string', describe: 'File listing absolute paths to prefetch, one per line ("-" = stdin)' })
    .option('output-json', { alias: 'J', type: 'string', describe: 'File path to save operation result in JSON format' })
    .option('encrypt', { alias: 'E', type: 'boolean', describe: 'Encrypt the generated RAFS metadata and data blobs' })
    .conflicts('bootstrap', 'blob-inline-meta')
    .conflicts('blob-inline-meta', 'blob-id');
}

function splitLines(data: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let start = 0;
  for (let i = 0; i <= data.length; i++) {
    if (i === data.length || data[i] === 0x0a) {
      if (i > start) out.push(data.subarray(start, i));
      start = i + 1;
    }
  }
  return out;
}

function readPrefetchList(file: string | undefined): Buffer[] {
  if (file === undefined && process.stdin.isTTY) {
    throw new UsageError('--prefetch-policy reads the paths to prefetch from stdin (one per line); pipe a list or pass --prefetch-files FILE');
  }
  const src = file === undefined || file === '-' ? 0 : file;
  try {
    return splitLines(readFileSync(src));
  } catch (err) {
    throw new UsageError(`cannot read the prefetch list ${file ?? 'from stdin'}: ${(err as Error).message}`);
  }
}

export function optionsFromArgs(args: Record<string, unknown>): BuildOptions {
  const source = asString(args['SOURCE'])!;
  const type = asString(args['type'])!;
  const opts = defaultBuildOptions(source);
  if (type === 'dir-rafs' || type === 'directory') opts.sourceType = 'dir';
  else if (type === 'tar-rafs') opts.sourceType = 'tar';
  else if (type === 'targz-rafs') opts.sourceType = 'targz';
  else throw new NotSupportedError(`--type ${type}`);
  for (const flag of ['chunk-dict', 'parent-bootstrap', 'config', 'blob-data-size']) {
    if (args[flag] !== undefined) throw new NotSupportedError(`--${flag}`);
  }
  if (args['encrypt'] === true) throw new NotSupportedError('--encrypt');
  if (parseNumberArg(asString(args['batch-size']) ?? '0', '--batch-size') !== 0) throw new NotSupportedError('a non-zero --batch-size');
  if (parseNumberArg(asString(args['blob-offset']) ?? '0', '--blob-offset') !== 0) throw new NotSupportedError('a non-zero --blob-offset');

  opts.fsVersion = asString(args['fs-version']) === '5' ? 5 : 6;
  opts.compressor = asString(args['compressor']) as BuildOptions['compressor'];
  opts.digester = asString(args['digester']) as BuildOptions['digester'];
  const chunkSize = asString(args['chunk-size']);
  if (chunkSize !== undefined) {
    const cs = parseNumberArg(chunkSize, '--chunk-size');
    if (cs < 0x1000 || cs > 0x1000000 || (cs & (cs - 1)) !== 0) {
      throw new UsageError(`invalid chunk size: ${cs}: must be a power of two between 0x1000 and 0x1000000`);
    }
    opts.chunkSize = cs;
  }
  let explicitToc = false;
  for (const f of (asString(args['features']) ?? '').split(',').map((s) => s.trim()).filter(Boolean)) {
    if (f !== 'blob-toc') throw new UsageError(`unsupported feature \`${f}\` (supported: blob-toc)`);
    explicitToc = true;
  }
  if (explicitToc && opts.fsVersion === 5) throw new UsageError("`--features blob-toc` can't be used with `--fs-version 5`");
  // v6 blobs always carry the TOC (chunk digests, CI location) so readers need nothing but the
  // blob; upstream makes it opt-in, our output includes it by default. v5 has no TOC.
  opts.blobToc = opts.fsVersion === 6;
  opts.blobInlineMeta = args['blob-inline-meta'] === true;
  const bootstrap = asString(args['bootstrap']);
  const blobDir = asString(args['blob-dir']);
  const blob = asString(args['blob']);
  const blobId = asString(args['blob-id']);
  if (bootstrap !== undefined) opts.bootstrapPath = bootstrap;
  if (blobDir !== undefined) opts.blobDir = blobDir;
  if (blob !== undefined) opts.blobPath = blob;
  if (blobId !== undefined) opts.blobId = blobId;
  if (bootstrap === undefined && blobDir === undefined && !opts.blobInlineMeta) {
    throw new UsageError('both --bootstrap and --blob-dir are missing, please specify one to store the generated metadata blob file');
  }
  if (blob === undefined && blobDir === undefined) {
    throw new UsageError('both --blob and --blob-dir are missing, please specify one to store the generated data blob file');
  }
  if (blobId !== undefined && (blobId.length > 255 || blobId.length === 0 || blobId.includes('/'))) {
    throw new UsageError(`invalid --blob-id ${JSON.stringify(blobId)}`);
  }
  opts.alignedChunk = args['aligned-chunk'] === true;
  opts.explicitUidGid = args['repeatable'] !== true;
  opts.whiteoutSpec = asString(args['whiteout-spec']) as BuildOptions['whiteoutSpec'];
  opts.prefetchPolicy = asString(args['prefetch-policy']) as BuildOptions['prefetchPolicy'];
  const prefetchFiles = asString(args['prefetch-files']);
  if (opts.prefetchPolicy !== 'none') opts.prefetchPatterns = readPrefetchList(prefetchFiles);
  else if (prefetchFiles !== undefined) throw new UsageError('--prefetch-files requires --prefetch-policy fs or blob');
  return opts;
}

/** --blob-dir is created when missing (with its parents), as upstream does. */
function checkPaths(opts: BuildOptions): void {
  const dir = opts.blobDir;
  if (dir === undefined) return;
  if (existsSync(dir)) {
    if (!statSync(dir).isDirectory()) throw new UsageError(`--blob-dir ${dir}: exists and is not a directory`);
    return;
  }
  // One level at a time: Node's recursive mkdir spins forever on some paths (under /proc).
  const missing: string[] = [];
  for (let p = resolve(dir); !existsSync(p) && dirname(p) !== p; p = dirname(p)) missing.unshift(p);
  try {
    for (const p of missing) mkdirSync(p);
  } catch (err) {
    throw new UsageError(`--blob-dir ${dir}: cannot create the directory (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
}

export async function run(argv: string[]): Promise<number> {
  const args = (await parser(argv).parseAsync()) as Record<string, unknown>;
  if (args['help'] === true) return 0;
  const log = CliLog.fromArgs(args);
  const opts = optionsFromArgs(args);
  checkPaths(opts);
  const bar = process.stderr.isTTY ? new ProgressBar(process.stderr) : undefined;
  if (bar) opts.onProgress = (p): void => bar.update(p);
  opts.onWarning = (m): void => {
    bar?.clear();
    log.warn(m);
  };
  let result;
  try {
    result = await createImage(opts);
  } finally {
    bar?.clear();
  }
  log.info(
    `successfully built RAFS filesystem:\nmeta blob path: ${result.bootstrapPath ?? '<none>'}\n` +
      `data blob size: 0x${result.blobSize.toString(16)}\ndata blobs: ${JSON.stringify(result.blobIds)}`,
  );
  const outputJson = asString(args['output-json']);
  if (outputJson !== undefined) {
    const b = buildInfo();
    const out = { version: `${b.package_ver}-${b.git_commit}`, bootstrap: result.bootstrapPath ?? '', blobs: result.blobIds, trace: {} };
    writeFileSync(outputJson, `${JSON.stringify(out, null, 2)}\n`);
  }
  return 0;
}
