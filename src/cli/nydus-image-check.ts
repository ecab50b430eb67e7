/**
 * `nydus-image check`: walks every inode of an image (attributes, directory entries, symlink
 * targets, xattrs, chunk lists), checks chunk lists against file sizes and blob tables, v5 inode
 * digests, and — with `--blob-dir` — reads every chunk from its blob, decompresses it and
 * verifies its digest. Problems are collected rather than stopping at the first; any problem
 * means exit status 1 after a list on stderr. On success it prints upstream's summary.
 */
import { existsSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { BlobFile, chunkDigest, isDotOrDotDot, openBootstrap, readChunkData, type BlobInfo, type ChunkInfo, type RafsImage } from '../rafs/index.js';
import { NydusError, NotSupportedError, UsageError } from '../util/errors.js';
import { fileType, S_IFDIR, S_IFLNK, S_IFREG } from '../util/mode-bits.js';
import { asString, baseParser, userMessage } from './nydus-image-common.js';
import { flagNames, kBlobFeatureNames, showBytes } from './nydus-image-inspect.js';
import { buildInfo } from './version.js';

function parser(argv: string[]) {
  return baseParser(argv, '$0 check [options] <BOOTSTRAP>\n\nValidate RAFS filesystem metadata and, with --blob-dir, every data chunk')
    .command('$0 [BOOTSTRAP]', false)
    .positional('BOOTSTRAP', { type: 'string', describe: 'File path of RAFS metadata (or an inline-meta blob)' })
    .option('bootstrap', { alias: 'B', type: 'string', describe: '[Deprecated] File path of RAFS meta blob/bootstrap' })
    .option('blob-dir', { alias: 'D', type: 'string', describe: 'Directory holding the data blobs: verify every chunk' })
    .option('config', { alias: 'C', type: 'string', describe: 'Configuration file for the storage backend' })
    .option('verbose', { alias: 'v', type: 'boolean', describe: 'Print every inode as it is checked' })
    .option('output-json', { alias: 'J', type: 'string', describe: 'File path to save operation result in JSON format' })
    .conflicts('BOOTSTRAP', 'bootstrap');
}

export interface CheckResult {
  problems: string[];
  inodes: number;
  chunksVerified: number;
}

const kMaxProblems = 1000;

export function checkImage(image: RafsImage, blobDir: string | undefined, log?: (line: string) => void): CheckResult {
  const problems: string[] = [];
  const problem = (msg: string): void => {
    if (problems.length < kMaxProblems) problems.push(msg);
  };
  const blobs = image.blobs;
  const files = new Map<number, BlobFile | undefined>();
  const blobFile = (b: BlobInfo): BlobFile | undefined => {
    if (files.has(b.index)) return files.get(b.index);
    let f: BlobFile | undefined;
    const path = join(blobDir!, b.blobId);
    if (!existsSync(path)) problem(`blob ${b.index} (${b.blobId}): not found in ${blobDir!}`);
    else if (statSync(path).size < b.compressedSize) problem(`blob ${b.index} (${b.blobId}): file has ${statSync(path).size} bytes, the image says ${b.compressedSize}`);
    else f = new BlobFile(path);
    files.set(b.index, f);
    return f;
  };
  const verified = new Set<string>();
  let inodes = 0;
  const seen = new Set<number>();
  const digests = new Map<number, Buffer>();
  const v5 = image.super.version === 5;
  const hash = (parts: Buffer[]): Buffer => chunkDigest(image.super.digester, Buffer.concat(parts));

  // Post-order over directories so v5 directory digests can use their children's.
  const visit = (path: Buffer, ref: number): Buffer | undefined => {
    const where = showBytes(path);
    try {
      const a = image.getAttr(ref);
      inodes++;
      log?.(`${where}: ref ${ref} mode 0${a.mode.toString(8)} size ${a.size}`);
      for (const n of image.listXattrs(ref)) if (image.getXattr(ref, n) === undefined) problem(`${where}: xattr ${showBytes(n)} is listed but has no value`);
      const type = fileType(a.mode);
      let expect: Buffer | undefined;
      if (type === S_IFDIR) {
        const parts: Buffer[] = [];
        if (seen.has(ref)) {
          problem(`${where}: directory reached twice (cycle)`);
          return undefined;
        }
        seen.add(ref);
        const children: [Buffer, number][] = [];
        image.readDir(ref, 0, (e) => {
          if (!isDotOrDotDot(e.name)) children.push([e.name, e.ref]);
          return true;
        });
        for (let i = 1; i < children.length; i++) {
          if (Buffer.compare(children[i - 1]![0], children[i]![0]) >= 0) problem(`${where}: entries not sorted at ${showBytes(children[i]![0])}`);
        }
        for (const [name, child] of children) {
          const d = visit(Buffer.concat([path.length === 1 ? Buffer.alloc(0) : path, Buffer.from('/'), name]), child);
          if (d) parts.push(d);
        }
        expect = hash(parts);
      } else if (type === S_IFLNK) {
        expect = hash([image.readLink(ref)]);
      } else if (type === S_IFREG) {
        const chunks = image.chunks(ref);
        checkChunks(where, a.size, chunks, blobs, problem);
        expect = hash(chunks.map((c) => c.digest));
        if (blobDir !== undefined) {
          for (const c of chunks) {
            const key = `${c.blobIndex}:${c.chunkIndex}:${c.compressedOffset}`;
            if (verified.has(key)) continue;
            verified.add(key);
            const blob = blobs[c.blobIndex];
            const f = blob && blobFile(blob);
            if (!blob || !f) continue;
            try {
              readChunkData((o, l) => f.read(o, l), c, blob, true);
            } catch (err) {
              problem(`${where}: chunk at file offset ${c.fileOffset}: ${userMessage(err)}`);
            }
          }
        }
      } else {
        expect = hash([]);
      }
      if (v5 && expect) {
        const stored = image.inodeDigest(ref);
        if (stored && !stored.equals(expect)) problem(`${where}: inode digest ${stored.toString('hex')} != computed ${expect.toString('hex')}`);
        digests.set(ref, stored ?? expect);
        return stored ?? expect;
      }
      return expect;
    } catch (err) {
      problem(`${where}: ${userMessage(err)}`);
      return undefined;
    }
  };
  try {
    visit(Buffer.from('/'), image.super.rootRef);
  } finally {
    for (const f of files.values()) f?.close();
  }
  if (problems.length >= kMaxProblems) problems.push(`... stopped listing after ${kMaxProblems} problems`);
  return { problems, inodes, chunksVerified: blobDir !== undefined ? verified.size : 0 };
}

function checkChunks(where: string, size: number, chunks: ChunkInfo[], blobs: readonly BlobInfo[], problem: (m: string) => void): void {
  let end = 0;
  for (const c of chunks) {
    const blob = blobs[c.blobIndex];
    if (!blob) {
      problem(`${where}: chunk at ${c.fileOffset} refers to blob ${c.blobIndex}, the image has ${blobs.length}`);
      continue;
    }
    if (c.chunkIndex >= blob.chunkCount) problem(`${where}: chunk index ${c.chunkIndex} beyond blob ${c.blobIndex}'s ${blob.chunkCount} chunks`);
    if (c.fileOffset < end) problem(`${where}: chunks overlap at file offset ${c.fileOffset}`);
    if (c.fileOffset + c.uncompressedSize > size) problem(`${where}: chunk at ${c.fileOffset} (${c.uncompressedSize} bytes) runs past the file size ${size}`);
    if (blob.compressedSize > 0 && c.compressedOffset + c.compressedSize > blob.compressedSize) {
      problem(`${where}: chunk at ${c.fileOffset} lies outside blob ${c.blobIndex} (${c.compressedOffset}+${c.compressedSize} > ${blob.compressedSize})`);
    }
    end = c.fileOffset + c.uncompressedSize;
  }
}

export async function run(argv: string[]): Promise<number> {
  const args = (await parser(argv).parseAsync()) as Record<string, unknown>;
  if (args['help'] === true) return 0;
  if (args['config'] !== undefined) throw new NotSupportedError('check with a storage backend --config');
  const path = asString(args['BOOTSTRAP']) ?? asString(args['bootstrap']);
  if (path === undefined) throw new UsageError('missing parameter `bootstrap` or `BOOTSTRAP`');
  const blobDir = asString(args['blob-dir']);
  if (blobDir !== undefined && !(existsSync(blobDir) && statSync(blobDir).isDirectory())) throw new UsageError(`--blob-dir ${blobDir} is not a directory`);
  const image = openBootstrap(path, blobDir !== undefined ? { blobDir, chunkTableFallback: true } : { chunkTableFallback: true });
  let result: CheckResult;
  try {
    result = checkImage(image, blobDir, args['verbose'] === true ? (l) => process.stdout.write(`${l}\n`) : undefined);
  } finally {
    image.close();
  }
  if (result.problems.length > 0) {
    for (const p of result.problems) process.stderr.write(`nydus-image: check: ${p}\n`);
    throw new NydusError('ERR_CHECK', `${path}: found ${result.problems.length} problem(s) (listed above)`);
  }
  const lines = ['RAFS filesystem metadata is valid, referenced data blobs: '];
  for (const b of image.blobs) {
    // Chunk data ends where the blob meta begins (minus the "image.blob" tar header if any).
    const dataSize = b.metaCiOffset > 0 ? b.metaCiOffset - ((b.features & 0x1000_0000) !== 0 ? 512 : 0) : b.compressedSize;
    lines.push(
      `\t ${b.index}: ${b.blobId}, compressed data size 0x${dataSize.toString(16)}, compressed file size 0x${b.compressedSize.toString(16)}, ` +
        `uncompressed file size 0x${b.uncompressedSize.toString(16)}, chunks: 0x${b.chunkCount.toString(16)}, features: ${flagNames(b.features, kBlobFeatureNames)}`,
    );
  }
  if (blobDir !== undefined) lines.push(`verified ${result.chunksVerified} chunks in ${blobDir}`);
  process.stdout.write(`${lines.join('\n')}\n`);
  const json = asString(args['output-json']);
  if (json !== undefined) {
    const b = buildInfo();
    writeFileSync(json, JSON.stringify({ version: `${b.package_ver}-${b.git_commit}`, bootstrap: path, blobs: image.blobs.map((x) => x.blobId), trace: {} }));
  }
  return 0;
}
