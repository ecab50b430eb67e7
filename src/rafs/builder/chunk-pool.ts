/**
 * Worker threads that digest and compress large chunks while the main thread reads files and
 * writes the blob. Results are consumed in submission order by BlobWriter, so the output is
 * byte-identical to a single-threaded build. Small chunks stay on the main thread: a message
 * round trip costs more than hashing a few KiB.
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';

import type { ChunkDone, ChunkJob } from './chunk-worker.js';
import { BuildError, type WritableCompressor, type DigesterName } from './types.js';

export interface ChunkResult {
  digest: Buffer;
  stored: Buffer;
  compressed: boolean;
}

interface Pending {
  resolve: (r: ChunkResult) => void;
  reject: (e: Error) => void;
}

/** Chunks at least this large go to a worker. */
export const kPoolMinBytes = 64 * 1024;

export class ChunkPool {
  private readonly _workers: Worker[] = [];
  private readonly _pending = new Map<number, Pending>();
  private _next = 0;
  private _rr = 0;
  private _broken: Error | undefined;

  /** `threads` workers; auto: one per CPU beyond the first, at most 4 (none on one CPU). */
  static create(threads?: number): ChunkPool | undefined {
    const n = threads ?? Math.min(Math.max(availableParallelism() - 1, 0), 4);
    return n > 0 ? new ChunkPool(n) : undefined;
  }

  private constructor(n: number) {
    for (let i = 0; i < n; i++) {
      const w = new Worker(new URL('./chunk-worker.js', import.meta.url));
      w.unref();
      w.on('message', (m: ChunkDone) => this._done(m));
      w.on('error', (e) => this._fail(e));
      w.on('exit', (code) => {
        if (code !== 0) this._fail(new Error(`chunk worker exited with status ${code}`));
      });
      this._workers.push(w);
    }
  }

  /** `data` must own its ArrayBuffer: it is transferred to the worker (and unusable after). */
  process(data: Buffer, compressor: WritableCompressor, digester: DigesterName): Promise<ChunkResult> {
    if (this._broken) return Promise.reject(this._broken);
    const id = this._next++;
    const w = this._workers[this._rr++ % this._workers.length]!;
    return new Promise<ChunkResult>((resolve, reject) => {
      this._pending.set(id, { resolve, reject });
      const job: ChunkJob = { id, compressor, digester, data };
      w.postMessage(job, [data.buffer as ArrayBuffer]);
    });
  }

  async close(): Promise<void> {
    await Promise.all(this._workers.map((w) => w.terminate()));
    this._fail(new BuildError('chunk pool closed'));
  }

  private _done(m: ChunkDone): void {
    const p = this._pending.get(m.id);
    if (!p) return;
    this._pending.delete(m.id);
    if (m.error !== undefined || !m.digest || !m.stored) {
      p.reject(new BuildError(`chunk worker: ${m.error ?? 'empty reply'}`));
      return;
    }
    const b = (u: Uint8Array): Buffer => Buffer.from(u.buffer, u.byteOffset, u.byteLength);
    p.resolve({ digest: b(m.digest), stored: b(m.stored), compressed: m.raw !== true });
  }

  private _fail(e: Error): void {
    this._broken ??= e;
    for (const p of this._pending.values()) p.reject(e);
    this._pending.clear();
  }
}
