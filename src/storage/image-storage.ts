/**
 * The data of one mounted image: a BlobSource per blob table entry, and file-level reads over
 * chunk lists that may span blobs. This is what the filesystem layer calls.
 */
import type { FetchObserver, NativeBlobRegistration } from './blob-cache.js';
import { CachedBlob } from './blob-cache.js';
import type { BlobSource } from './chunk-data.js';
import { StorageError } from './contract/errors.js';
import type { ChunkInfo } from './types.js';

/** Largest file read served in one call (FUSE max_read is far below). */
export const kMaxFileRead = 64 * 1024 * 1024;

export class ImageStorage {
  constructor(readonly blobs: readonly BlobSource[]) {}

  blob(index: number): BlobSource {
    const b = this.blobs[index];
    if (!b) throw new StorageError('ERR_BAD_CHUNK', `chunk refers to blob index ${index}, but the image has ${this.blobs.length} blob(s)`);
    return b;
  }

  private _byBlob(chunks: readonly ChunkInfo[]): Map<number, ChunkInfo[]> {
    const groups = new Map<number, ChunkInfo[]>();
    for (const c of chunks) {
      let g = groups.get(c.blobIndex);
      if (!g) {
        this.blob(c.blobIndex);
        g = [];
        groups.set(c.blobIndex, g);
      }
      g.push(c);
    }
    return groups;
  }

  /**
   * Makes every chunk ready in its blob's cache (no-op for dummycache blobs). `aheadEnd(blob)`:
   * one past the last chunk index of the file being read in that blob (readahead stops there).
   */
  async ensureReady(chunks: readonly ChunkInfo[], signal?: AbortSignal, aheadEnd?: (blobIndex: number) => number | undefined): Promise<void> {
    await Promise.all([...this._byBlob(chunks)].map(([i, cs]) => this.blob(i).ensureReady(cs, signal, aheadEnd?.(i))));
  }

  /**
   * The bytes `[fileOffset, fileOffset+length)` of a file whose chunks (or the ones covering
   * that range) are `chunks`; bytes no chunk covers (holes) are zeros. The caller clamps
   * `length` to the file size.
   */
  async read(chunks: readonly ChunkInfo[], fileOffset: number, length: number, signal?: AbortSignal): Promise<Buffer> {
    if (!Number.isSafeInteger(fileOffset) || fileOffset < 0 || !Number.isSafeInteger(length) || length < 0 || length > kMaxFileRead) {
      throw new StorageError('ERR_BAD_CHUNK', `invalid file read offset ${fileOffset} length ${length}`);
    }
    const out = Buffer.alloc(length);
    if (length === 0) return out;
    await Promise.all([...this._byBlob(chunks)].map(([i, cs]) => this.blob(i).readInto(cs, fileOffset, out, signal)));
    return out;
  }

  /**
   * A file is about to be read through the native READ fast path (its extent table was built):
   * compressed and encrypted caches record where its chunks are, so cached chunks are decoded
   * natively from the first READ on. Never throws; bad chunks are reported by the READ.
   */
  learnAhead(chunks: readonly ChunkInfo[]): void {
    const groups = new Map<number, ChunkInfo[]>();
    for (const c of chunks) {
      const b = this.blobs[c.blobIndex];
      if (!(b instanceof CachedBlob)) continue;
      let g = groups.get(c.blobIndex);
      if (!g) groups.set(c.blobIndex, (g = []));
      g.push(c);
    }
    for (const [i, cs] of groups) (this.blobs[i] as CachedBlob).learnAhead(cs);
  }

  /** The blob-cache blobs (dummycache blobs have nothing to prefetch into). */
  cachedBlobs(): CachedBlob[] {
    return this.blobs.filter((b): b is CachedBlob => b instanceof CachedBlob);
  }

  /** Sees every on-demand backend read of this image's cached blobs (undefined: stop). */
  observeFetches(observer: FetchObserver | undefined): void {
    for (const b of this.cachedBlobs()) b.fetchObserver = observer;
  }

  /** Registration data for the native READ fast path (blobcache blobs only). */
  nativeRegistrations(): NativeBlobRegistration[] {
    return this.cachedBlobs().map((b) => b.nativeRegistration());
  }

  async close(): Promise<void> {
    await Promise.allSettled(this.blobs.map((b) => b.close()));
  }
}
