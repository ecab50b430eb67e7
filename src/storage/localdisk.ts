/**
 * `localdisk` backend (reference/rafs-format.md §3.9): `device_path` is a block device or a disk
 * image whose GPT partitions are the blobs (gpt.ts names them as upstream does). Reads are
 * positional reads at partition start + offset, bounded by the partition, on one file handle
 * (the thread pool does the I/O; the event loop never waits on the disk).
 *
 * `disable_gpt` means upstream registers blobs one by one through its blob API (`add_blob`),
 * which this daemon does not have: it is refused as not supported yet.
 */
import type { FileHandle } from 'node:fs/promises';
import { open, readFile, realpath } from 'node:fs/promises';

import type { LocalDiskConfig } from '../config/index.js';
import { ConfigError } from '../config/index.js';
import { NotSupportedError } from '../util/errors.js';
import type { Logger } from '../util/logger.js';
import type { FileRange, RawBackend, ReadOptions } from './backend.js';
import { errnoCode, StorageError } from './contract/errors.js';
import type { GptPartition } from './gpt.js';
import { readGpt } from './gpt.js';

/** Upstream stores at most 32 characters of a legacy blob id in a partition name. */
const kLegacyIdLength = 32;

async function readFully(fh: FileHandle, offset: number, length: number, what: string, into?: Buffer): Promise<Buffer> {
  const buf = into?.length === length ? into : Buffer.allocUnsafe(length);
  let done = 0;
  while (done < length) {
    let n: number;
    try {
      ({ bytesRead: n } = await fh.read(buf, done, length - done, offset + done));
    } catch (err) {
      throw new StorageError('ERR_BACKEND', `${what}: read at offset ${offset + done} failed: ${errnoCode(err)}`, { cause: err });
    }
    if (n === 0) throw new StorageError('ERR_BLOB_SHORT', `${what}: the device ended at offset ${offset + done}`);
    done += n;
  }
  return buf;
}

/** Size of a regular file, or of a block device from sysfs (fstat reports 0 for those). */
async function capacityOf(fh: FileHandle, path: string): Promise<number> {
  const st = await fh.stat();
  if (st.isFile()) return st.size;
  if (!st.isBlockDevice()) throw new ConfigError(`${path}: neither a block device nor a disk image file`);
  const rdev = st.rdev;
  const major = Math.floor(rdev / 256) & 0xfff;
  const minor = (rdev & 0xff) | (Math.floor(rdev / 4096) & ~0xff);
  const sectors = Number((await readFile(`/sys/dev/block/${major}:${minor}/size`, 'utf8')).trim());
  if (!Number.isSafeInteger(sectors)) throw new ConfigError(`${path}: cannot tell the device size`);
  return sectors * 512;
}

export class LocalDiskBackend implements RawBackend {
  readonly type = 'localdisk';
  private _closed = false;

  private constructor(
    private readonly _fh: FileHandle,
    private readonly _path: string,
    private readonly _blobs: ReadonlyMap<string, GptPartition>,
    private readonly _legacy: boolean,
  ) {}

  static async create(cfg: LocalDiskConfig, at = 'backend.localdisk', log?: Logger): Promise<LocalDiskBackend> {
    if (cfg.disable_gpt) throw new NotSupportedError(`${at}.disable_gpt (blobs added one by one through the blob API)`);
    let path: string;
    let fh: FileHandle;
    try {
      path = await realpath(cfg.device_path);
      fh = await open(path, 'r');
    } catch (err) {
      throw new ConfigError(`${at}.device_path ${cfg.device_path}: ${errnoCode(err) === 'ENOENT' ? 'no such file or device' : `cannot open (${errnoCode(err)})`}`, { cause: err });
    }
    try {
      const capacity = await capacityOf(fh, path);
      const parts = await readGpt((o, l) => readFully(fh, o, l, path), capacity, `${at}.device_path ${path}`);
      const blobs = new Map(parts.map((p) => [p.blobId, p]));
      log?.info(`localdisk ${path}: ${parts.length} partition(s) as blobs`);
      return new LocalDiskBackend(fh, path, blobs, parts.some((p) => p.basicData));
    } catch (err) {
      await fh.close();
      if (err instanceof StorageError) throw new ConfigError(err.message, { cause: err });
      throw err;
    }
  }

  /** Blob ids the disk holds (tests, messages). */
  get blobIds(): string[] {
    return [...this._blobs.keys()];
  }

  private _blob(blobId: string): GptPartition {
    if (this._closed) throw new StorageError('ERR_STORAGE_CLOSED', `blob ${blobId}: backend closed`);
    const p = this._blobs.get(blobId) ?? (this._legacy && blobId.length >= kLegacyIdLength ? this._blobs.get(blobId.slice(0, kLegacyIdLength)) : undefined);
    if (!p) throw new StorageError('ERR_BLOB_NOT_FOUND', `blob ${blobId}: no partition of ${this._path} holds it`);
    return p;
  }

  size(blobId: string): Promise<number> {
    try {
      return Promise.resolve(this._blob(blobId).length);
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
  }

  private _range(blobId: string, offset: number, length: number): GptPartition {
    const p = this._blob(blobId);
    if (offset + length > p.length) {
      throw new StorageError('ERR_BLOB_SHORT', `blob ${blobId}: range offset ${offset} length ${length} is beyond partition ${p.index} of ${this._path} (${p.length} bytes)`);
    }
    return p;
  }

  fileRange(blobId: string, offset: number, length: number): Promise<FileRange> {
    try {
      const p = this._range(blobId, offset, length);
      return Promise.resolve({ fd: this._fh.fd, position: p.offset + offset, path: this._path });
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
  }

  async tryRead(blobId: string, offset: number, length: number, signal?: AbortSignal, opts: ReadOptions = {}): Promise<Buffer> {
    const p = this._range(blobId, offset, length);
    signal?.throwIfAborted();
    return readFully(this._fh, p.offset + offset, length, `blob ${blobId} (partition ${p.index} of ${this._path})`, opts.into);
  }

  async close(): Promise<void> {
    if (this._closed) return;
    this._closed = true;
    await this._fh.close();
  }
}
