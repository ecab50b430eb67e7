/**
 * Local blob files: positional reads, the blob's TOC, its meta (CI + `blob.digest`), chunk data
 * decoding with digest checks, and the bootstrap inlined in an inline-meta blob. Everything here
 * is synchronous pread on a file descriptor: the reader calls it lazily from `chunks()`; the
 * storage layer, which fetches from remote backends, supplies meta through `setBlobMeta` instead.
 */
import { closeSync, existsSync, fstatSync, openSync, readFileSync, readSync } from 'node:fs';
import { join } from 'node:path';

import { isZero } from '../layout/bytes.js';
import { kBlobFeatures, kBlobMetaHeaderSize, kMaxChunkSize, kTarHeaderSize, kTocNames } from '../layout/constants.js';
import { kTocTailSize } from '../layout/blob-offsets.js';
import { corrupt, kRafsErrorCodes, RafsError } from '../layout/errors.js';
import type { BlobInfo, ChunkInfo } from './types.js';
import { chunkDigest, decodeChunk } from './codec.js';
import { type BlobChunkMeta, BlobChunkInfoArray, checkHeaderAgainstBlob, parseBlobMetaFile, parseBlobMetaHeader, parseBlobMetaRegion } from './meta.js';
import { extractTocEntry, findToc, getTocEntry, parseTarHeader, parseToc, type TocEntry, type TocLocation } from './toc.js';

/** Gives the parsed meta of a blob, or undefined when it is not available (never guesses). */
export type BlobMetaProvider = (blob: BlobInfo) => BlobChunkMeta | undefined;

/** A file-system error as a RafsError (NOT_FOUND for ENOENT, IO otherwise). */
export function fileError(path: string, err: unknown): RafsError {
  if (err instanceof RafsError) return err;
  const code = (err as { code?: unknown }).code;
  const msg = err instanceof Error ? err.message : String(err);
  return new RafsError(code === 'ENOENT' ? kRafsErrorCodes.NOT_FOUND : kRafsErrorCodes.IO, `${path}: ${msg}`, { cause: err });
}

/** Positional reads over a blob: a file (BlobFile) or an in-memory copy (bufferSource). */
export interface BlobSource {
  /** Names the blob in errors. */
  readonly path: string;
  readonly size: number;
  /** Exactly `len` bytes at `off`; out of range is a CORRUPT error. */
  read(off: number, len: number): Buffer;
}

export function bufferSource(buf: Buffer, name: string): BlobSource {
  return {
    path: name,
    size: buf.length,
    read(off: number, len: number): Buffer {
      if (!Number.isSafeInteger(off) || !Number.isSafeInteger(len) || off < 0 || len < 0 || off + len > buf.length) {
        throw corrupt(name, 'blob read', off, `${len} bytes run past the ${buf.length}-byte blob`);
      }
      return buf.subarray(off, off + len);
    },
  };
}

/** A blob (or any file) opened for positional reads. */
export class BlobFile implements BlobSource {
  readonly path: string;
  readonly size: number;
  private _fd: number;

  constructor(path: string) {
    this.path = path;
    try {
      this._fd = openSync(path, 'r');
    } catch (err) {
      throw fileError(path, err);
    }
    try {
      const st = fstatSync(this._fd);
      if (!st.isFile()) throw new RafsError(kRafsErrorCodes.IO, `${path}: not a regular file`);
      this.size = st.size;
    } catch (err) {
      closeSync(this._fd);
      throw fileError(path, err);
    }
  }

  /** Exactly `len` bytes at `off`; a short file is a CORRUPT error. */
  read(off: number, len: number): Buffer {
    if (this._fd < 0) throw new RafsError(kRafsErrorCodes.NOT_FOUND, `${this.path}: blob file is closed`);
    if (!Number.isSafeInteger(off) || !Number.isSafeInteger(len) || off < 0 || len < 0 || off + len > this.size) {
      throw corrupt(this.path, 'blob read', off, `${len} bytes run past the ${this.size}-byte file`);
    }
    const out = Buffer.allocUnsafe(len);
    let done = 0;
    while (done < len) {
      let n: number;
      try {
        n = readSync(this._fd, out, done, len - done, off + done);
      } catch (err) {
        throw fileError(this.path, err);
      }
      if (n === 0) throw corrupt(this.path, 'blob read', off + done, 'unexpected end of file');
      done += n;
    }
    return out;
  }

  close(): void {
    if (this._fd >= 0) closeSync(this._fd);
    this._fd = -1;
  }
}

/** The TOC entries of a blob: at the blob table's location (digest-checked) or found from the tail. */
export function readBlobToc(file: BlobSource, blob?: BlobInfo): TocEntry[] {
  let loc: TocLocation;
  if (blob && blob.tocSize > 0) {
    loc = { offset: file.size - blob.tocSize, size: blob.tocSize, digest: isZero(blob.tocDigest) ? undefined : blob.tocDigest };
    if (loc.offset < 0) throw corrupt(file.path, 'blob TOC', 0, `TOC size ${blob.tocSize} exceeds the ${file.size}-byte blob`);
  } else {
    const tailLen = Math.min(kTocTailSize, file.size - (file.size % 128));
    loc = findToc(file.read(file.size - tailLen, tailLen), file.size, file.path);
  }
  return parseToc(file.read(loc.offset, loc.size), loc, file.path);
}

function readDigests(file: BlobSource, toc: TocEntry[], blob: BlobInfo): Buffer | undefined {
  const e = getTocEntry(toc, kTocNames.digest);
  if (!e) return undefined;
  const digests = extractTocEntry((o, l) => file.read(o, l), e, file.size, file.path, blob.chunkCount * 32);
  if (digests.length !== blob.chunkCount * 32) {
    throw corrupt(file.path, 'blob.digest', e.compressedOffset, `${digests.length} bytes for ${blob.chunkCount} chunks`);
  }
  return digests;
}

/**
 * Loads a blob's meta from the data blob itself: the CI at `ci_offset` (or via the TOC's
 * `blob.meta`/`blob.meta.header` when the blob table has no CI location) and, when the blob has
 * a TOC, the chunk digests from `blob.digest`.
 */
export function loadBlobMetaFromBlob(file: BlobSource, blob: BlobInfo): BlobChunkMeta {
  const hasToc = (blob.features & kBlobFeatures.HAS_TOC) !== 0 || blob.tocSize > 0;
  let toc: TocEntry[] | undefined;
  let meta: BlobChunkMeta;
  if (blob.metaCiCompressedSize > 0 || blob.metaCiOffset > 0) {
    const region = file.read(blob.metaCiOffset, blob.metaCiCompressedSize + kBlobMetaHeaderSize);
    meta = parseBlobMetaRegion(region, blob, file.path);
  } else {
    toc = readBlobToc(file, blob);
    const h = getTocEntry(toc, kTocNames.metaHeader);
    const c = getTocEntry(toc, kTocNames.meta);
    if (!h || !c) throw new RafsError(kRafsErrorCodes.NOT_FOUND, `${file.path}: blob has no CI location and no blob.meta TOC entries`);
    const read = (o: number, l: number): Buffer => file.read(o, l);
    const header = parseBlobMetaHeader(extractTocEntry(read, h, file.size, file.path, kBlobMetaHeaderSize), file.path, h.compressedOffset);
    checkHeaderAgainstBlob(header, blob, file.path);
    const ci = extractTocEntry(read, c, file.size, file.path, header.ciUncompressedSize);
    meta = { header, ci: new BlobChunkInfoArray(ci, header, file.path) };
  }
  if (hasToc) {
    toc ??= readBlobToc(file, blob);
    meta.digests = readDigests(file, toc, blob);
  }
  return meta;
}

function readWhole(path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw fileError(path, err);
  }
}

/**
 * A provider over a directory holding `<blob_id>.blob.meta` cache files (plus an optional
 * `<blob_id>.blob.digest`) or the data blobs themselves, named by blob id (localfs layout).
 */
export function blobDirMetaProvider(dir: string): BlobMetaProvider {
  return (blob) => {
    const metaPath = join(dir, `${blob.blobId}.blob.meta`);
    if (existsSync(metaPath)) {
      const meta = parseBlobMetaFile(readWhole(metaPath), metaPath, blob);
      const digestPath = join(dir, `${blob.blobId}.blob.digest`);
      if (existsSync(digestPath)) {
        const d = readWhole(digestPath);
        if (d.length !== blob.chunkCount * 32) throw corrupt(digestPath, 'blob.digest', 0, `${d.length} bytes for ${blob.chunkCount} chunks`);
        meta.digests = d;
      }
      return meta;
    }
    const blobPath = join(dir, blob.blobId);
    if (!existsSync(blobPath)) return undefined;
    const f = new BlobFile(blobPath);
    try {
      return loadBlobMetaFromBlob(f, blob);
    } finally {
      f.close();
    }
  };
}

/**
 * Reads and decodes one chunk from a blob (`read` gives compressed-space bytes), checking the
 * digest when `verify` is set and the chunk carries one.
 */
export function readChunkData(read: (off: number, len: number) => Buffer, chunk: ChunkInfo, blob: BlobInfo, verify = true): Buffer {
  const what = `blob ${blob.blobId} chunk ${chunk.chunkIndex}`;
  if (chunk.uncompressedSize > kMaxChunkSize || chunk.compressedSize > kMaxChunkSize) {
    throw corrupt(blob.blobId, 'chunk info', chunk.compressedOffset, `${what}: size exceeds 16 MiB`);
  }
  const raw = read(chunk.compressedOffset, chunk.compressedSize);
  const data = decodeChunk(chunk.compressed ? blob.compressor : 'none', raw, chunk.uncompressedSize, what);
  if (verify && !isZero(chunk.digest)) {
    const got = chunkDigest(blob.digester, data);
    if (!got.equals(chunk.digest)) {
      throw new RafsError(kRafsErrorCodes.DIGEST_MISMATCH, `${what}: ${blob.digester} ${got.toString('hex')} != ${chunk.digest.toString('hex')}`);
    }
  }
  return data;
}

/**
 * The bootstrap inlined in a blob: the TOC's `image.boot` entry (zstd, sha256-checked), or, for
 * blobs without a TOC, a last tar entry named `image.boot` stored plain.
 */
export function extractInlineBootstrap(file: BlobSource, maxSize: number): Buffer {
  const tailLen = Math.min(kTocTailSize, file.size - (file.size % 128));
  if (tailLen < kTarHeaderSize) throw corrupt(file.path, 'blob tail', 0, `a ${file.size}-byte file is neither a bootstrap nor a blob`);
  const tail = file.read(file.size - tailLen, tailLen);
  const hdr = parseTarHeader(tail.subarray(tailLen - kTarHeaderSize), file.path, file.size - kTarHeaderSize);
  const read = (o: number, l: number): Buffer => file.read(o, l);
  if (hdr.name === kTocNames.boot) {
    const size = hdr.size;
    if (size > file.size - kTarHeaderSize) throw corrupt(file.path, 'image.boot tar entry', file.size - kTarHeaderSize, `size ${size} exceeds the blob`);
    const entry: TocEntry = {
      name: kTocNames.boot,
      flags: 1,
      compressor: 'none',
      digest: Buffer.alloc(32),
      compressedOffset: file.size - kTarHeaderSize - size,
      compressedSize: size,
      uncompressedSize: size,
    };
    return extractTocEntry(read, entry, file.size, file.path, maxSize);
  }
  const loc = findToc(tail, file.size, file.path);
  const toc = parseToc(file.read(loc.offset, loc.size), loc, file.path);
  const boot = getTocEntry(toc, kTocNames.boot);
  if (!boot) throw new RafsError(kRafsErrorCodes.NOT_FOUND, `${file.path}: not a bootstrap, and its blob TOC has no image.boot entry`);
  return extractTocEntry(read, boot, file.size, file.path, maxSize);
}
