/**
 * The one chunk codec of the project: compressor and digester names and their on-disk enums,
 * chunk (de)compression and digests, for the reader, the storage layer's cache fills and the
 * builder alike. lz4_block and zstd go through the native addon; gzip is decoded with node:zlib
 * (the zlib Node already links) and never written. Every output size comes from metadata and is
 * checked before anything large is allocated, so a forged size cannot make us allocate gigabytes
 * for a few compressed bytes.
 */
import { compress, createDigestHasher as createNativeHasher, decompress, digest, native } from '../../native/index.js';
import { Compressor, Digester, kSuperFlags, kTocEntryFlags } from '../layout/constants.js';
import { kRafsErrorCodes, RafsError } from '../layout/errors.js';

export type CompressorName = 'none' | 'lz4_block' | 'gzip' | 'zstd';
export type DigesterName = 'blake3' | 'sha256';
/** What the builder writes: the addon compresses lz4_block and zstd; gzip is only ever read. */
export type WritableCompressor = Exclude<CompressorName, 'gzip'>;

interface CompressorCodes {
  /** RAFS `compression_algo` (blob table, blob meta header); the native codec ids too. */
  code: Compressor;
  /** Superblock flag (RafsSuperFlags). */
  superFlag: number;
  /** Blob TOC entry flag; undefined when a TOC cannot record it. */
  tocFlag: number | undefined;
}

/** Every on-disk spelling of each compressor and digester, in one place. */
const kCompressors: Record<CompressorName, CompressorCodes> = {
  none: { code: Compressor.None, superFlag: kSuperFlags.COMPRESSION_NONE, tocFlag: kTocEntryFlags.NONE },
  lz4_block: { code: Compressor.Lz4Block, superFlag: kSuperFlags.COMPRESSION_LZ4, tocFlag: kTocEntryFlags.LZ4_BLOCK },
  gzip: { code: Compressor.Gzip, superFlag: kSuperFlags.COMPRESSION_GZIP, tocFlag: undefined },
  zstd: { code: Compressor.Zstd, superFlag: kSuperFlags.COMPRESSION_ZSTD, tocFlag: kTocEntryFlags.ZSTD },
};
const kDigesters: Record<DigesterName, { code: Digester; superFlag: number }> = {
  blake3: { code: Digester.Blake3, superFlag: kSuperFlags.HASH_BLAKE3 },
  sha256: { code: Digester.Sha256, superFlag: kSuperFlags.HASH_SHA256 },
};
const kCompressorNames = Object.keys(kCompressors) as CompressorName[];
const kDigesterNames = Object.keys(kDigesters) as DigesterName[];

export function compressorFromEnum(v: number): CompressorName | undefined {
  return kCompressorNames.find((n) => (kCompressors[n].code as number) === v);
}

export function compressorToEnum(name: CompressorName): number {
  return kCompressors[name].code;
}

export function compressorFromTocFlags(flags: number): CompressorName | undefined {
  return kCompressorNames.find((n) => kCompressors[n].tocFlag === flags);
}

export function compressorToTocFlags(name: CompressorName): number | undefined {
  return kCompressors[name].tocFlag;
}

export function digesterFromEnum(v: number): DigesterName | undefined {
  return kDigesterNames.find((n) => (kDigesters[n].code as number) === v);
}

export function digesterToEnum(name: DigesterName): number {
  return kDigesters[name].code;
}

/** The superblock flags naming a compressor and a digester. */
export function algorithmSuperFlags(compressor: CompressorName, digester: DigesterName): number {
  return kCompressors[compressor].superFlag | kDigesters[digester].superFlag;
}

/** Every compressor and every digester whose superblock flag is set in `flags`. */
export function algorithmsInSuperFlags(flags: number): { compressors: CompressorName[]; digesters: DigesterName[] } {
  return {
    compressors: kCompressorNames.filter((n) => (flags & kCompressors[n].superFlag) !== 0),
    digesters: kDigesterNames.filter((n) => (flags & kDigesters[n].superFlag) !== 0),
  };
}

/** Largest single decode we accept (RAFS metadata is capped at 2 GiB; chunks at 16 MiB). */
const kMaxDecodeSize = 0x7fff_ffff;

/**
 * Frame_Content_Size of a zstd frame header (RFC 8878 §3.1.1.1), or undefined when the frame
 * does not record it. Lets us reject a lying size before the decoder allocates its output.
 */
export function zstdFrameContentSize(src: Buffer): number | undefined {
  if (src.length < 5 || src.readUInt32LE(0) !== 0xfd2fb528) return undefined;
  const fhd = src.readUInt8(4);
  const fcsFlag = fhd >> 6;
  const singleSegment = (fhd >> 5) & 1;
  const dictIdLen = [0, 1, 2, 4][fhd & 3] as number;
  const fcsLen = fcsFlag === 0 ? singleSegment : 1 << fcsFlag;
  if (fcsLen === 0) return undefined;
  const at = 5 + (singleSegment ? 0 : 1) + dictIdLen;
  if (at + fcsLen > src.length) return undefined;
  switch (fcsLen) {
    case 1:
      return src.readUInt8(at);
    case 2:
      return src.readUInt16LE(at) + 256;
    case 4:
      return src.readUInt32LE(at);
    default: {
      const hi = src.readUInt32LE(at + 4);
      return hi > 0x1fffff ? Number.MAX_SAFE_INTEGER : hi * 0x1_0000_0000 + src.readUInt32LE(at);
    }
  }
}

function bad(what: string, detail: string, cause?: unknown): RafsError {
  return new RafsError(kRafsErrorCodes.CORRUPT_CHUNK, `${what}: ${detail}`, cause === undefined ? {} : { cause });
}

/** Rejects sizes the compressed bytes cannot hold, before a decoder allocates or writes anything. */
function checkDecode(algo: CompressorName, compressed: Buffer, uncompressedSize: number, what: string): void {
  if (!Number.isSafeInteger(uncompressedSize) || uncompressedSize < 0 || uncompressedSize > kMaxDecodeSize) {
    throw bad(what, `uncompressed size ${uncompressedSize} is out of range`);
  }
  if (algo === 'none' && compressed.length !== uncompressedSize) {
    throw bad(what, `stored size ${compressed.length} differs from uncompressed size ${uncompressedSize}`);
  }
  // An LZ4 block expands at most ~255x (a length byte per 255 literal-run bytes).
  if (algo === 'lz4_block' && uncompressedSize > compressed.length * 255 + 16) {
    throw bad(what, `lz4 block of ${compressed.length} bytes cannot hold ${uncompressedSize} bytes`);
  }
  if (algo === 'zstd') {
    const fcs = zstdFrameContentSize(compressed);
    if (fcs !== undefined && fcs !== uncompressedSize) throw bad(what, `zstd frame holds ${fcs} bytes, metadata says ${uncompressedSize}`);
  }
}

function gunzipExactly(compressed: Buffer, uncompressedSize: number, what: string): Buffer {
  let out: Buffer;
  try {
    out = process.getBuiltinModule('node:zlib').gunzipSync(compressed, { maxOutputLength: Math.max(1, uncompressedSize) });
  } catch (err) {
    throw bad(what, `gzip data does not decode to ${uncompressedSize} bytes`, err);
  }
  if (out.length !== uncompressedSize) throw bad(what, `gzip data decodes to ${out.length} bytes, expected ${uncompressedSize}`);
  return out;
}

/**
 * Decodes one compressed unit (a chunk, a CI array, `image.boot`) to exactly `uncompressedSize`
 * bytes; throws RafsError ERR_RAFS_CORRUPT_CHUNK otherwise. `what` names the unit in errors
 * (e.g. "blob 7334… chunk 12"). With `none` the input itself is returned.
 */
export function decodeChunk(algo: CompressorName, compressed: Buffer, uncompressedSize: number, what = 'chunk'): Buffer {
  checkDecode(algo, compressed, uncompressedSize, what);
  if (algo === 'none') return compressed;
  if (algo === 'gzip') return gunzipExactly(compressed, uncompressedSize, what);
  try {
    return decompress(kCompressors[algo].code, compressed, uncompressedSize);
  } catch (err) {
    throw bad(what, `${algo} data does not decode to ${uncompressedSize} bytes`, err);
  }
}

/**
 * decodeChunk into `dst`, which must come out exactly full (its length is the uncompressed
 * size). lz4_block and zstd decode in place, with no intermediate buffer.
 */
export function decodeChunkInto(algo: CompressorName, compressed: Buffer, dst: Buffer, what = 'chunk'): void {
  if (algo !== 'lz4_block' && algo !== 'zstd') {
    decodeChunk(algo, compressed, dst.length, what).copy(dst);
    return;
  }
  checkDecode(algo, compressed, dst.length, what);
  try {
    native().decompressInto(kCompressors[algo].code, compressed, dst);
  } catch (err) {
    throw bad(what, `${algo} data does not decode to ${dst.length} bytes`, err);
  }
}

/** Compresses with `compressor`; returns the input itself when compression does not shrink it. */
export function compressChunk(compressor: WritableCompressor, data: Buffer): { data: Buffer; compressed: boolean } {
  if (compressor === 'none') return { data, compressed: false };
  const out = compress(kCompressors[compressor].code, data);
  return out.length < data.length ? { data: out, compressed: true } : { data, compressed: false };
}

export function sha256(data: Buffer): Buffer {
  return digest(kDigesters.sha256.code as number, data);
}

export function chunkDigest(digester: DigesterName, data: Buffer): Buffer {
  return digest(kDigesters[digester].code as number, data);
}

/**
 * An incremental chunkDigest, for digests over many pieces (v5 inode digests, a whole blob
 * file). digest() may be called more than once; each call covers everything fed so far.
 */
export function createDigestHasher(digester: DigesterName): { update(b: Buffer): unknown; digest(): Buffer } {
  return createNativeHasher(kDigesters[digester].code as number);
}
