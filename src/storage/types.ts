/**
 * Storage works on the RAFS reader's blob and chunk descriptions (rafs-api.md); the filesystem
 * layer passes the reader's objects straight through. Storage never parses RAFS metadata.
 */
export type { BlobInfo, ChunkInfo, CompressorName, DigesterName } from '../rafs/index.js';
