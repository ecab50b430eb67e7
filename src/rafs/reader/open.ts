/**
 * Opening an image: detects v5 (magic at 0), v6 (EROFS magic at 1024) or an inline-meta blob
 * (a data blob carrying its bootstrap as the zstd `image.boot` TOC entry), and wires the blob
 * meta source used by v6 INLINED_CHUNK_DIGEST images.
 */
import { basename } from 'node:path';

import { kBlobFeatures, kV6SuperBlockOffset } from '../layout/constants.js';
import { corrupt, kRafsErrorCodes, RafsError } from '../layout/errors.js';
import { BlobFile, blobDirMetaProvider, type BlobMetaProvider, type BlobSource, bufferSource, extractInlineBootstrap, loadBlobMetaFromBlob } from '../blob/blob-file.js';
import { isV5, V5Image } from './v5-image.js';
import { V6Image } from './v6-image.js';
import { isV6 } from './v6-super.js';
import type { RafsImage } from './types.js';

/** RAFS metadata is at most 2 GiB. */
const kMaxMetaSize = 0x8000_0000;

export interface OpenOptions {
  /**
   * Blob id to substitute for inline-meta blobs (INLINED_FS_META, or any blob without
   * CAP_TAR_TOC when the bootstrap came out of a blob). Default: the stem of the opened path.
   */
  blobId?: string;
  /**
   * Directory holding blobs by id and/or `<id>.blob.meta` (+ `<id>.blob.digest`) cache files;
   * read lazily when `chunks()` of an INLINED_CHUNK_DIGEST image needs a blob's meta.
   */
  blobDir?: string;
  /** Supplies blob meta on demand; consulted before `blobDir`. */
  blobMetaProvider?: BlobMetaProvider;
  /**
   * v6 INLINED_CHUNK_DIGEST: when a blob's meta cannot be had, take chunk info (and digests) from
   * the bootstrap's chunk info table, as upstream `nydus-image check/inspect` do. Off for serving,
   * which reads the blob meta the storage layer fetched.
   */
  chunkTableFallback?: boolean;
}

/** `Path::file_prefix`: the file name with every extension removed (`x.blob.meta` → `x`). */
export function metaPathStem(path: string): string {
  let name = basename(path);
  for (let i = name.lastIndexOf('.'); i > 0; i = name.lastIndexOf('.')) name = name.slice(0, i);
  return name;
}

function chainProviders(list: (BlobMetaProvider | undefined)[]): BlobMetaProvider | undefined {
  const ps = list.filter((p): p is BlobMetaProvider => p !== undefined);
  if (ps.length === 0) return undefined;
  return (blob) => {
    for (const p of ps) {
      const m = p(blob);
      if (m) return m;
    }
    return undefined;
  };
}

function looksLikeBootstrap(head: Buffer): boolean {
  return isV5(head) || isV6(head);
}

function fromBootstrapBytes(buf: Buffer, name: string, provider: BlobMetaProvider | undefined, opts: OpenOptions): RafsImage {
  if (isV5(buf)) return new V5Image(buf, name);
  if (isV6(buf)) return new V6Image(buf, name, { blobMetaProvider: provider, chunkTableFallback: opts.chunkTableFallback });
  throw corrupt(name, 'bootstrap', 0, `no RAFS v5 magic at 0 nor EROFS magic at ${kV6SuperBlockOffset}`);
}

function renameBlobs(img: RafsImage, id: string, fromBlob: boolean): void {
  // Upstream `set_blob_id_from_meta_path`: these blobs carry a placeholder id in the table.
  for (const b of img.blobs) {
    const inline = (b.features & kBlobFeatures.INLINED_FS_META) !== 0;
    // v5 blobs built upstream carry no features at all, so "no CAP_TAR_TOC" covers them too.
    if (inline || (fromBlob && (b.features & kBlobFeatures.CAP_TAR_TOC) === 0)) {
      (b as { blobId: string }).blobId = id;
    }
  }
}

/**
 * Opens a bootstrap held in a source (a file or a buffer). A source that is not a bootstrap is
 * treated as an inline-meta blob: its `image.boot` is extracted and the matching blob entries
 * are renamed to `blobId`; that blob then also serves its own meta.
 */
function openSource(src: BlobSource, blobId: string | undefined, opts: OpenOptions): RafsImage {
  const head = src.read(0, Math.min(src.size, kV6SuperBlockOffset + 4));
  const user = chainProviders([opts.blobMetaProvider, opts.blobDir === undefined ? undefined : blobDirMetaProvider(opts.blobDir)]);
  if (looksLikeBootstrap(head)) {
    if (src.size > kMaxMetaSize) throw corrupt(src.path, 'bootstrap', 0, `${src.size} bytes exceeds the 2 GiB metadata limit`);
    const img = fromBootstrapBytes(src.read(0, src.size), src.path, user, opts);
    if (blobId !== undefined) renameBlobs(img, blobId, false);
    return img;
  }
  if (blobId === undefined) throw corrupt(src.path, 'bootstrap', 0, 'not a bootstrap; as an inline-meta blob it needs a name or blobId');
  let boot: Buffer;
  try {
    boot = extractInlineBootstrap(src, kMaxMetaSize);
  } catch (err) {
    // A blob whose inlined bootstrap is damaged keeps its precise error; a file that is no
    // blob at all (no TOC) is told as "neither format matched", with the blob-level detail.
    if (!(err instanceof RafsError) || err.code !== kRafsErrorCodes.CORRUPT) throw err;
    const detail = err instanceof Error ? err.message : String(err);
    throw corrupt(
      src.path,
      'bootstrap',
      0,
      `not a RAFS bootstrap (no v5 magic at 0, no EROFS magic at ${kV6SuperBlockOffset}) and not a data blob with an inlined bootstrap (${detail})`,
    );
  }
  let self: BlobMetaProvider | undefined;
  if (src instanceof BlobFile) {
    const path = src.path;
    self = (blob) => {
      if (blob.blobId !== blobId) return undefined;
      const f = new BlobFile(path);
      try {
        return loadBlobMetaFromBlob(f, blob);
      } finally {
        f.close();
      }
    };
  } else {
    self = (blob) => (blob.blobId === blobId ? loadBlobMetaFromBlob(src, blob) : undefined);
  }
  const img = fromBootstrapBytes(boot, `${src.path}#image.boot`, chainProviders([user, self]), opts);
  renameBlobs(img, blobId, true);
  return img;
}

/** Opens a v5/v6 bootstrap file, or an inline-meta blob file (detected by magic). */
export function openBootstrap(path: string, opts: OpenOptions = {}): RafsImage {
  const f = new BlobFile(path);
  try {
    return openSource(f, opts.blobId ?? metaPathStem(path), opts);
  } finally {
    f.close();
  }
}

/**
 * Opens a bootstrap (or inline-meta blob) already in memory. `name` labels errors and, for
 * inline-meta blobs, gives the default blob id (its stem).
 */
export function openBootstrapBuffer(buf: Buffer, name?: string, opts: OpenOptions = {}): RafsImage {
  return openSource(bufferSource(buf, name ?? '<buffer>'), opts.blobId ?? (name === undefined ? undefined : metaPathStem(name)), opts);
}
