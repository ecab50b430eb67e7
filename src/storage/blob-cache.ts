/**
 * `blobcache` for one blob: `<blob_id>.blob.data` (uncompressed chunks at their uncompressed
 * offsets, sparse, sized to the blob's uncompressed size), `<blob_id>.blob.data.chunk_map` (the
 * native persistent bitmap) and `<blob_id>.blob.meta` when the blob has CI. Same files and
 * layouts as upstream, so caches survive restarts and are interchangeable.
 *
 * Invariant: a chunk's bit is set only after its bytes were written (pwrite completed), and
 * never for data that failed to decode or validate; a kill at any point leaves no ready bit
 * over missing or bad data. One fetch per chunk: concurrent misses join the in-flight fetch.
 *
 * When the cache file cannot be written (full disk, quota, I/O error), fetched chunks go to the
 * blob's in-memory spill instead and are served from there (cache-health.ts); damaged cache files
 * are repaired at open, and daemons sharing a work_dir coordinate through cache-files.ts.
 */
import { setMaxListeners } from 'node:events';
import { read as fsRead } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { promisify } from 'node:util';

import type { NativeChunkMap } from '../native/index.js';
import { kBlobFeatures, kMaxChunksPerBlob } from '../rafs/layout/constants.js';
import type { Logger } from '../util/logger.js';
import type { BlobBackend } from './backend.js';
import { deferred, errnoName, kOnDemand, kReadahead } from './fetch-handle.js';
import type { Deferred, FetchHandle, NativeBlobRegistration, PlannedFetch } from './fetch-handle.js';
export type { NativeBlobRegistration, PlannedFetch } from './fetch-handle.js';
import { checkBlobId } from './blob-id.js';
import type { BlobMeta } from './blob-meta.js';
import { blobMetaPath, fetchBlobMeta, readBlobMetaFile, writeBlobMetaFile } from './blob-meta.js';
import type { SpillEntry } from './cache-health.js';
import { CacheWriteHealth, SpillBudget } from './cache-health.js';
import { dropBitsOverHoles, openCacheFiles } from './cache-files.js';
import type { CacheFormat } from './cache-layout.js';
import { CacheLayout } from './cache-layout.js';
import type { BlobSource } from './chunk-data.js';
import { checkChunk, intersect, untilAborted } from './chunk-data.js';
import type { FillHost } from './cache-fill.js';
import { fillFromFile, fillRange } from './cache-fill.js';
import type { CacheCounters } from './counters.js';
import { errnoCode, reportOnce, StorageError } from './contract/errors.js';
import type { DemandTracker } from './demand.js';
import { amplifyRanges, mergeChunks } from './fetch-plan.js';
import type { FetchRange } from './fetch-plan.js';
import type { ReadaheadOptions, ReadaheadView } from './readahead.js';
import type { ReadBufferPool } from './read-buffers.js';
import { SequentialReadahead } from './readahead.js';
import { StreamFill } from './stream-fill.js';
import type { BlobInfo, ChunkInfo } from './types.js';

export interface BlobCacheContext {
  backend: BlobBackend;
  workDir: string;
  validate: boolean;
  /** rafs.batch_size / amplify_io. */
  batchSize: number;
  counters: CacheCounters;
  log: Logger;
  /** On-demand reads in flight across the service (prefetch yields to them). */
  demand?: DemandTracker;
  /** Shared by the blobs of one cache directory; made per blob when absent (tests). */
  health?: CacheWriteHealth;
  spill?: SpillBudget;
  /** cache.compressed / encryption (cache-layout.ts); absent: plain `.blob.data`. */
  format?: CacheFormat | undefined;
  /** Sequential readahead on the demand path (network backends; readahead.ts). */
  readahead?: ReadaheadOptions;
  /** Memory that local backends read fetched ranges into (read-buffers.ts); absent: fresh buffers. */
  buffers?: ReadBufferPool;
}

/** Sees every on-demand backend read of a blob as it is issued (the readahead log records them). */
export type FetchObserver = (blob: CachedBlob, r: FetchRange) => void;

const preadFd = promisify(fsRead);

export interface CachedBlobOptions {
  /** Chunk metadata by chunk index (from the bootstrap, with digests) for amplification. */
  chunkLookup?: (chunkIndex: number) => ChunkInfo | undefined;
}

const kZeroDigest = Buffer.alloc(32);
/** Reads retried when a chunk left the spill between ensureReady and the copy. */
const kMaxReadAttempts = 3;

/** rafs-format.md: blob table uncompressed_size <= 2^44. */
const kMaxUncompressedBlob = 2 ** 44;

export class CachedBlob implements BlobSource {
  readonly persistent = true;
  private readonly _inflight = new Map<number, Deferred>();
  private readonly _lifetime = new AbortController();
  private _closed = false;
  /** Set by ImageStorage.observeFetches. */
  fetchObserver: FetchObserver | undefined;
  /**
   * Misses fetch their neighbours too (amplify_io). The readahead recorder turns this off while
   * it records, so its log holds the ranges a start read, not what amplification added.
   */
  amplify = true;
  /** Chunks held in the spill (not in the cache file), by chunk index. */
  private readonly _spilled = new Map<number, SpillEntry>();
  private readonly _health: CacheWriteHealth;
  private readonly _budget: SpillBudget;
  /** What the fill (cache-fill.ts) sees of this blob. */
  private readonly _fillHost: FillHost;
  private readonly _readahead: SequentialReadahead | undefined;
  /** On-demand ranges are read by the native fill from the backend's file (_fetchFromFile). */
  private readonly _fromFile: boolean;

  private constructor(
    readonly info: BlobInfo,
    readonly dataPath: string,
    private readonly _fh: FileHandle,
    private readonly _map: NativeChunkMap,
    private readonly _meta: BlobMeta | undefined,
    private readonly _ctx: BlobCacheContext,
    private readonly _opts: CachedBlobOptions,
    private readonly _layout: CacheLayout,
  ) {
    // Every request in flight listens on the lifetime signal until it ends (readahead windows
    // go out as several requests beside the misses): no listener limit, so no leak warning.
    setMaxListeners(0, this._lifetime.signal);
    this._budget = _ctx.spill ?? new SpillBudget();
    this._health = _ctx.health ?? new CacheWriteHealth(_ctx.workDir, _ctx.log, this._budget.limit);
    this._readahead = _ctx.readahead ? new SequentialReadahead(_ctx.readahead) : undefined;
    // gzip is decoded in JavaScript, from a buffer the backend read.
    this._fromFile = _ctx.backend.hasFiles && info.compressor !== 'gzip';
    this._fillHost = {
      info,
      dataPath,
      layoutKind: _layout.kind,
      validate: _ctx.validate,
      counters: _ctx.counters,
      log: _ctx.log,
      health: this._health,
      budget: this._budget,
      map: _map,
      fd: _fh.fd,
      closedError: () => (this._closed ? this._closedError() : undefined),
      settle: (c, err) => this._settle(c, err),
      spilled: (c) => this._trackSpilled(c),
    };
  }

  static async open(info: BlobInfo, ctx: BlobCacheContext, opts: CachedBlobOptions = {}): Promise<CachedBlob> {
    checkBlobId(info.blobId);
    if (!Number.isSafeInteger(info.uncompressedSize) || info.uncompressedSize <= 0 || info.uncompressedSize > kMaxUncompressedBlob) {
      throw new StorageError('ERR_BAD_CHUNK', `blob ${info.blobId}: invalid uncompressed size ${info.uncompressedSize}`);
    }
    if (!Number.isInteger(info.chunkCount) || info.chunkCount <= 0 || info.chunkCount > kMaxChunksPerBlob) {
      throw new StorageError('ERR_BAD_CHUNK', `blob ${info.blobId}: invalid chunk count ${info.chunkCount}`);
    }
    const layout = CacheLayout.for(info, ctx.workDir, ctx.format, ctx.validate);
    // SEPARATE: the CI lives in a separate meta blob, not at ci_offset of this one; the
    // blob is still served, without amplification from the CI.
    const separate = (info.features & kBlobFeatures.SEPARATE) !== 0;
    const meta = info.metaCiUncompressedSize > 0 && !separate ? await CachedBlob._loadMeta(info, ctx) : undefined;
    const { dataPath } = layout;
    const { fh, map } = await openCacheFiles(info, layout, ctx.log, (files) => {
      // One pass over the chunk info array when it alone gives the ranges (no chunk lookup).
      const ranges = opts.chunkLookup === undefined && meta !== undefined ? layout.storedRanges(meta.ci) : (i: number) => chunkRange(i, opts, meta, layout);
      const cleared = dropBitsOverHoles(files, ranges);
      if (cleared > 0) {
        ctx.log.warn(`blob ${info.blobId}: ${cleared} chunk(s) marked ready in ${layout.mapPath} have no data in ${dataPath} (lost in a crash?); they are fetched again`);
      }
    });
    try {
      layout.attach(map);
    } catch (err) {
      map.close();
      await fh.close();
      throw new StorageError('ERR_CACHE_FILE', `blob ${info.blobId}: ${(err as Error).message}`, { cause: err });
    }
    return new CachedBlob(info, dataPath, fh, map, meta, ctx, opts, layout);
  }

  private static async _loadMeta(info: BlobInfo, ctx: BlobCacheContext): Promise<BlobMeta> {
    const path = blobMetaPath(ctx.workDir, info.blobId);
    const cached = await readBlobMetaFile(path, info);
    if (cached) return cached;
    const meta = await fetchBlobMeta(info, ctx.backend);
    ctx.counters.backendReads++;
    ctx.counters.backendBytes += info.metaCiCompressedSize + 4096;
    try {
      await writeBlobMetaFile(path, meta);
    } catch (err) {
      // Only a cache of what the backend gave: the blob is served from memory without it.
      ctx.log.warn(`blob ${info.blobId}: cannot write ${path} (${errnoCode(err)}); the blob meta is fetched again at the next start`);
    }
    return meta;
  }

  get chunkMap(): NativeChunkMap {
    return this._map;
  }
  /** Decoded CI, when the blob has one. */
  get meta(): BlobMeta | undefined {
    return this._meta;
  }
  get metaPath(): string | undefined {
    return this._meta ? blobMetaPath(this._ctx.workDir, this.info.blobId) : undefined;
  }

  /** In the cache file, or held in the spill. */
  isReady(chunkIndex: number): boolean {
    return !this._closed && this._present(chunkIndex);
  }

  private _present(i: number): boolean {
    return this._map.isReady(i) || this._spilled.has(i);
  }

  nativeRegistration(): NativeBlobRegistration {
    return {
      blobId: this.info.blobId,
      blobIndex: this.info.index,
      dataPath: this.dataPath,
      chunkMap: this._map,
      compressor: this.info.compressor,
      chunkCount: this.info.chunkCount,
    };
  }

  /** See CacheLayout.learnAhead (a no-op for the plain layout). */
  learnAhead(chunks: readonly ChunkInfo[]): void {
    if (!this._closed) this._layout.learnAhead(chunks);
  }

  async ensureReady(chunks: readonly ChunkInfo[], signal?: AbortSignal, aheadEnd?: number): Promise<void> {
    if (this._closed) throw new StorageError('ERR_STORAGE_CLOSED', `blob ${this.info.blobId}: cache closed`);
    this._layout.learn(chunks);
    const waits: Promise<void>[] = [];
    const missing: ChunkInfo[] = [];
    const seen = new Set<number>();
    /** Missed or joined: what the readahead planner sees of this read. */
    const touched: number[] = [];
    const counters = this._ctx.counters;
    for (const c of chunks) {
      checkChunk(this.info, c);
      if (seen.has(c.chunkIndex)) continue;
      seen.add(c.chunkIndex);
      if (this._present(c.chunkIndex)) {
        counters.hits++;
        continue;
      }
      counters.misses++;
      touched.push(c.chunkIndex);
      const running = this._inflight.get(c.chunkIndex);
      if (running) {
        counters.inflightJoins++;
        // Waiting for a request already on the wire beats a second one. A speculative one
        // (prefetch, with its smaller retry budget; readahead, whose stream ends with a failure)
        // was nobody's to fail: this READ then gets one on-demand attempt of its own.
        const prefetch = running.handle.priority === 'prefetch';
        if (prefetch) running.handle.adopted = true;
        waits.push(prefetch || running.handle.ahead === true ? running.promise.catch(() => this.ensureReady([c], signal)) : running.promise);
        continue;
      }
      const d = deferred(kOnDemand);
      this._inflight.set(c.chunkIndex, d);
      waits.push(d.promise);
      missing.push(c);
    }
    const fetchedEnd = missing.length > 0 ? this._startFetch(missing) : 0;
    if (touched.length > 0) this._readAhead(touched, fetchedEnd, true, aheadEnd);
    if (waits.length > 0) await untilAborted(Promise.all(waits).then(() => undefined), signal, `blob ${this.info.blobId}`);
  }

  async readInto(chunks: readonly ChunkInfo[], fileOffset: number, out: Buffer, signal?: AbortSignal): Promise<void> {
    const wanted = chunks.filter((c) => intersect(c, fileOffset, out.length));
    await this.ensureReady(wanted, signal);
    for (const c of wanted) {
      const r = intersect(c, fileOffset, out.length);
      if (!r) continue;
      const dst = out.subarray(r.start - fileOffset, r.end - fileOffset);
      const at = c.uncompressedOffset + (r.start - c.fileOffset);
      for (let attempt = 1; ; attempt++) {
        if (this._map.isReady(c.chunkIndex)) {
          if (this._layout.plain) await this._readAll(this._fh.fd, dst, at, c);
          else this._layout.readChunk(this._fh.fd, c, r.start - c.fileOffset, dst);
          break;
        }
        const e = this._spilled.get(c.chunkIndex);
        if (e) {
          // Pinned: the spill must not evict these bytes while the copy runs.
          e.pins++;
          try {
            await this._readAll(this._map.spillFd(), dst, at, c);
          } finally {
            e.pins--;
          }
          break;
        }
        // Evicted from the spill since ensureReady: fetch it again.
        if (attempt >= kMaxReadAttempts) throw new StorageError('ERR_CACHE_FILE', `blob ${this.info.blobId} chunk ${c.chunkIndex}: not cached after ${attempt} fetches`);
        await this.ensureReady([c], signal);
      }
    }
  }

  private async _readAll(fd: number, dst: Buffer, position: number, c: ChunkInfo): Promise<void> {
    let done = 0;
    while (done < dst.length) {
      const { bytesRead: n } = await preadFd(fd, dst, done, dst.length - done, position + done);
      if (n === 0) {
        throw new StorageError('ERR_CACHE_FILE', `blob ${this.info.blobId} chunk ${c.chunkIndex}: cache file ${this.dataPath} is shorter than expected`);
      }
      done += n;
    }
  }

  /**
   * Chunk `index` as the cache knows it without the filesystem (the bootstrap lookup given at
   * open, else the blob's CI), when it is safe to fill: checked against the blob, and with a
   * digest when validation is on. Amplification and prefetch planning use it.
   */
  chunkAt(index: number): ChunkInfo | undefined {
    let c = this._opts.chunkLookup?.(index);
    if (!c && this._meta) {
      const e = this._meta.entry(index);
      if (!e || e.zran || e.batch || e.encrypted) return undefined;
      c = {
        chunkIndex: e.index,
        compressedOffset: e.compressedOffset,
        compressedSize: e.compressedSize,
        uncompressedOffset: e.uncompressedOffset,
        uncompressedSize: e.uncompressedSize,
        compressed: e.compressed,
        fileOffset: 0,
        blobIndex: this.info.index,
        digest: kZeroDigest,
      };
    }
    if (!c) return undefined;
    // With validation on, data we cannot validate is not worth fetching ahead.
    if ((this._ctx.validate || this._layout.needsDigest) && c.digest.equals(kZeroDigest)) return undefined;
    try {
      checkChunk(this.info, c);
    } catch {
      return undefined;
    }
    return c;
  }

  /** A chunk that amplification may add: known, not ready, not in flight, safe to fill. */
  private _amplifyCandidate(index: number): ChunkInfo | undefined {
    if (this._inflight.has(index) || this._present(index)) return undefined;
    return this.chunkAt(index);
  }

  /** Starts the fetches of `missing` (amplified); one past the furthest chunk index they cover. */
  private _startFetch(missing: ChunkInfo[]): number {
    const ranges = mergeChunks(missing, this._ctx.batchSize);
    if ((this._opts.chunkLookup || this._meta) && this.amplify) {
      const planned = new Set(missing.map((c) => c.chunkIndex));
      amplifyRanges(ranges, this._ctx.batchSize, this.info.chunkCount, (i) => (planned.has(i) ? undefined : this._amplifyCandidate(i)));
      // Register only what amplification actually added, so every in-flight entry settles.
      for (const r of ranges) {
        for (const c of r.chunks) {
          if (planned.has(c.chunkIndex)) continue;
          planned.add(c.chunkIndex);
          this._inflight.set(c.chunkIndex, deferred(kOnDemand));
          this._ctx.counters.chunksAmplified++;
        }
      }
    }
    let end = 0;
    for (const r of ranges) {
      for (const c of r.chunks) end = Math.max(end, c.chunkIndex + 1);
      void this._fetchRange(r, kOnDemand);
    }
    return end;
  }

  /**
   * Reads ahead of a sequential reader (readahead.ts); off while amplification is off.
   * `touched` undefined: a readahead request of this blob was delivered (ok) or failed.
   */
  private _readAhead(touched: number[] | undefined, fetchedEnd = 0, ok = true, aheadEnd?: number): void {
    const ra = this._readahead;
    if (!ra) return;
    // A failed readahead ends the stream: its chunks become candidates again, and retrying
    // them here would loop; the reader's own misses fetch them on demand.
    if (!touched && !ok) {
      ra.failed();
      return;
    }
    const off = !this.amplify || this._closed || !(this._opts.chunkLookup || this._meta);
    if (off && touched) return;
    const view: ReadaheadView = {
      chunkCount: this.info.chunkCount,
      batchSize: this._ctx.batchSize,
      chunkAt: (i) => this.chunkAt(i),
      // Nothing is a candidate while off: the planner still books the delivery.
      candidate: (i) => (off ? undefined : this._amplifyCandidate(i)),
    };
    const ranges = touched ? ra.touched(touched, fetchedEnd, view, aheadEnd) : ra.delivered(view);
    for (const r of ranges) {
      for (const c of r.chunks) this._inflight.set(c.chunkIndex, deferred(kReadahead));
      this._ctx.counters.chunksReadahead += r.chunks.length;
      void this._fetchRange(r, kReadahead, (done) => this._readAhead(undefined, 0, done));
    }
  }

  /**
   * The part of a planned range still worth fetching: its chunks that are neither ready nor in
   * flight (and pass the metadata checks), over the span they cover; the range itself when all
   * of it is. undefined when nothing is left.
   */
  plannedTodo(r: FetchRange): FetchRange | undefined {
    if (this._closed) return undefined;
    const todo = r.chunks.filter((c) => {
      if (this._inflight.has(c.chunkIndex) || this._map.isReady(c.chunkIndex)) return false;
      try {
        checkChunk(this.info, c);
        return true;
      } catch {
        return false;
      }
    });
    if (todo.length === 0) return undefined;
    if (todo.length === r.chunks.length) return r;
    let start = Infinity;
    let end = 0;
    for (const c of todo) {
      start = Math.min(start, c.compressedOffset);
      end = Math.max(end, c.compressedOffset + c.compressedSize);
    }
    return { offset: start, length: end - start, chunks: todo };
  }

  /**
   * The prefetch entry point: fetches a range the prefetch planner chose (no amplification: the
   * planner merged it already) with prefetch priority, through the same fill as a miss. Chunks
   * that became ready or in flight meanwhile are left out (see plannedTodo). `signal` aborts
   * the request unless an on-demand read has joined it. `onRead` is called once the backend
   * request has ended (the fill may still run), so a scheduler can send its next request
   * meanwhile. Never rejects.
   */
  async fetchPlanned(planned: FetchRange, signal?: AbortSignal, onRead?: () => void): Promise<PlannedFetch> {
    const r = this.plannedTodo(planned);
    if (!r || signal?.aborted) {
      onRead?.();
      return { bytes: 0, read: false, filled: 0, failed: 0 };
    }
    const handle: FetchHandle = { priority: 'prefetch', abort: new AbortController(), adopted: false };
    const onAbort = (): void => {
      if (!handle.adopted) handle.abort?.abort(signal?.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    const waits = r.chunks.map((c) => {
      const d = deferred(handle);
      this._inflight.set(c.chunkIndex, d);
      return d.promise;
    });
    try {
      const read = await this._fetchRange(r, handle, onRead);
      const results = await Promise.allSettled(waits);
      const failed = results.filter((x) => x.status === 'rejected').length;
      return { bytes: r.length, read, filled: results.length - failed, failed };
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
  }

  private _settle(c: ChunkInfo, err?: Error): void {
    const d = this._inflight.get(c.chunkIndex);
    this._inflight.delete(c.chunkIndex);
    if (!d) return;
    if (err) d.reject(err);
    else d.resolve();
  }

  /**
   * Fetches `r` and fills its chunks; false when the backend read itself failed. On-demand and
   * readahead requests fill their chunks as the bytes arrive (stream-fill.ts): a READ parked on
   * a chunk wakes once that chunk's bytes are in, not when the whole request is. A miss's own
   * chunks lead its range (amplify_io appends the ones after them), so the reader's next step
   * overlaps the rest of the transfer. Prefetch fills from the whole reply: nobody is parked on
   * most of it, and streaming it measured no faster in the container-start bench.
   */
  private async _fetchRange(r: FetchRange, h: FetchHandle, onRead?: (ok: boolean) => void): Promise<boolean> {
    const { backend, counters, log, demand } = this._ctx;
    const prefetch = h.priority === 'prefetch';
    // Readahead and prefetch fills yield to on-demand ones on the fill threads.
    const speculative = prefetch || h.ahead === true;
    if (!prefetch && this._fromFile) return this._fetchFromFile(r, onRead, speculative);
    const signal = h.abort ? AbortSignal.any([this._lifetime.signal, h.abort.signal]) : this._lifetime.signal;
    let buf: Buffer;
    let ok = false;
    // A backend that lands a read whole (local ones, which read into reused memory instead:
    // read-buffers.ts) has no bytes to fill from before the end, so only the others stream.
    const sf = !prefetch && r.chunks.length > 1 && !this._ctx.buffers ? new StreamFill(this._fillHost, r, speculative) : undefined;
    const into = sf ? undefined : this._ctx.buffers?.acquire(r.length);
    if (!prefetch) {
      demand?.begin();
      this.fetchObserver?.(this, r);
    }
    try {
      buf = await backend.read(this.info.blobId, r.offset, r.length, signal, { priority: h.priority, ...(sf ? { onProgress: sf.progress } : {}), ...(into ? { into } : {}) });
      counters.backendReads++;
      counters.backendBytes += r.length;
      ok = true;
    } catch (err) {
      const e = err instanceof Error ? err : new Error(String(err));
      const what = `blob ${this.info.blobId}: ${prefetch ? 'prefetching' : 'fetching'} ${r.chunks.length} chunk(s) at offset ${r.offset} length ${r.length} failed: ${e.message}`;
      // A prefetch that stopped, or the cache closing, is no failure worth a line.
      if (!this._closed && !h.abort?.signal.aborted) reportOnce(e, (m) => (prefetch ? log.warn(m) : log.error(m)), what);
      // Chunks already handed to a fill settle when it ends.
      for (const c of sf ? sf.pending() : r.chunks) this._settle(c, e);
      return false;
    } finally {
      if (!prefetch) demand?.end();
      onRead?.(ok);
    }
    // A backend that returned other memory never wrote `into`: it is free now, not after the fill.
    if (into && buf !== into) this._ctx.buffers?.release(into);
    try {
      await (sf ? sf.finish(buf) : fillRange(this._fillHost, r, buf, speculative));
    } finally {
      // The fill settled: the native fill threads no longer read it (the spill keeps a copy).
      if (into && buf === into) this._ctx.buffers?.release(into);
    }
    return true;
  }

  /**
   * An on-demand range of a local backend: the native fill reads it from the blob file on its own
   * thread, so the miss costs no read on Node's thread pool and no extra turn of the event loop
   * between the read and the fill. Prefetch keeps the backend read (its scheduler sends the next
   * request once a read has ended, while the fill runs).
   */
  private async _fetchFromFile(r: FetchRange, onRead?: (ok: boolean) => void, speculative = false): Promise<boolean> {
    const { backend, counters, log, demand } = this._ctx;
    demand?.begin();
    this.fetchObserver?.(this, r);
    const t0 = performance.now();
    let err: Error | undefined;
    try {
      const file = await backend.fileRange(this.info.blobId, r.offset, r.length);
      const read = await fillFromFile(this._fillHost, r, file, speculative);
      if (read.errno !== 0) {
        err = new StorageError('ERR_BACKEND', `blob ${this.info.blobId}: read at offset ${file.position} of ${file.path} failed: ${errnoName(read.errno)}`);
      } else {
        counters.backendReads++;
        counters.backendBytes += r.length;
      }
      backend.booked(r.length, read.micros > 0 ? read.micros / 1000 : performance.now() - t0, err !== undefined);
    } catch (e) {
      err = e instanceof Error ? e : new Error(String(e));
      backend.booked(r.length, performance.now() - t0, true);
    } finally {
      demand?.end();
      onRead?.(err === undefined);
    }
    if (!err) return true;
    const what = `blob ${this.info.blobId}: fetching ${r.chunks.length} chunk(s) at offset ${r.offset} length ${r.length} failed: ${err.message}`;
    if (!this._closed) reportOnce(err, (m) => log.error(m), what);
    for (const c of r.chunks) this._settle(c, err);
    return false;
  }

  /** A chunk the fill put in the spill: tracked so the budget can evict it. */
  private _trackSpilled(c: ChunkInfo): void {
    const index = c.chunkIndex;
    const entry: SpillEntry = {
      map: this._map,
      owner: this,
      index,
      offset: c.uncompressedOffset,
      size: c.uncompressedSize,
      pins: 0,
      onEvict: () => {
        if (this._spilled.get(index) === entry) this._spilled.delete(index);
      },
    };
    this._spilled.set(index, entry);
    this._budget.add(entry);
  }

  private _closedError(): StorageError {
    return new StorageError('ERR_STORAGE_CLOSED', `blob ${this.info.blobId}: cache closed`);
  }

  /** Resolves once every fill running now (amplified chunks included) has settled. */
  async settled(): Promise<void> {
    await Promise.allSettled([...this._inflight.values()].map((d) => d.promise));
  }

  /** Stops fetching, waits for running fills to settle, then closes the files. */
  async close(): Promise<void> {
    if (this._closed) return;
    this._closed = true;
    this._lifetime.abort();
    await Promise.allSettled([...this._inflight.values()].map((d) => d.promise));
    this._budget.dropAll(this);
    this._spilled.clear();
    this._map.close();
    await this._fh.close();
  }
}

function chunkRange(i: number, opts: CachedBlobOptions, meta: BlobMeta | undefined, layout: CacheLayout): { offset: number; size: number } | undefined {
  const c = opts.chunkLookup?.(i) ?? meta?.entry(i);
  return c ? layout.storedRange(c) : undefined;
}
