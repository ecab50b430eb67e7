/**
 * A backend request as the blob cache tracks it: who asked (on-demand or prefetch), whether
 * prefetch may still abort it, and the per-chunk promise its waiters share; what the native READ
 * fast path needs to register a cached blob.
 */
import { constants as osc } from 'node:os';

import type { NativeChunkMap } from '../native/index.js';
import type { ReadPriority } from './backend.js';
import type { BlobInfo } from './types.js';

export function errnoName(n: number): string {
  for (const [name, v] of Object.entries(osc.errno)) if (v === n) return name;
  return `errno ${n}`;
}

/** One backend request's identity, shared by the chunks it fills. */
export interface FetchHandle {
  priority: ReadPriority;
  /** Prefetch: aborts the request when prefetch stops, unless an on-demand read joined it. */
  abort?: AbortController;
  /** An on-demand read waits for this request: prefetch may no longer abort it. */
  adopted: boolean;
  /**
   * Demand-path readahead (readahead.ts): nobody asked for these chunks yet, so a READ that
   * joins one and sees it fail fetches it once more on its own instead of failing.
   */
  ahead?: boolean;
}

export const kOnDemand: FetchHandle = { priority: 'ondemand', adopted: true };
export const kReadahead: FetchHandle = { priority: 'ondemand', adopted: true, ahead: true };

/** What one planned (prefetch) range came to. */
export interface PlannedFetch {
  /** Bytes requested from the backend (0: nothing was left to fetch). */
  bytes: number;
  /** The backend delivered them (false: the request failed or was aborted). */
  read: boolean;
  /** Chunks written to the cache. */
  filled: number;
  /** Chunks that failed (backend, decode, digest or cache write). */
  failed: number;
}

export interface Deferred {
  promise: Promise<void>;
  resolve: () => void;
  reject: (e: Error) => void;
  handle: FetchHandle;
}

export function deferred(handle: FetchHandle): Deferred {
  let resolve!: () => void;
  let reject!: (e: Error) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  // Amplified chunks may have no waiter; their failure must not become an unhandled rejection.
  promise.catch(() => undefined);
  return { promise, resolve, reject, handle };
}

/** What the native READ fast path needs to register this blob on a session. */
export interface NativeBlobRegistration {
  blobId: string;
  blobIndex: number;
  dataPath: string;
  chunkMap: NativeChunkMap;
  compressor: BlobInfo['compressor'];
  chunkCount: number;
}
