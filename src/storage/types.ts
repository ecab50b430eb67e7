/**
 * The parts of the RAFS reader's `BlobInfo` and `ChunkInfo` (rafs-api.md) storage needs. The
 * reader's objects are structurally assignable to these, so the filesystem layer passes them
 * straight through; storage never parses RAFS metadata itself.
 */
export type CompressorName = 'none' | 'lz4_block' | 'gzip' | 'zstd';
export type DigesterName = 'blake3' | 'sha256';

export interface BlobInfo {
  readonly index: number;
  readonly blobId: string;
  readonly chunkCount: number;
  readonly compressor: CompressorName;
  readonly digester: DigesterName;
  readonly features: number;
  readonly compressedSize: number;
  readonly uncompressedSize: number;
  readonly metaCiCompressor: CompressorName;
  readonly metaCiOffset: number;
  readonly metaCiCompressedSize: number;
  readonly metaCiUncompressedSize: number;
}

export interface ChunkInfo {
  readonly fileOffset: number;
  readonly blobIndex: number;
  /** v6: CI index; v5: the chunk's `index`. The chunk-map bit. */
  readonly chunkIndex: number;
  readonly compressedOffset: number;
  readonly compressedSize: number;
  /** Offset in the blob's uncompressed space = offset in `<blob_id>.blob.data`. */
  readonly uncompressedOffset: number;
  readonly uncompressedSize: number;
  readonly compressed: boolean;
  /** 32 bytes; all zeros when the image carries no digest for this chunk. */
  readonly digest: Buffer;
}
