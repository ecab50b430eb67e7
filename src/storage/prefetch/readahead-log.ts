/**
 * The seed's readahead log (reference/nydusd.md, backend `readahead` + `readahead_sec`; upstream
 * removed it in 2022, rafs-format.md §3.4), for every backend: during the first `readahead_sec`
 * seconds after a start, the on-demand backend reads of each cached blob are recorded, then
 * written next to the blob cache as `<work_dir>/<blob_id>.access`; a later start that finds a
 * non-empty log prefetches exactly those ranges, in the order they were first read, and records
 * nothing.
 *
 * File layout (the seed's): 16-byte entries `{u64 offset, u32 length, u32 reserved = 0}`, little
 * endian, at most 2048. The seed rounded offsets and lengths to 4 KiB because it replayed them
 * with readahead(2) on the blob file; ours are the exact compressed ranges the cache fetched,
 * because they are replayed through the cache, whose requests are whole chunks.
 */
import { open, readFile, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';

import type { Logger } from '../../util/logger.js';
import { kMaxBackendRead } from '../backend.js';
import type { CachedBlob } from '../blob-cache.js';
import { errnoCode, StorageError } from '../contract/errors.js';
import type { FetchRange } from '../fetch-plan.js';
import type { RecordedRange } from './plan.js';

export const kAccessEntrySize = 16;
export const kMaxAccessEntries = 2048;

export function accessLogPath(workDir: string, blobId: string): string {
  return join(workDir, `${blobId}.access`);
}

export function encodeAccessLog(ranges: readonly RecordedRange[]): Buffer {
  const n = Math.min(ranges.length, kMaxAccessEntries);
  const buf = Buffer.alloc(n * kAccessEntrySize);
  for (let i = 0; i < n; i++) {
    const r = ranges[i] as RecordedRange;
    buf.writeBigUInt64LE(BigInt(r.offset), i * kAccessEntrySize);
    buf.writeUInt32LE(r.length, i * kAccessEntrySize + 8);
  }
  return buf;
}

/**
 * The ranges of a log, checked against the blob (`compressedSize` 0 = unknown). Throws
 * ERR_READAHEAD_LOG naming the first problem: the file is local but not ours to trust blindly
 * (another program, a truncated write, a different image build under the same blob id).
 */
export function decodeAccessLog(buf: Buffer, compressedSize: number, what: string): RecordedRange[] {
  const bad = (problem: string): never => {
    throw new StorageError('ERR_READAHEAD_LOG', `${what}: ${problem}`);
  };
  if (buf.length % kAccessEntrySize !== 0) bad(`${buf.length} bytes is not a whole number of ${kAccessEntrySize}-byte entries`);
  const n = buf.length / kAccessEntrySize;
  if (n > kMaxAccessEntries) bad(`${n} entries, more than ${kMaxAccessEntries}`);
  const out: RecordedRange[] = [];
  for (let i = 0; i < n; i++) {
    const at = i * kAccessEntrySize;
    const offset = buf.readBigUInt64LE(at);
    const length = buf.readUInt32LE(at + 8);
    if (buf.readUInt32LE(at + 12) !== 0) bad(`entry ${i}: reserved field is not zero`);
    if (offset > BigInt(Number.MAX_SAFE_INTEGER)) bad(`entry ${i}: offset ${offset} out of range`);
    if (length === 0 || length > kMaxBackendRead) bad(`entry ${i}: length ${length} out of range`);
    const off = Number(offset);
    if (compressedSize > 0 && off + length > compressedSize) bad(`entry ${i}: range ${off}+${length} is beyond the blob (${compressedSize} bytes)`);
    out.push({ offset: off, length });
  }
  return out;
}

/** The log of a blob: its ranges, or undefined when there is none (absent or empty). */
export async function readAccessLog(path: string, compressedSize: number): Promise<RecordedRange[] | undefined> {
  let buf: Buffer;
  try {
    buf = await readFile(path);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return undefined;
    throw new StorageError('ERR_READAHEAD_LOG', `readahead log ${path}: cannot read (${errnoCode(err)})`, { cause: err });
  }
  if (buf.length === 0) return undefined;
  return decodeAccessLog(buf, compressedSize, `readahead log ${path}`);
}

/** Writes a log atomically (a reader sees the old file or the whole new one, never a part). */
export async function writeAccessLog(path: string, ranges: readonly RecordedRange[]): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    const fh = await open(tmp, 'w', 0o644);
    try {
      await fh.writeFile(encodeAccessLog(ranges));
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw new StorageError('ERR_READAHEAD_LOG', `readahead log ${path}: cannot write (${errnoCode(err)})`, { cause: err });
  }
}

/**
 * Records on-demand backend reads per blob from its creation until `seconds` later (0: until
 * flush), then writes the logs of the blobs it recorded. A blob dropped with `skip` (it had a
 * log: this start replays it) records nothing.
 *
 * While it records, the blobs' misses are not amplified: amplification fetches neighbours the
 * start may never read, and a read of those later is a native cache hit nobody sees, so the
 * log could only hold what was fetched, not what was read. Without it the log is the ranges
 * the start read (whole chunks), which makes a replay fetch less; the recorded start itself
 * makes more, smaller requests.
 */
export class ReadaheadRecorder {
  private readonly _ranges = new Map<CachedBlob, RecordedRange[]>();
  private readonly _seen = new Map<CachedBlob, Set<string>>();
  private readonly _skipped = new Set<CachedBlob>();
  private readonly _watched = new Set<CachedBlob>();
  private _open = true;
  private _timer: NodeJS.Timeout | undefined;
  private _flushing: Promise<void> | undefined;

  constructor(
    private readonly _workDir: string,
    seconds: number,
    private readonly _log: Logger,
  ) {
    if (seconds > 0) {
      this._timer = setTimeout(() => void this.flush(), seconds * 1000);
      // The window never keeps a stopping daemon alive; stop() flushes what there is.
      this._timer.unref();
    }
  }

  /** Records `blobs` (their amplification off until the window closes). */
  watch(blobs: Iterable<CachedBlob>): void {
    if (!this._open) return;
    for (const b of blobs) {
      if (this._skipped.has(b)) continue;
      this._watched.add(b);
      b.amplify = false;
    }
  }

  /** The FetchObserver to install on the image (ImageStorage.observeFetches). */
  readonly observe = (blob: CachedBlob, r: FetchRange): void => {
    if (!this._open || this._skipped.has(blob)) return;
    let list = this._ranges.get(blob);
    let seen = this._seen.get(blob);
    if (!list || !seen) {
      list = [];
      seen = new Set();
      this._ranges.set(blob, list);
      this._seen.set(blob, seen);
    }
    const key = `${r.offset}:${r.length}`;
    if (seen.has(key) || list.length >= kMaxAccessEntries) return;
    seen.add(key);
    list.push({ offset: r.offset, length: r.length });
  };

  /** This start replays `blob`'s log: record nothing for it. */
  skip(blob: CachedBlob): void {
    this._skipped.add(blob);
    if (this._watched.delete(blob)) blob.amplify = true;
    this._ranges.delete(blob);
    this._seen.delete(blob);
  }

  /** Entries recorded so far for `blob` (tests, logs). */
  recorded(blob: CachedBlob): readonly RecordedRange[] {
    return this._ranges.get(blob) ?? [];
  }

  /** Closes the window and writes the logs (once; later calls wait for the first). */
  flush(): Promise<void> {
    this._flushing ??= this._flush();
    return this._flushing;
  }

  private async _flush(): Promise<void> {
    this._open = false;
    if (this._timer) clearTimeout(this._timer);
    for (const b of this._watched) b.amplify = true;
    this._watched.clear();
    for (const [blob, ranges] of this._ranges) {
      if (ranges.length === 0) continue;
      const path = accessLogPath(this._workDir, blob.info.blobId);
      try {
        await writeAccessLog(path, ranges);
        this._log.info(`readahead: recorded ${ranges.length} range(s) of blob ${blob.info.blobId} in ${path}`);
      } catch (err) {
        this._log.warn((err as Error).message);
      }
    }
    this._ranges.clear();
    this._seen.clear();
  }
}
