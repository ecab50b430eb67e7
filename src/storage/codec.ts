/**
 * Chunk decoding and digests on the cache-fill path: none/lz4_block/zstd through the native
 * codecs, gzip through node:zlib; blake3 native, sha256 from node:crypto. The RAFS reader exports
 * equivalents (decodeChunk/chunkDigest); these stay local so storage has no reader dependency.
 */
import { createHash } from 'node:crypto';
import { gunzipSync } from 'node:zlib';

import { blake3, CompressAlgo, decompress, native } from '../native/index.js';
import type { CompressorName, DigesterName } from './types.js';

const kNativeAlgo: Record<Exclude<CompressorName, 'gzip' | 'none'>, number> = {
  lz4_block: CompressAlgo.Lz4Block,
  zstd: CompressAlgo.Zstd,
};

/** Decompresses exactly `uncompressedSize` bytes; throws (plain Error) on any mismatch. */
export function decodeChunk(algo: CompressorName, src: Buffer, uncompressedSize: number): Buffer {
  switch (algo) {
    case 'none':
      if (src.length !== uncompressedSize) throw new Error(`stored size ${src.length} != uncompressed size ${uncompressedSize}`);
      return src;
    case 'gzip': {
      const out = gunzipSync(src, { maxOutputLength: uncompressedSize + 1 });
      if (out.length !== uncompressedSize) throw new Error(`gzip produced ${out.length} bytes, expected ${uncompressedSize}`);
      return out;
    }
    case 'lz4_block':
    case 'zstd':
      return decompress(kNativeAlgo[algo], src, uncompressedSize);
  }
}

/**
 * Decompresses into `dst`, which must come out exactly full (its length is the uncompressed
 * size); throws (plain Error) on any mismatch. lz4_block and zstd decode in place, with no
 * intermediate buffer.
 */
export function decodeChunkInto(algo: CompressorName, src: Buffer, dst: Buffer): void {
  if (algo === 'lz4_block' || algo === 'zstd') {
    native().decompressInto(kNativeAlgo[algo], src, dst);
    return;
  }
  decodeChunk(algo, src, dst.length).copy(dst);
}

export function chunkDigest(digester: DigesterName, data: Buffer): Buffer {
  return digester === 'blake3' ? blake3(data) : createHash('sha256').update(data).digest();
}

export function isZeroDigest(d: Buffer): boolean {
  for (let i = 0; i < d.length; i++) if (d[i] !== 0) return false;
  return true;
}

export function compressorCode(algo: CompressorName): number {
  switch (algo) {
    case 'none':
      return CompressAlgo.None;
    case 'lz4_block':
      return CompressAlgo.Lz4Block;
    case 'gzip':
      return CompressAlgo.Gzip;
    case 'zstd':
      return CompressAlgo.Zstd;
  }
}

const kByCode: readonly CompressorName[] = ['none', 'lz4_block', 'gzip', 'zstd'];
export function compressorName(code: number): CompressorName | undefined {
  return kByCode[code];
}
