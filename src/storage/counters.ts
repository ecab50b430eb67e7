/** Blob cache counters (exposed later by the metrics API; tests assert on them). */
export interface CacheCounters {
  /** Chunks asked for that were already in the cache. */
  hits: number;
  /** Chunks asked for that had to be fetched (or joined an in-flight fetch). */
  misses: number;
  /** Misses satisfied by a fetch another request had already started. */
  inflightJoins: number;
  /** Backend requests issued by the cache (data and blob meta). */
  backendReads: number;
  backendBytes: number;
  /** Chunks written to cache files (requested and amplified). */
  chunksFilled: number;
  /** Chunks fetched only because of amplify_io. */
  chunksAmplified: number;
  /** Chunks fetched ahead of a sequential reader (readahead.ts). */
  chunksReadahead: number;
  digestErrors: number;
  decodeErrors: number;
  /** Fills the cache file did not take (full disk, quota, I/O error). */
  cacheWriteErrors: number;
  /** Chunks kept in memory instead (served from there until evicted). */
  chunksSpilled: number;
}

export function newCounters(): CacheCounters {
  return {
    hits: 0,
    misses: 0,
    inflightJoins: 0,
    backendReads: 0,
    backendBytes: 0,
    chunksFilled: 0,
    chunksAmplified: 0,
    chunksReadahead: 0,
    digestErrors: 0,
    decodeErrors: 0,
    cacheWriteErrors: 0,
    chunksSpilled: 0,
  };
}
