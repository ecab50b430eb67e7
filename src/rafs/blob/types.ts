/**
 * What the bootstrap says about a blob (its blob table entry) and about one chunk of a file
 * (where it lives in which blob). The readers produce these; blob access, storage and the
 * builder's checks consume them.
 */
import type { CompressorName, DigesterName } from './codec.js';

export interface BlobInfo {
  index: number;
  /** 64 hex chars, or the meta-file stem for inline-meta blobs. */
  blobId: string;
  chunkCount: number;
  chunkSize: number;
  compressor: CompressorName;
  digester: DigesterName;
  /** BlobFeatures. */
  features: number;
  compressedSize: number;
  uncompressedSize: number;
  /** Blob meta (CI) location inside the data blob; zero when absent. */
  metaCiCompressor: CompressorName;
  metaCiOffset: number;
  metaCiCompressedSize: number;
  metaCiUncompressedSize: number;
  /** blob_toc_size (0 if none). */
  tocSize: number;
  /** 32 bytes (zeros if none). */
  tocDigest: Buffer;
  /** v6 device table slot; undefined for v5. */
  deviceBlocks?: number;
  mappedBlkaddr?: number;
  /** v5 blob table readahead hint; undefined for v6. */
  readaheadOffset?: number;
  readaheadSize?: number;
}

/** The BlobInfo fields of a blob without blob meta (CI) and without a TOC: v5 blobs, tests. */
export function noBlobMeta(): Pick<BlobInfo, 'metaCiCompressor' | 'metaCiOffset' | 'metaCiCompressedSize' | 'metaCiUncompressedSize' | 'tocSize' | 'tocDigest'> {
  return { metaCiCompressor: 'none', metaCiOffset: 0, metaCiCompressedSize: 0, metaCiUncompressedSize: 0, tocSize: 0, tocDigest: Buffer.alloc(32) };
}

export interface ChunkInfo {
  /** Offset of this chunk in the file. */
  fileOffset: number;
  blobIndex: number;
  /** v6: CI index in the blob; v5: chunk `index`; the chunk-map bit. */
  chunkIndex: number;
  compressedOffset: number;
  compressedSize: number;
  /** Offset in the blob's uncompressed space (= offset in `.blob.data`). */
  uncompressedOffset: number;
  uncompressedSize: number;
  compressed: boolean;
  /** 32 bytes; all zeros when the digest is not available (then it cannot be verified). */
  digest: Buffer;
}
