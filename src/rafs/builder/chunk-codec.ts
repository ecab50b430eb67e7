/** Per-chunk digest and compression, shared by the builder's main thread and its workers. */
import { createHash } from 'node:crypto';

import { blake3, compress } from '../../native/index.js';
import type { CompressorName, DigesterName } from './types.js';

export const kCompressorId: Record<CompressorName, number> = { none: 0, lz4_block: 1, zstd: 3 };
export const kDigesterId: Record<DigesterName, number> = { blake3: 0, sha256: 1 };

export function chunkDigest(digester: DigesterName, data: Buffer): Buffer {
  return digester === 'blake3' ? blake3(data) : createHash('sha256').update(data).digest();
}

/** Compresses with `compressor`; returns the input itself when compression does not shrink it. */
export function compressChunk(compressor: CompressorName, data: Buffer): { data: Buffer; compressed: boolean } {
  if (compressor === 'none') return { data, compressed: false };
  const out = compress(kCompressorId[compressor], data);
  return out.length < data.length ? { data: out, compressed: true } : { data, compressed: false };
}

/** True when `b` owns its whole ArrayBuffer, so transferring it detaches nothing else. */
export function ownsBuffer(b: Uint8Array): boolean {
  return b.byteOffset === 0 && b.byteLength === b.buffer.byteLength;
}
