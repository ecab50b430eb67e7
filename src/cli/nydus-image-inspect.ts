/**
 * `nydus-image inspect`: what an image holds — superblock, blobs, prefetch table and the tree
 * with every file's chunks — as text, or as one JSON document with `--json`. Upstream's request
 * mode (`-R stats|blobs|prefetch|ls [DIR]|stat PATH`) prints the same JSON answers; its
 * interactive prompt is not offered (the full report replaces it). Images whose chunk info lives
 * in the blobs (INLINED_CHUNK_DIGEST) list it from the blob meta with `--blob-dir`, else from the
 * bootstrap's chunk info table, as upstream does.
 */
import { isDotOrDotDot, openBootstrap, type ChunkInfo, type InodeAttr, type RafsImage } from '../rafs/index.js';
import { NydusError, NotSupportedError, UsageError } from '../util/errors.js';
import { fileType, kFileTypeNames } from '../util/mode-bits.js';
import { asString, baseParser, userMessage } from './nydus-image-common.js';

function parser(argv: string[]) {
  return baseParser(argv, '$0 inspect [options] <BOOTSTRAP>\n\nInspect RAFS filesystem metadata')
    .command('$0 [BOOTSTRAP]', false)
    .positional('BOOTSTRAP', { type: 'string', describe: 'File path of RAFS metadata (or an inline-meta blob)' })
    .option('bootstrap', { alias: 'B', type: 'string', describe: '[Deprecated] File path of RAFS meta blob/bootstrap' })
    .option('blob-dir', { alias: 'D', type: 'string', describe: 'Directory holding the data blobs (and blob meta)' })
    .option('config', { alias: 'C', type: 'string', describe: 'Configuration file for the storage backend' })
    .option('request', { alias: 'R', type: 'string', describe: 'Request mode: stats, blobs, prefetch, ls [DIR], stat PATH' })
    .option('json', { type: 'boolean', describe: 'Print the whole report as JSON' })
    .conflicts('BOOTSTRAP', 'bootstrap');
}

export const kSuperFlagNames: [number, string][] = [
  [0x1, 'COMPRESSION_NONE'], [0x2, 'COMPRESSION_LZ4'], [0x4, 'HASH_BLAKE3'], [0x8, 'HASH_SHA256'],
  [0x10, 'EXPLICIT_UID_GID'], [0x20, 'HAS_XATTR'], [0x40, 'COMPRESSION_GZIP'], [0x80, 'COMPRESSION_ZSTD'],
  [0x100, 'INLINED_CHUNK_DIGEST'], [0x200, 'TARFS_MODE'], [0x0100_0000, 'ENCRYPTION_NONE'], [0x0200_0000, 'ENCRYPTION_ASE_128_XTS'],
];

export const kBlobFeatureNames: [number, string][] = [
  [0x1, 'aligned'], [0x2, 'inlined-fs-meta'], [0x4, 'chunk-info-v2'], [0x8, 'zran'], [0x10, 'separate'],
  [0x20, 'inlined-chunk-digest'], [0x40, 'tarfs'], [0x80, 'batch'], [0x100, 'encrypted'],
  [0x200, 'chunkdict-generated'], [0x400, 'separated-prefetch'], [0x800, 'external'],
  [0x1000_0000, 'tar-header'], [0x2000_0000, 'toc'], [0x4000_0000, 'cap-tar-toc'],
];

export function flagNames(v: number, names: [number, string][]): string {
  const out = names.filter(([bit]) => (v & bit) !== 0).map(([, n]) => n);
  return out.length > 0 ? out.join('|') : '-';
}

/** Text form of a byte string (JSON-escaped when it is not valid UTF-8). */
export function showBytes(b: Buffer): string {
  const s = b.toString('utf8');
  return Buffer.from(s, 'utf8').equals(b) ? s : JSON.stringify(b.toString('latin1'));
}

const hex = (n: number): string => `0x${n.toString(16)}`;

interface EntryReport {
  path: string;
  ref: number;
  type: string;
  mode: string;
  uid: number;
  gid: number;
  size: number;
  nlink: number;
  ino: number;
  mtime: string;
  rdev?: number;
  target?: string;
  xattrs?: Record<string, string>;
  chunks?: ReturnType<typeof chunkJson>[] | string;
}

function chunkJson(c: ChunkInfo): Record<string, number | string | boolean> {
  return {
    file_offset: c.fileOffset,
    blob_index: c.blobIndex,
    chunk_index: c.chunkIndex,
    compressed_offset: c.compressedOffset,
    compressed_size: c.compressedSize,
    uncompressed_offset: c.uncompressedOffset,
    uncompressed_size: c.uncompressedSize,
    compressed: c.compressed,
    digest: c.digest.toString('hex'),
  };
}

/** Pre-order walk with byte-exact paths (readDir names are Buffers). */
export function walkImage(image: RafsImage, visit: (path: Buffer, ref: number, attr: InodeAttr) => void): void {
  const stack: [Buffer, number][] = [[Buffer.from('/'), image.super.rootRef]];
  const seenDirs = new Set<number>();
  while (stack.length > 0) {
    const [path, ref] = stack.pop()!;
    const attr = image.getAttr(ref);
    visit(path, ref, attr);
    if (!image.isDir(ref) || seenDirs.has(ref)) continue;
    seenDirs.add(ref);
    const children: [Buffer, number][] = [];
    image.readDir(ref, 0, (e) => {
      if (!isDotOrDotDot(e.name)) children.push([Buffer.concat([path.length === 1 ? Buffer.alloc(0) : path, Buffer.from('/'), e.name]), e.ref]);
      return true;
    });
    for (let i = children.length - 1; i >= 0; i--) stack.push(children[i]!);
  }
}

function entryReport(image: RafsImage, path: Buffer, ref: number, a: InodeAttr): EntryReport {
  const type = kFileTypeNames[fileType(a.mode)] ?? 'unknown';
  const r: EntryReport = {
    path: showBytes(path),
    ref,
    type,
    mode: `0${(a.mode & 0o7777).toString(8)}`,
    uid: a.uid,
    gid: a.gid,
    size: a.size,
    nlink: a.nlink,
    ino: a.ino,
    mtime: `${a.mtimeSec}.${String(a.mtimeNsec).padStart(9, '0')}`,
  };
  if (type === 'chr' || type === 'blk') r.rdev = a.rdev;
  if (type === 'symlink') r.target = showBytes(image.readLink(ref));
  const names = image.listXattrs(ref);
  if (names.length > 0) {
    r.xattrs = {};
    for (const n of names) r.xattrs[showBytes(n)] = (image.getXattr(ref, n) ?? Buffer.alloc(0)).toString('hex');
  }
  if (type === 'file') {
    try {
      r.chunks = image.chunks(ref).map(chunkJson);
    } catch (err) {
      r.chunks = `unavailable: ${userMessage(err)}`;
    }
  }
  return r;
}

function superJson(image: RafsImage): Record<string, unknown> {
  const s = image.super;
  return { ...s, flags_names: flagNames(s.flags, kSuperFlagNames), prefetch: image.prefetchRefs() };
}

function blobsJson(image: RafsImage): Record<string, unknown>[] {
  return image.blobs.map((b) => ({ ...b, tocDigest: b.tocDigest.toString('hex'), features_names: flagNames(b.features, kBlobFeatureNames) }));
}

function resolve(image: RafsImage, path: string): number {
  let ref = image.super.rootRef;
  for (const part of path.split('/').filter((p) => p && p !== '.')) {
    const next = image.lookup(ref, Buffer.from(part));
    if (next === undefined) throw new NydusError('ERR_NOT_FOUND', `${path}: no such file or directory in the image`);
    ref = next;
  }
  return ref;
}

function request(image: RafsImage, req: string): unknown {
  const [cmd, ...rest] = req.trim().split(/\s+/);
  const arg = rest.join(' ');
  switch (cmd ?? '') {
    case 'stats':
      return { version: image.super.version, inodes_count: image.super.inodeCount, flags: image.super.flags, chunk_size: image.super.chunkSize };
    case 'blobs':
      return blobsJson(image);
    case 'prefetch': {
      const paths = new Map<number, string>();
      walkImage(image, (p, ref) => paths.set(ref, showBytes(p)));
      return image.prefetchRefs().map((ref) => ({ inode: ref, path: paths.get(ref) ?? null }));
    }
    case 'ls': {
      const dir = resolve(image, arg || '/');
      const out: { name: string; inode: number }[] = [];
      image.readDir(dir, 0, (e) => out.push({ name: showBytes(e.name), inode: e.ref }) > 0);
      return out;
    }
    case 'stat': {
      if (!arg) throw new UsageError('request "stat" needs a path');
      const ref = resolve(image, arg);
      return entryReport(image, Buffer.from(arg), ref, image.getAttr(ref));
    }
    default:
      throw new UsageError(`unsupported request ${JSON.stringify(req)} (stats, blobs, prefetch, ls [DIR], stat PATH)`);
  }
}

function printText(image: RafsImage, out: (l: string) => void): void {
  const s = image.super;
  out(`Version:            ${s.version}`);
  out(`Flags:              ${hex(s.flags)} (${flagNames(s.flags, kSuperFlagNames)})`);
  out(`Chunk size:         ${hex(s.chunkSize)}`);
  out(`Inodes:             ${s.inodeCount}`);
  out(`Root inode:         ${s.rootRef}`);
  out(`Metadata size:      ${s.metaSize}`);
  out(`Blobs:              ${image.blobs.length}`);
  for (const b of image.blobs) {
    out(`  ${b.index}: ${b.blobId} chunks ${b.chunkCount}, compressed ${hex(b.compressedSize)}, uncompressed ${hex(b.uncompressedSize)}, ${b.compressor}/${b.digester}, features ${flagNames(b.features, kBlobFeatureNames)}`);
  }
  out(`Prefetch table:     ${image.prefetchRefs().join(' ') || '-'}`);
  out('Tree:');
  walkImage(image, (path, ref, a) => {
    const r = entryReport(image, path, ref, a);
    out(`  ${r.type.padEnd(7)} ${r.mode} ${r.uid}:${r.gid} nlink ${r.nlink} size ${r.size} mtime ${r.mtime} ${r.path}${r.target !== undefined ? ` -> ${r.target}` : ''}`);
    for (const [n, v] of Object.entries(r.xattrs ?? {})) out(`      xattr ${n} = ${v}`);
    if (typeof r.chunks === 'string') out(`      chunks ${r.chunks}`);
    else for (const c of r.chunks ?? []) out(`      chunk @${hex(c['file_offset'] as number)}: blob ${c['blob_index']} #${c['chunk_index']} compressed ${hex(c['compressed_offset'] as number)}+${hex(c['compressed_size'] as number)} uncompressed ${hex(c['uncompressed_offset'] as number)}+${hex(c['uncompressed_size'] as number)} ${c['digest']}`);
  });
}

export async function run(argv: string[]): Promise<number> {
  const args = (await parser(argv).parseAsync()) as Record<string, unknown>;
  if (args['help'] === true) return 0;
  if (args['config'] !== undefined) throw new NotSupportedError('inspect with a storage backend --config');
  const path = asString(args['BOOTSTRAP']) ?? asString(args['bootstrap']);
  if (path === undefined) throw new UsageError('missing parameter `bootstrap` or `BOOTSTRAP`');
  const blobDir = asString(args['blob-dir']);
  const image = openBootstrap(path, blobDir !== undefined ? { blobDir, chunkTableFallback: true } : { chunkTableFallback: true });
  try {
    const write = (s: string): void => {
      process.stdout.write(s);
    };
    const req = asString(args['request']);
    if (req !== undefined) {
      write(`${JSON.stringify(request(image, req))}\n`);
    } else if (args['json'] === true) {
      const tree: EntryReport[] = [];
      walkImage(image, (p, ref, a) => tree.push(entryReport(image, p, ref, a)));
      write(`${JSON.stringify({ super: superJson(image), blobs: blobsJson(image), tree }, null, 2)}\n`);
    } else {
      const lines: string[] = [];
      printText(image, (l) => lines.push(l));
      write(`${lines.join('\n')}\n`);
    }
  } finally {
    image.close();
  }
  return 0;
}
