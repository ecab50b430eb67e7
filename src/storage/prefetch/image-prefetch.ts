/**
 * Prefetch for one mounted RAFS image: the entry point the daemon (a --bootstrap start, or an
 * API mount) calls once the image is served.
 *
 * At start, in this order (each later request skips what an earlier one fetched):
 *  1. readahead (backend `readahead`): blobs with a readahead log get exactly its ranges; the
 *     others are recorded for `readahead_sec` seconds and their log written;
 *  2. prefetch (`rafs.prefetch.enable` / `fs_prefetch.enable`): the files of `--prefetch-files`
 *     or the API mount's `prefetch_files`, else the bootstrap's prefetch table (directories
 *     expanded); "/" in the list, or a table holding only the root, means the whole image;
 *  3. with `prefetch_all`, the whole image: every blob's chunks in compressed order.
 * Planning (a walk of the image) runs after start returns, so it never delays serving.
 *
 * Prefetch needs a blob cache: with dummycache there is nowhere to put the data (upstream skips
 * that combination too), so it is off with a warning.
 */
import type { ChunkInfo, RafsImage } from '../../rafs/index.js';
import type { Logger } from '../../util/logger.js';
import type { CachedBlob } from '../blob-cache.js';
import type { DemandTracker } from '../demand.js';
import type { ImageStorage } from '../image-storage.js';
import type { PrefetchSettings, ReadaheadSettings, StorageSettings } from '../settings.js';
import { kPrefetchOff } from '../settings.js';
import { checkPrefetchList, chunkIndex, filesChunks, resolvePath } from './image-files.js';
import type { PlannedRange } from './plan.js';
import type { ChunksWithin } from './plan.js';
import { chunksWithin, planChunkList, planRecorded, planWholeBlob } from './plan.js';
import type { PrefetchJob, PrefetchSource } from './prefetcher.js';
import { Prefetcher } from './prefetcher.js';
import { accessLogPath, readAccessLog, ReadaheadRecorder } from './readahead-log.js';
import type { PrefetchStats } from './stats.js';
import { emptyPrefetchStats } from './stats.js';

export interface ImagePrefetchOptions {
  image: RafsImage;
  storage: ImageStorage;
  /** prefetch, readahead, cache work_dir (StorageService.settings, or storageSettings(config)). */
  settings: Pick<StorageSettings, 'cache'> & { prefetch?: PrefetchSettings | undefined; readahead?: ReadaheadSettings | undefined };
  /** StorageService.demand: on-demand reads in flight, which prefetch yields to. */
  demand?: DemandTracker | undefined;
  /** `--prefetch-files` / the mount's `prefetch_files` (absolute paths); overrides the table. */
  files?: readonly string[] | undefined;
  log: Logger;
}

/** What a prefetchFiles() call queued. */
export interface PrefetchFilesResult {
  /** Regular files whose chunks were queued (directories expanded; 0 with wholeImage). */
  files: number;
  /** The list named the root: the whole image was queued. */
  wholeImage: boolean;
  /** Bytes of backend requests planned. */
  bytes: number;
  /** Paths not in the image (skipped, as upstream). */
  missing: string[];
  /** Set when nothing can be prefetched: why (prefetch disabled, no blob cache, stopped). */
  ignored?: string;
}

export class ImagePrefetch {
  private readonly _prefetcher: Prefetcher | undefined;
  private readonly _recorder: ReadaheadRecorder | undefined;
  private readonly _blobs: Map<number, CachedBlob>;
  private readonly _prefetch: PrefetchSettings;
  private _index: Map<number, ChunkInfo[]> | undefined;
  private _planning: Promise<void> = Promise.resolve();
  private _stopped = false;

  private constructor(private readonly _o: ImagePrefetchOptions) {
    const s = _o.settings;
    this._prefetch = s.prefetch ?? kPrefetchOff;
    const readahead = s.readahead?.enable === true;
    this._blobs = new Map(_o.storage.cachedBlobs().map((b) => [b.info.index, b]));
    const wanted = this._prefetch.enable || readahead;
    if (wanted && (s.cache.kind !== 'blobcache' || this._blobs.size === 0)) {
      _o.log.warn(`${readahead && !this._prefetch.enable ? 'readahead' : 'prefetch'} needs a blob cache (cache.type blobcache); this image has none, so it is fetched on demand only`);
      return;
    }
    if (!wanted) return;
    this._prefetcher = new Prefetcher({ threads: this._prefetch.threads, bandwidthLimit: this._prefetch.bandwidthLimit, demand: _o.demand, log: _o.log });
    if (readahead && s.cache.kind === 'blobcache') {
      // Installed at once, so the first reads are seen; blobs that turn out to have a log stop recording.
      const rec = new ReadaheadRecorder(s.cache.workDir, s.readahead?.seconds ?? 10, _o.log);
      this._recorder = rec;
      _o.storage.observeFetches(rec.observe);
      rec.watch(this._blobs.values());
    }
  }

  /** Starts prefetch for a served image; returns at once (planning follows asynchronously). */
  static start(o: ImagePrefetchOptions): ImagePrefetch {
    if (o.files) checkPrefetchList(o.files);
    const p = new ImagePrefetch(o);
    const pf = p._prefetcher;
    if (pf) {
      const t0 = performance.now();
      p._planning = p._plan(o.files).catch((err: unknown) => o.log.warn(`prefetch planning failed: ${(err as Error).message}`));
      void p._planning
        .then(() => pf.whenIdle())
        .then(() => {
          const s = pf.stats();
          if (p._stopped || s.prefetch_total_size === 0) return;
          o.log.info(
            `prefetch done: ${s.prefetch_requests_count} request(s), ${s.prefetch_data_amount} bytes in ${(performance.now() - t0).toFixed(0)} ms` +
              ` (${s.prefetch_skipped_requests} left out as cached, ${s.prefetch_failed_requests} failed)`,
          );
        });
    }
    else if (o.files && o.files.length > 0 && !p._prefetch.enable) o.log.warn('prefetch files given but prefetch is disabled (rafs.prefetch.enable / fs_prefetch.enable); ignored, as upstream');
    return p;
  }

  /**
   * Queues the files at `paths` (absolute; directories expanded) behind what is queued. Throws
   * StorageError ERR_PREFETCH_LIST on a relative path; missing paths are reported, not fatal.
   */
  prefetchFiles(paths: readonly string[]): PrefetchFilesResult {
    checkPrefetchList(paths);
    const none = (ignored: string): PrefetchFilesResult => ({ files: 0, wholeImage: false, bytes: 0, missing: [], ignored });
    if (this._stopped) return none('prefetch stopped');
    if (!this._prefetch.enable) return none('prefetch is disabled (rafs.prefetch.enable / fs_prefetch.enable)');
    if (!this._prefetcher) return none('prefetch needs a blob cache');
    const { image, log } = this._o;
    const missing: string[] = [];
    const refs = [];
    let all = false;
    for (const p of paths) {
      let ref;
      try {
        ref = resolvePath(image, p);
      } catch (err) {
        log.warn(`prefetch: ${p}: ${(err as Error).message}`);
      }
      if (ref === undefined) missing.push(p);
      else if (ref === image.super.rootRef) all = true;
      else refs.push(ref);
    }
    if (missing.length > 0) log.warn(`prefetch: not in the image, skipped: ${missing.join(', ')}`);
    if (all) return { files: 0, wholeImage: true, bytes: this._push(this._wholeImage(), 'all'), missing };
    const { chunks, files } = filesChunks(image, refs, log);
    return { files, wholeImage: false, bytes: this._push(planChunkList(chunks, this._prefetch.batchSize), 'files'), missing };
  }

  /** Progress in upstream's blobcache metric names (zeros when prefetch is off). */
  stats(): PrefetchStats {
    return this._prefetcher?.stats() ?? emptyPrefetchStats();
  }

  /** Resolves once planning is done and every queued request has completed (or stop()). */
  async whenIdle(): Promise<void> {
    await this._planning;
    await this._prefetcher?.whenIdle();
  }

  /** Umount/stop: drops what is queued, aborts running prefetch requests, writes the readahead logs. */
  async stop(): Promise<void> {
    if (this._stopped) return;
    this._stopped = true;
    await this._prefetcher?.stop();
    await this._planning;
    if (this._recorder) {
      this._o.storage.observeFetches(undefined);
      await this._recorder.flush();
    }
  }

  private _push(ranges: readonly PlannedRange[], source: PrefetchSource): number {
    const jobs: PrefetchJob[] = [];
    let bytes = 0;
    for (const r of ranges) {
      const blob = this._blobs.get(r.blobIndex);
      if (!blob) continue;
      jobs.push({ blob, range: r, source });
      bytes += r.length;
    }
    this._prefetcher?.push(jobs);
    return bytes;
  }

  /**
   * Every chunk of blob `index` by compressed offset: from the blob's CI when the cache can fill
   * every chunk from it (no filesystem walk: cheap at start), else from a walk of the image.
   */
  private _blobChunks(index: number): ChunkInfo[] {
    const blob = this._blobs.get(index);
    const n = blob?.meta?.entryCount ?? 0;
    if (blob && n === blob.info.chunkCount) {
      const out: ChunkInfo[] = [];
      for (let i = 0; i < n; i++) {
        const c = blob.chunkAt(i);
        if (!c) break;
        out.push(c);
      }
      if (out.length === n) return out.sort((a, b) => a.compressedOffset - b.compressedOffset || a.chunkIndex - b.chunkIndex);
    }
    this._index ??= chunkIndex(this._o.image, this._o.log);
    return this._index.get(index) ?? [];
  }

  /**
   * A lookup of blob `index`'s chunks by compressed range straight from its CI, when the CI is
   * in offset order: a replay then looks at the chunks of its ranges only, not at every chunk
   * of the blob (_blobChunks), which would be most of the time before its first request. A range
   * holding a chunk the cache cannot fill from the CI alone (validation on, without digests)
   * takes the walk of _blobChunks instead.
   */
  private _chunksWithin(index: number): ChunksWithin | undefined {
    const blob = this._blobs.get(index);
    const meta = blob?.meta;
    if (!blob || !meta || meta.entryCount !== blob.info.chunkCount || !meta.offsetSorted) return undefined;
    let sorted: ChunkInfo[] | undefined;
    return (offset, length) => {
      const end = offset + length;
      const out: ChunkInfo[] = [];
      for (let i = meta.lowerBound(offset); i < meta.entryCount; i++) {
        const e = meta.entry(i);
        if (!e || e.compressedOffset >= end) break;
        if (e.compressedOffset + e.compressedSize > end) continue;
        const c = blob.chunkAt(i);
        if (!c) {
          sorted ??= this._blobChunks(index);
          return chunksWithin(sorted, offset, length);
        }
        out.push(c);
      }
      return out;
    };
  }

  private _wholeImage(): PlannedRange[] {
    const out: PlannedRange[] = [];
    for (const index of this._blobs.keys()) out.push(...planWholeBlob(index, this._blobChunks(index), this._prefetch.batchSize));
    return out;
  }

  private async _plan(files: readonly string[] | undefined): Promise<void> {
    // After the caller's first turn: serving starts before any planning walk.
    await new Promise((r) => setImmediate(r));
    if (this._recorder) await this._planReadahead(this._recorder);
    if (this._stopped || !this._prefetch.enable) return;
    const { image, log } = this._o;
    let whole = false;
    if (files && files.length > 0) {
      const r = this.prefetchFiles(files);
      whole = r.wholeImage;
      log.info(`prefetch: ${whole ? 'the whole image' : `${r.files} file(s)`} from the prefetch list, ${r.bytes} bytes planned`);
    } else {
      const table = image.prefetchRefs();
      const root = image.super.rootRef;
      if (table.includes(root)) {
        whole = true;
        this._push(this._wholeImage(), 'all');
      } else if (table.length > 0) {
        const { chunks, files: n } = filesChunks(image, table, log);
        const bytes = this._push(planChunkList(chunks, this._prefetch.batchSize), 'files');
        log.info(`prefetch: ${n} file(s) from the bootstrap's prefetch table, ${bytes} bytes planned`);
      }
    }
    if (this._prefetch.prefetchAll && !whole) this._push(this._wholeImage(), 'all');
    if (whole || this._prefetch.prefetchAll) log.info(`prefetch: the whole image (${this._blobs.size} blob(s))`);
  }

  private async _planReadahead(rec: ReadaheadRecorder): Promise<void> {
    const { log, settings } = this._o;
    if (settings.cache.kind !== 'blobcache') return;
    const workDir = settings.cache.workDir;
    for (const [index, blob] of this._blobs) {
      const path = accessLogPath(workDir, blob.info.blobId);
      let ranges;
      try {
        ranges = await readAccessLog(path, blob.info.compressedSize);
      } catch (err) {
        log.warn(`${(err as Error).message}; recording a new one`);
        continue;
      }
      if (this._stopped) return;
      if (!ranges) continue;
      const planned = planRecorded(index, ranges, this._chunksWithin(index) ?? this._blobChunks(index), this._prefetch.batchSize);
      if (planned.length === 0) {
        log.warn(`readahead log ${path}: none of its ${ranges.length} range(s) holds a chunk of this image; recording a new one`);
        continue;
      }
      rec.skip(blob);
      const bytes = this._push(planned, 'readahead');
      log.info(`readahead: ${planned.length} range(s) (${bytes} bytes) of blob ${blob.info.blobId} from ${path}`);
    }
  }
}
