/**
 * The RAFS image builder (`nydus-image create`). Neighbours: src/cli/nydus-image-create.ts above
 * (flags → BuildOptions); the native codecs and BLAKE3 below; the readers in src/rafs/reader read
 * what this writes. Pipeline: source → tree (source-dir / source-tar) → numbering (tree) → data
 * blob (blob-writer) → bootstrap (v5-writer / v6-writer) → files on disk, named like upstream.
 */
import { randomBytes } from 'node:crypto';
import { renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { sha256 } from '../blob/codec.js';
import { kDefaultChunkSize, kMaxChunkSize, kMinChunkSize } from '../layout/constants.js';
import { BlobWriter } from './blob-writer.js';
import { ChunkPool } from './chunk-pool.js';
import { dumpDirectoryData, scanDirectory } from './source-dir.js';
import { scanTar } from './source-tar.js';
import { assignIndexes, dataOrder, planPrefetch } from './tree.js';
import { BuildError, type BuildOptions, type BuildResult, type Entry } from './types.js';
import { writeV5Bootstrap } from './v5-writer.js';
import { writeV6Bootstrap, type ImageBlob, type ImageParams } from './v6-writer.js';

export * from './types.js';

/** Placeholder blob id upstream stores for blobs that carry their own bootstrap. */
export const kInlineMetaBlobId = 'x'.repeat(64);

export function defaultBuildOptions(source: string): BuildOptions {
  return {
    source,
    sourceType: 'dir',
    fsVersion: 6,
    compressor: 'zstd',
    digester: 'blake3',
    chunkSize: kDefaultChunkSize,
    blobInlineMeta: false,
    blobToc: false,
    alignedChunk: false,
    explicitUidGid: true,
    whiteoutSpec: 'oci',
    prefetchPolicy: 'none',
    prefetchPatterns: [],
  };
}

function validate(o: BuildOptions): void {
  const cs = o.chunkSize;
  if (!Number.isInteger(cs) || cs < kMinChunkSize || cs > kMaxChunkSize || (cs & (cs - 1)) !== 0) {
    throw new BuildError(`invalid chunk size 0x${cs.toString(16)}: must be a power of two in 0x1000..0x1000000`);
  }
  if (o.fsVersion === 5 && o.blobToc) throw new BuildError('--features blob-toc requires --fs-version 6');
  if (!o.blobPath && !o.blobDir) throw new BuildError('both --blob and --blob-dir are missing');
  if (!o.blobInlineMeta && !o.bootstrapPath && !o.blobDir) throw new BuildError('both --bootstrap and --blob-dir are missing');
  if (o.blobInlineMeta && o.blobId !== undefined) throw new BuildError('--blob-id conflicts with --blob-inline-meta');
  if (o.blobId !== undefined && (o.blobId.length === 0 || (o.fsVersion === 6 && Buffer.byteLength(o.blobId) > 64) || o.blobId.includes('/'))) {
    throw new BuildError(`invalid --blob-id ${JSON.stringify(o.blobId)}`);
  }
}

export async function createImage(opts: BuildOptions): Promise<BuildResult> {
  validate(opts);
  const v6 = opts.fsVersion === 6;
  const blobTmp = opts.blobPath ?? join(opts.blobDir!, `.nydus-image-${process.pid}-${randomBytes(6).toString('hex')}.tmp`);
  const writer = new BlobWriter({
    path: blobTmp,
    compressor: opts.compressor,
    digester: opts.digester,
    aligned: v6 || opts.alignedChunk,
    blobMeta: v6,
    blobToc: opts.blobToc,
    inlineMeta: opts.blobInlineMeta,
  });
  let finished = false;
  const pool = ChunkPool.create(opts.threads);
  try {
    const progress = { files: 0, bytes: 0, done: false };
    const report = (bytes: number, fileDone: boolean): void => {
      progress.bytes += bytes;
      if (fileDone) progress.files++;
      opts.onProgress?.(progress);
    };
    let root: Entry;
    let readaheadSize = 0;
    let entries: Entry[];
    let plan;
    if (opts.sourceType === 'dir') {
      root = scanDirectory(opts.source, opts.whiteoutSpec, { files: 0 });
      entries = assignIndexes(root);
      plan = planPrefetch(root, opts.prefetchPolicy === 'none' ? [] : opts.prefetchPatterns, entries);
      await dumpDirectoryData(plan.files, writer, opts.chunkSize, report, pool);
      await writer.drain();
      readaheadSize = writer.dataSize;
      await dumpDirectoryData(dataOrder(entries, plan.files), writer, opts.chunkSize, report, pool);
    } else {
      root = await scanTar(opts, writer, report, pool);
      entries = assignIndexes(root);
      plan = planPrefetch(root, opts.prefetchPolicy === 'none' ? [] : opts.prefetchPatterns, entries);
    }
    await writer.drain();
    writer.writeMeta();
    const hasBlob = writer.chunks.length > 0;
    const blob: ImageBlob = {
      id: '',
      chunkCount: writer.chunks.length,
      features: writer.features,
      compressedSize: 0,
      uncompressedSize: writer.uncompressedSize,
      meta: writer.meta,
      tocSize: 0,
      tocDigest: Buffer.alloc(32),
      readaheadSize: opts.prefetchPolicy === 'blob' ? readaheadSize : 0,
    };
    const params: ImageParams = {
      chunkSize: opts.chunkSize,
      compressor: opts.compressor,
      digester: opts.digester,
      explicitUidGid: opts.explicitUidGid,
      blobs: hasBlob ? [blob] : [],
      chunks: writer.chunks,
      prefetch: opts.prefetchPolicy === 'fs' ? plan.table : [],
    };
    const build = (): Buffer =>
      v6 ? writeV6Bootstrap(root, entries.length, params) : writeV5Bootstrap(entries, params, opts.prefetchPolicy === 'fs');

    let bootstrap: Buffer;
    let blobSha: string;
    let blobSize: number;
    if (opts.blobInlineMeta) {
      blob.id = kInlineMetaBlobId;
      blob.compressedSize = writer.position;
      bootstrap = build();
      writer.writeBootstrap(bootstrap);
      ({ sha256: blobSha, size: blobSize } = writer.finish());
    } else {
      ({ sha256: blobSha, size: blobSize } = writer.finish());
      blob.id = opts.blobId ?? blobSha;
      blob.compressedSize = blobSize;
      blob.tocSize = writer.tocSize;
      blob.tocDigest = writer.tocDigest;
      bootstrap = build();
    }
    finished = true;

    const keepBlob = hasBlob || opts.blobInlineMeta;
    const blobName = opts.blobId ?? blobSha;
    let blobPath: string | undefined = opts.blobPath;
    if (!opts.blobPath) {
      if (keepBlob) {
        blobPath = join(opts.blobDir!, blobName);
        renameSync(blobTmp, blobPath);
      } else {
        rmSync(blobTmp, { force: true });
      }
    }
    let bootstrapPath: string | undefined;
    if (opts.bootstrapPath) {
      bootstrapPath = opts.bootstrapPath;
    } else if (!opts.blobInlineMeta) {
      bootstrapPath = join(opts.blobDir!, sha256(bootstrap).toString('hex'));
    }
    if (bootstrapPath) writeFileSync(bootstrapPath, bootstrap);
    progress.done = true;
    opts.onProgress?.(progress);
    return {
      bootstrapPath,
      blobPath: keepBlob ? blobPath : opts.blobPath,
      blobIds: keepBlob ? [opts.blobInlineMeta ? blobSha : blobName] : [],
      blobSize: keepBlob ? blobSize : 0,
      bootstrapSize: bootstrap.length,
      chunkCount: writer.chunks.length,
      entries: entries.length,
    };
  } catch (err) {
    if (!finished) writer.abort();
    if (!opts.blobPath) rmSync(blobTmp, { force: true });
    throw err;
  } finally {
    await pool?.close();
  }
}
