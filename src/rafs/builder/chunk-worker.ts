/**
 * Worker thread of the chunk pool: digests and compresses chunks sent by the builder's main
 * thread, which keeps all ordering, deduplication and file writes (see chunk-pool.ts). The chunk
 * buffer arrives transferred and the results go back transferred, so nothing is copied.
 */
import { parentPort } from 'node:worker_threads';

import { chunkDigest, compressChunk, ownsBuffer } from './chunk-codec.js';
import type { CompressorName, DigesterName } from './types.js';

export interface ChunkJob {
  id: number;
  compressor: CompressorName;
  digester: DigesterName;
  data: Uint8Array;
}

export interface ChunkDone {
  id: number;
  digest?: Uint8Array;
  stored?: Uint8Array;
  /** The stored bytes are the input itself (incompressible or `none`). */
  raw?: boolean;
  error?: string;
}

parentPort?.on('message', (job: ChunkJob) => {
  try {
    const data = Buffer.from(job.data.buffer, job.data.byteOffset, job.data.byteLength);
    const digest = chunkDigest(job.digester, data);
    const { data: stored, compressed } = compressChunk(job.compressor, data);
    // Digests are 32 bytes: copied. Chunk bytes are transferred when they own their buffer.
    const reply: ChunkDone = { id: job.id, digest: Uint8Array.from(digest), stored, raw: !compressed };
    parentPort!.postMessage(reply, ownsBuffer(stored) ? [stored.buffer as ArrayBuffer] : []);
  } catch (err) {
    parentPort!.postMessage({ id: job.id, error: (err as Error).message } satisfies ChunkDone);
  }
});
