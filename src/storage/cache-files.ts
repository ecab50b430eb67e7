/**
 * Opening one blob's cache files (`<blob_id>.blob.data` or `.blob.raw`, and the chunk map; the
 * layout says which: cache-layout.ts) so that nothing
 * damaged is ever served and daemons sharing a work_dir never undo each other's work.
 *
 * The chunk map's flock decides who may repair (cache/chunk_map.h): the first opener (exclusive)
 * rebuilds a damaged map, cuts a data file longer than the blob, and clears the bits of chunks
 * whose bytes are not in the data file (holes: a power loss before writeback, a truncated or
 * replaced data file), then shares the lock. Later openers (another nydusd on the same work_dir)
 * only read; a file they would have to repair is an error, and the caller serves that blob
 * without a cache.
 */
import { constants as fsc } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { open } from 'node:fs/promises';

import type { NativeChunkMap } from '../native/index.js';
import { dataExtents, openChunkMap } from '../native/index.js';
import type { Logger } from '../util/logger.js';
import { errnoCode, StorageError } from './contract/errors.js';
import type { CacheLayout, ChunkRanges } from './cache-layout.js';
import type { BlobInfo } from './types.js';

export interface CacheFiles {
  fh: FileHandle;
  map: NativeChunkMap;
}

/** A chunk's range in the data file, when the image says. */
export type ChunkRange = (index: number) => { offset: number; size: number } | undefined;

/**
 * Opens (creating) the data file and the chunk map with the lock held exclusively when this is
 * the first user; `verify` then runs before the lock is shared (see dropBitsOverHoles).
 */
export async function openCacheFiles(info: BlobInfo, layout: CacheLayout, log: Logger, verify: (f: CacheFiles) => void): Promise<CacheFiles> {
  const id = info.blobId;
  const { dataPath, mapPath, minSize, maxSize } = layout;
  let fh: FileHandle;
  try {
    fh = await open(dataPath, fsc.O_RDWR | fsc.O_CREAT, 0o644);
  } catch (err) {
    throw new StorageError('ERR_CACHE_FILE', `blob ${id}: cannot open cache file ${dataPath}: ${errnoCode(err)}`, { cause: err });
  }
  let map: NativeChunkMap | undefined;
  try {
    try {
      map = openChunkMap(mapPath, info.chunkCount, true);
    } catch (err) {
      throw new StorageError('ERR_CACHE_FILE', `blob ${id}: ${(err as Error).message}`, { cause: err });
    }
    if (map.repaired) log.warn(`blob ${id}: chunk map ${mapPath} was damaged (${map.repaired}); rebuilt empty, its chunks are fetched again`);
    const size = (await fh.stat()).size;
    if (size > maxSize) {
      if (!map.exclusive) {
        throw new StorageError('ERR_CACHE_FILE', `blob ${id}: cache file ${dataPath} has ${size} bytes, more than the ${maxSize} it may hold, and another process uses it`);
      }
      log.warn(`blob ${id}: cache file ${dataPath} has ${size} bytes, more than the ${maxSize} it may hold; discarded, its chunks are fetched again`);
      for (const i of map.readyIndexes()) map.clearReady(i);
      await fh.truncate(0);
    }
    if (size > maxSize || size < minSize) await fh.truncate(minSize);
    const cipher = layout.checkCipher(map, map.exclusive);
    if (cipher !== '') log.warn(`blob ${id}: ${cipher}`);
    const files = { fh, map };
    if (map.exclusive) {
      verify(files);
      map.share();
    }
    return files;
  } catch (err) {
    map?.close();
    await fh.close();
    throw err instanceof StorageError ? err : new StorageError('ERR_CACHE_FILE', `blob ${id}: cannot open cache file ${dataPath}: ${errnoCode(err)}`, { cause: err });
  }
}

/**
 * Clears the ready bit of every chunk whose range is not entirely data in the data file. Chunks
 * the image gives no range for (no blob meta and no chunk lookup) are cleared only when the data
 * file holds no data at all. Returns how many bits were cleared. `range`: per chunk, or all
 * ready chunks' at once (CacheLayout.storedRanges: much cheaper for a blob with a chunk info array).
 */
export function dropBitsOverHoles(files: CacheFiles, range: ChunkRange | ChunkRanges): number {
  const ready = files.map.readyIndexes();
  if (ready.length === 0) return 0;
  const ext = dataExtents(files.fh.fd);
  const n = ext.length / 2;
  const ranges = typeof range === 'function' ? perChunk(ready, range) : range.of(ready);
  // A data file that is one extent (a warm cache whose chunks were all fetched): a tight loop
  // over the ranges finds every chunk inside it in the common case, where the general loop
  // below costs a start several milliseconds more.
  if (n === 1 && allInside(ranges, ext[0] as number, ext[1] as number)) return 0;
  let cleared = 0;
  for (let k = 0; k < ready.length; k++) {
    const i = ready[k] as number;
    const offset = ranges[2 * k] as number;
    const size = ranges[2 * k + 1] as number;
    // Without the chunk's range only a data file with no data at all is known to have lost it.
    if (Number.isNaN(offset)) {
      if (n === 0 && files.map.clearReady(i)) cleared++;
      continue;
    }
    // The last extent starting at or before offset must reach offset + size.
    let lo = 0;
    let hi = n - 1;
    let at = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if ((ext[2 * mid] as number) <= offset) {
        at = mid;
        lo = mid + 1;
      } else {
        hi = mid - 1;
      }
    }
    const covered = at >= 0 && (ext[2 * at + 1] as number) >= offset + size;
    if (!covered && files.map.clearReady(i)) cleared++;
  }
  return cleared;
}

/** The ranges of `indexes`, one call of `range` each, as ChunkRanges gives them (NaN: none). */
function perChunk(indexes: Uint32Array, range: ChunkRange): Float64Array {
  const out = new Float64Array(indexes.length * 2).fill(Number.NaN);
  indexes.forEach((i, k) => {
    const r = range(i);
    if (r) {
      out[2 * k] = r.offset;
      out[2 * k + 1] = r.size;
    }
  });
  return out;
}

/** Whether every `[offset, size]` pair of `ranges` lies within [start, end). */
function allInside(ranges: Float64Array, start: number, end: number): boolean {
  for (let k = 0; k < ranges.length; k += 2) {
    const offset = ranges[k] as number;
    // NaN (no range) fails both comparisons.
    if (!(offset >= start && offset + (ranges[k + 1] as number) <= end)) return false;
  }
  return true;
}
