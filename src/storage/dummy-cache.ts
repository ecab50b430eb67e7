/**
 * `dummycache` for one blob: no cache files, every read goes to the backend (upstream
 * "dummycache": disable cache, access the backend directly). Concurrent reads of the same chunk
 * still share one backend request and one decode.
 */
import type { Logger } from '../util/logger.js';
import type { BlobBackend } from './backend.js';
import { checkBlobId } from './blob-id.js';
import type { BlobSource } from './chunk-data.js';
import { checkChunk, decodeAndVerify, intersect, untilAborted } from './chunk-data.js';
import type { CacheCounters } from './counters.js';
import { reportOnce, StorageError } from './contract/errors.js';
import { mergeChunks } from './fetch-plan.js';
import type { FetchRange } from './fetch-plan.js';
import type { BlobInfo, ChunkInfo } from './types.js';

export interface DirectBlobContext {
  backend: BlobBackend;
  validate: boolean;
  batchSize: number;
  counters: CacheCounters;
  log: Logger;
}

interface InflightChunk {
  promise: Promise<Buffer>;
  resolve: (b: Buffer) => void;
  reject: (e: Error) => void;
}

export class DirectBlob implements BlobSource {
  readonly persistent = false;
  private readonly _inflight = new Map<number, InflightChunk>();
  private readonly _lifetime = new AbortController();
  private _closed = false;

  constructor(
    readonly info: BlobInfo,
    private readonly _ctx: DirectBlobContext,
  ) {
    checkBlobId(info.blobId);
  }

  /** Nothing is cached: there is nothing to make ready. Validates the chunk list only. */
  ensureReady(chunks: readonly ChunkInfo[]): Promise<void> {
    for (const c of chunks) checkChunk(this.info, c);
    return Promise.resolve();
  }

  /** Decoded chunks, fetching (merged) what is not already in flight. */
  private _chunks(chunks: readonly ChunkInfo[]): Promise<Buffer>[] {
    const counters = this._ctx.counters;
    const fresh: ChunkInfo[] = [];
    const waits = chunks.map((c) => {
      counters.misses++;
      const running = this._inflight.get(c.chunkIndex);
      if (running) {
        counters.inflightJoins++;
        return running.promise;
      }
      let resolve!: (b: Buffer) => void;
      let reject!: (e: Error) => void;
      const promise = new Promise<Buffer>((res, rej) => {
        resolve = res;
        reject = rej;
      });
      promise.catch(() => undefined);
      this._inflight.set(c.chunkIndex, { promise, resolve, reject });
      fresh.push(c);
      return promise;
    });
    for (const r of mergeChunks(fresh, this._ctx.batchSize)) void this._fetch(r);
    return waits;
  }

  private _settle(index: number, data: Buffer | Error): void {
    const p = this._inflight.get(index);
    this._inflight.delete(index);
    if (!p) return;
    if (data instanceof Error) p.reject(data);
    else p.resolve(data);
  }

  private async _fetch(r: FetchRange): Promise<void> {
    const { backend, counters, log, validate } = this._ctx;
    let buf: Buffer;
    try {
      buf = await backend.read(this.info.blobId, r.offset, r.length, this._lifetime.signal);
      counters.backendReads++;
      counters.backendBytes += r.length;
    } catch (err) {
      const e = err instanceof Error ? err : new Error(String(err));
      if (!this._closed) reportOnce(e, (m) => log.error(m), `blob ${this.info.blobId}: fetching ${r.chunks.length} chunk(s) at offset ${r.offset} length ${r.length} failed: ${e.message}`);
      for (const c of r.chunks) this._settle(c.chunkIndex, e);
      return;
    }
    for (const c of r.chunks) {
      try {
        const raw = buf.subarray(c.compressedOffset - r.offset, c.compressedOffset - r.offset + c.compressedSize);
        this._settle(c.chunkIndex, decodeAndVerify({ blob: this.info, validate, counters, log }, c, raw));
      } catch (err) {
        this._settle(c.chunkIndex, err instanceof Error ? err : new Error(String(err)));
      }
    }
  }

  async readInto(chunks: readonly ChunkInfo[], fileOffset: number, out: Buffer, signal?: AbortSignal): Promise<void> {
    if (this._closed) throw new StorageError('ERR_STORAGE_CLOSED', `blob ${this.info.blobId}: closed`);
    const wanted = chunks.filter((c) => intersect(c, fileOffset, out.length));
    for (const c of wanted) checkChunk(this.info, c);
    const datas = await untilAborted(Promise.all(this._chunks(wanted)), signal, `blob ${this.info.blobId}`);
    wanted.forEach((c, i) => {
      const r = intersect(c, fileOffset, out.length);
      const data = datas[i];
      if (r && data) data.copy(out, r.start - fileOffset, r.start - c.fileOffset, r.end - c.fileOffset);
    });
  }

  async close(): Promise<void> {
    this._closed = true;
    this._lifetime.abort();
    await Promise.allSettled([...this._inflight.values()].map((i) => i.promise));
  }
}
