/**
 * `localfs` backend: blobs are files named by blob id in `dir` (or one `blob_file` for every id),
 * with `alt_dirs` searched when the primary file is missing or empty (upstream
 * storage/src/backend/localfs.rs). Reads are positional on a cached file handle per blob.
 */
import type { FileHandle } from 'node:fs/promises';
import { open, realpath } from 'node:fs/promises';
import { join } from 'node:path';

import type { LocalFsConfig } from '../config/index.js';
import { ConfigError } from '../config/index.js';
import { fsCalls } from '../util/fs-calls.js';
import type { FileRange, RawBackend, ReadOptions } from './backend.js';
import { checkBlobId } from './blob-id.js';
import { errnoCode, StorageError } from './contract/errors.js';

interface OpenBlob {
  fh: FileHandle;
  size: number;
  path: string;
}

async function isDir(path: string, blocking: boolean): Promise<boolean> {
  try {
    return (await fsCalls(blocking).stat(path)).isDirectory();
  } catch {
    return false;
  }
}

export class LocalFsBackend implements RawBackend {
  readonly type = 'localfs';
  private readonly _open = new Map<string, Promise<OpenBlob>>();
  private _closed = false;

  private constructor(private readonly _cfg: LocalFsConfig) {}

  /**
   * Checks the configured paths exist; `at` names the config section in errors. `blocking`: with
   * synchronous calls (a daemon's start: CreateBackendOptions.startup in service.ts).
   */
  static async create(cfg: LocalFsConfig, at = 'backend.localfs', blocking = false): Promise<LocalFsBackend> {
    if (cfg.blob_file !== '') {
      try {
        if (!(await fsCalls(blocking).stat(cfg.blob_file)).isFile()) throw new Error('not a regular file');
      } catch (err) {
        throw new ConfigError(`${at}.blob_file ${cfg.blob_file}: ${errnoCode(err)}`);
      }
    } else if (!(await isDir(cfg.dir, blocking))) {
      throw new ConfigError(`${at}.dir ${cfg.dir}: no such directory`);
    }
    return new LocalFsBackend(cfg);
  }

  private _candidates(blobId: string): string[] {
    if (this._cfg.blob_file !== '') return [this._cfg.blob_file];
    return [join(this._cfg.dir, blobId), ...this._cfg.alt_dirs.map((d) => join(d, blobId))];
  }

  private async _openBlob(blobId: string): Promise<OpenBlob> {
    checkBlobId(blobId);
    for (const candidate of this._candidates(blobId)) {
      let fh: FileHandle;
      try {
        fh = await open(candidate, 'r');
      } catch (err) {
        if (errnoCode(err) === 'ENOENT') continue;
        throw new StorageError('ERR_BACKEND', `blob ${blobId}: cannot open ${candidate}: ${errnoCode(err)}`, { cause: err });
      }
      const st = await fh.stat();
      if (!st.isFile() || st.size === 0) {
        // Missing or empty: upstream then looks in alt_dirs.
        await fh.close();
        continue;
      }
      const path = await realpath(candidate).catch(() => candidate);
      return { fh, size: st.size, path };
    }
    const where = this._cfg.blob_file !== '' ? this._cfg.blob_file : [this._cfg.dir, ...this._cfg.alt_dirs].join(', ');
    throw new StorageError('ERR_BLOB_NOT_FOUND', `blob ${blobId}: not found (or empty) in ${where}`);
  }

  private _get(blobId: string): Promise<OpenBlob> {
    if (this._closed) return Promise.reject(new StorageError('ERR_STORAGE_CLOSED', `blob ${blobId}: backend closed`));
    let p = this._open.get(blobId);
    if (!p) {
      p = this._openBlob(blobId);
      this._open.set(blobId, p);
      // A failed open is not cached: the file may appear later.
      p.catch(() => this._open.delete(blobId));
    }
    return p;
  }

  async size(blobId: string): Promise<number> {
    return (await this._get(blobId)).size;
  }

  private async _range(blobId: string, offset: number, length: number): Promise<OpenBlob> {
    const b = await this._get(blobId);
    if (offset + length > b.size) {
      throw new StorageError(
        'ERR_BLOB_SHORT',
        `blob ${blobId}: range offset ${offset} length ${length} is beyond the end of ${b.path} (size ${b.size})`,
      );
    }
    return b;
  }

  async fileRange(blobId: string, offset: number, length: number): Promise<FileRange> {
    const b = await this._range(blobId, offset, length);
    return { fd: b.fh.fd, position: offset, path: b.path };
  }

  async tryRead(blobId: string, offset: number, length: number, signal?: AbortSignal, opts: ReadOptions = {}): Promise<Buffer> {
    const b = await this._range(blobId, offset, length);
    const buf = opts.into?.length === length ? opts.into : Buffer.allocUnsafe(length);
    let done = 0;
    while (done < length) {
      signal?.throwIfAborted();
      let n: number;
      try {
        ({ bytesRead: n } = await b.fh.read(buf, done, length - done, offset + done));
      } catch (err) {
        throw new StorageError('ERR_BACKEND', `blob ${blobId}: read at offset ${offset + done} of ${b.path} failed: ${errnoCode(err)}`, {
          cause: err,
        });
      }
      if (n === 0) {
        throw new StorageError('ERR_BLOB_SHORT', `blob ${blobId}: ${b.path} ended at offset ${offset + done}, wanted ${length - done} more bytes`);
      }
      done += n;
    }
    return buf;
  }

  async close(): Promise<void> {
    this._closed = true;
    const all = [...this._open.values()];
    this._open.clear();
    await Promise.all(all.map((p) => p.then((b) => b.fh.close(), () => undefined)));
  }
}
