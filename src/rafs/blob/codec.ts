/**
 * Chunk payload codecs and digests. lz4_block and zstd go through the native addon; gzip uses
 * node:zlib (the zlib Node already links). Every output size comes from metadata and is checked
 * before anything large is allocated, so a forged size cannot make us allocate gigabytes for a
 * few compressed bytes.
 */
import { createHash } from 'node:crypto';
import { gunzipSync } from 'node:zlib';

import { blake3, decompress } from '../../native/index.js';
import { Compressor, Digester } from '../layout/constants.js';
import { kRafsErrorCodes, RafsError } from '../layout/errors.js';
import type { CompressorName, DigesterName } from '../reader/types.js';

export type { CompressorName, DigesterName };

/** Largest single decode we accept (RAFS metadata is capped at 2 GiB; chunks at 16 MiB). */
const kMaxDecodeSize = 0x7fff_ffff;

export function compressorFromEnum(v: number): CompressorName | undefined {
  switch (v as Compressor) {
    case Compressor.None:
      return 'none';
    case Compressor.Lz4Block:
      return 'lz4_block';
    case Compressor.Gzip:
      return 'gzip';
    case Compressor.Zstd:
      return 'zstd';
    default:
      return undefined;
  }
}

export function digesterFromEnum(v: number): DigesterName | undefined {
  const d = v as Digester;
  if (d === Digester.Blake3) return 'blake3';
  if (d === Digester.Sha256) return 'sha256';
  return undefined;
}

function nativeAlgo(algo: CompressorName): number {
  return algo === 'lz4_block' ? Compressor.Lz4Block : algo === 'zstd' ? Compressor.Zstd : Compressor.None;
}

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

/**
 * Decodes one compressed unit (a chunk, a CI array, `image.boot`) to exactly `uncompressedSize`
 * bytes. `what` names the unit in errors (e.g. "blob 7334… chunk 12").
 */
export function decodeChunk(algo: CompressorName, compressed: Buffer, uncompressedSize: number, what = 'chunk'): Buffer {
  if (!Number.isSafeInteger(uncompressedSize) || uncompressedSize < 0 || uncompressedSize > kMaxDecodeSize) {
    throw bad(what, `uncompressed size ${uncompressedSize} is out of range`);
  }
  switch (algo) {
    case 'none':
      if (compressed.length !== uncompressedSize) {
        throw bad(what, `stored size ${compressed.length} differs from uncompressed size ${uncompressedSize}`);
      }
      return compressed;
    case 'gzip': {
      let out: Buffer;
      try {
        out = gunzipSync(compressed, { maxOutputLength: Math.max(1, uncompressedSize) });
      } catch (err) {
        throw bad(what, `gzip data does not decode to ${uncompressedSize} bytes`, err);
      }
      if (out.length !== uncompressedSize) throw bad(what, `gzip data decodes to ${out.length} bytes, expected ${uncompressedSize}`);
      return out;
    }
    case 'lz4_block':
      // An LZ4 block expands at most ~255x (a length byte per 255 literal-run bytes).
      if (uncompressedSize > compressed.length * 255 + 16) {
        throw bad(what, `lz4 block of ${compressed.length} bytes cannot hold ${uncompressedSize} bytes`);
      }
      break;
    case 'zstd': {
      const fcs = zstdFrameContentSize(compressed);
      if (fcs !== undefined && fcs !== uncompressedSize) {
        throw bad(what, `zstd frame holds ${fcs} bytes, metadata says ${uncompressedSize}`);
      }
      break;
    }
  }
  try {
    return decompress(nativeAlgo(algo), compressed, uncompressedSize);
  } catch (err) {
    throw bad(what, `${algo} data does not decode to ${uncompressedSize} bytes`, err);
  }
}

export function chunkDigest(digester: DigesterName, data: Buffer): Buffer {
  return digester === 'blake3' ? blake3(data) : createHash('sha256').update(data).digest();
}

export function sha256(data: Buffer): Buffer {
  return createHash('sha256').update(data).digest();
}
