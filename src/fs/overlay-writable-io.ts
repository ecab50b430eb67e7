/**
 * The open files and directory listings of the writable overlay (overlay-writable.ts).
 * - A file opened with a write intent (write access or O_TRUNC) is copied up first, then opened
 *   in the upper layer; so is every file already there. Upper handles count from kUpperBase.
 * - A lower file opened for reading gets the lower filesystem's own handle (below kUpperBase),
 *   with its extent table: its READs stay on the native fast path.
 * - A directory listing is built at OPENDIR (the merged view at that moment), so offsets are
 *   stable per handle.
 */
import { constants as fsc } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { truncate } from 'node:fs/promises';

import type { FuseOpenReply, FuseRequestContext, FuseResult } from '../fuse/index.js';
import type { ListItem } from './overlay-fs.js';
import { FuseErrno, fuseErrno, kErrno } from '../fuse/index.js';
import type { Logger } from '../util/logger.js';
import { kUpperBase, listLower, pageOf, readFull } from './overlay-fs.js';
import type { WNode, WritableOverlay } from './overlay-writable.js';

const kMaxRead = 64 * 1024 * 1024;
const kAccMode = 3; // O_ACCMODE

type Item = ListItem;

export class OverlayWritableIo {
  private readonly _files = new Map<number, FileHandle>();
  private readonly _lists = new Map<number, Promise<Item[] | FuseErrno>>();
  private _nextFh = kUpperBase;

  constructor(
    private readonly _fs: WritableOverlay,
    private readonly _log: Logger,
  ) {}

  closeAll(): void {
    for (const f of this._files.values()) void f.close().catch(() => undefined);
    this._files.clear();
    this._lists.clear();
  }

  adopt(f: FileHandle): FuseOpenReply {
    const fh = this._nextFh++;
    this._files.set(fh, f);
    return { fh };
  }

  private _node(nodeid: number): WNode | FuseErrno {
    return this._fs.node(nodeid);
  }

  open(ctx: FuseRequestContext, nodeid: number, flags: number): FuseResult<FuseOpenReply> {
    const n = this._node(nodeid);
    if (n instanceof FuseErrno) return n;
    if (n.dir) return fuseErrno(kErrno.EISDIR);
    const write = (flags & kAccMode) !== fsc.O_RDONLY || (flags & fsc.O_TRUNC) !== 0;
    if (!write && !n.upper) {
      if (n.lower === undefined) return fuseErrno(kErrno.ENOENT);
      return this._fs.lower.open(ctx, n.lower, flags);
    }
    return this._fs.locked('open', async () => {
      await this._fs.copyUp(ctx, n);
      return this.adopt(await this._fs.openUpper(n, flags));
    });
  }

  /** The lower node of a lower handle's node (EBADF when the node has none). */
  private _lowerOf(nodeid: number): number | FuseErrno {
    const n = this._node(nodeid);
    return n instanceof FuseErrno || n.lower === undefined ? fuseErrno(kErrno.EBADF) : n.lower;
  }

  read(ctx: FuseRequestContext, nodeid: number, fh: number, offset: number, size: number): FuseResult<Buffer | Uint8Array> {
    if (fh < kUpperBase) {
      const lower = this._lowerOf(nodeid);
      return lower instanceof FuseErrno ? lower : this._fs.lower.read(ctx, lower, fh, offset, size);
    }
    const f = this._files.get(fh);
    if (!f) return fuseErrno(kErrno.EBADF);
    return readFull(f, offset, Math.min(size, kMaxRead)).catch((err: unknown) => this._fs.fail(`read of node ${nodeid}`, err));
  }

  async write(fh: number, offset: number, data: Buffer): Promise<number | FuseErrno> {
    const f = this._files.get(fh);
    if (!f) return fuseErrno(kErrno.EBADF);
    try {
      let done = 0;
      while (done < data.length) {
        const { bytesWritten } = await f.write(data, done, data.length - done, offset + done);
        if (bytesWritten === 0) break;
        done += bytesWritten;
      }
      return done;
    } catch (err) {
      return this._fs.fail('write', err);
    }
  }

  async truncate(fh: number, size: number, path: Buffer): Promise<void> {
    const f = this._files.get(fh);
    await (f ? f.truncate(size) : truncate(path, size));
  }

  async fsync(fh: number, datasync: boolean): Promise<void | FuseErrno> {
    const f = this._files.get(fh);
    if (!f) return undefined;  // a lower handle: nothing to write back
    try {
      await (datasync ? f.datasync() : f.sync());
      return undefined;
    } catch (err) {
      return this._fs.fail('fsync', err);
    }
  }

  release(ctx: FuseRequestContext, nodeid: number, fh: number, flags: number): FuseResult<void> {
    if (fh < kUpperBase) {
      const lower = this._lowerOf(nodeid);
      return lower instanceof FuseErrno ? undefined : this._fs.lower.release(ctx, lower, fh, flags);
    }
    const f = this._files.get(fh);
    this._files.delete(fh);
    return f?.close().catch((err: unknown) => {
      this._log.error(`closing node ${nodeid}: ${(err as Error).message}`);
    });
  }

  lseek(ctx: FuseRequestContext, nodeid: number, fh: number, offset: number, whence: number): FuseResult<number> {
    if (fh < kUpperBase) {
      const lower = this._lowerOf(nodeid);
      return lower instanceof FuseErrno ? lower : this._fs.lower.lseek(ctx, lower, fh, offset, whence);
    }
    const f = this._files.get(fh);
    if (!f) return fuseErrno(kErrno.EBADF);
    if (whence !== 3 && whence !== 4) return fuseErrno(kErrno.EINVAL);
    // Upper files are reported as all data (Node cannot ask the host for its holes).
    return f.stat().then(
      (st) => (offset < 0 || offset >= st.size ? fuseErrno(kErrno.ENXIO) : whence === 3 ? offset : st.size),
      (err: unknown) => this._fs.fail('lseek', err),
    );
  }

  /** The names of lower directory `dir` (no "." or ".."). */
  async lowerNames(ctx: FuseRequestContext, dir: number): Promise<Buffer[] | FuseErrno> {
    const items = await listLower(this._fs.lower, ctx, dir);
    return items instanceof FuseErrno ? items : items.map((i) => i.name);
  }

  opendir(ctx: FuseRequestContext, nodeid: number): FuseResult<FuseOpenReply> {
    const n = this._node(nodeid);
    if (n instanceof FuseErrno) return n;
    if (!n.dir) return fuseErrno(kErrno.ENOTDIR);
    const list = this._fs.list(ctx, n).catch((err: unknown) => this._fs.fail('opendir', err));
    return list.then((l) => {
      if (l instanceof FuseErrno) return l;
      const fh = this._nextFh++;
      this._lists.set(fh, list);
      return { fh };
    });
  }

  releasedir(fh: number): void {
    this._lists.delete(fh);
  }

  page<T>(ctx: FuseRequestContext, nodeid: number, fh: number, offset: number, size: number, plus: boolean, make: (i: Item, next: number) => T): FuseResult<T[]> {
    let listing = this._lists.get(fh);
    if (!listing) {
      const n = this._node(nodeid);
      if (n instanceof FuseErrno) return n;
      listing = this._fs.list(ctx, n).catch((err: unknown) => this._fs.fail('readdir', err));
    }
    return listing.then((items) => (items instanceof FuseErrno ? items : pageOf(items, offset, size, plus, make)));
  }
}
