/**
 * Worker thread of the chunk pool: digests and compresses chunks sent by the builder's main
 * thread, which keeps all ordering, deduplication and file writes (see chunk-pool.ts). The chunk
 * buffer arrives transferred and the results go back transferred, so nothing is copied.
 */
import { parentPort } from 'node:worker_threads';

import { chunkDigest, compressChunk } from '../blob/codec.js';
import type { WritableCompressor, DigesterName } from './types.js';

export interface ChunkJob {
  id: number;
  compressor: WritableCompressor;
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

/** True when `b` owns its whole ArrayBuffer, so transferring it detaches nothing else. */
function ownsBuffer(b: Uint8Array): boolean {
  return b.byteOffset === 0 && b.byteLength === b.buffer.byteLength;
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
