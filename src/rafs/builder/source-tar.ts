/**
 * Builds the tree from an OCI layer tar (optionally gzip-compressed, detected by magic), the way
 * upstream's TarballBuilder does: one pass over the stream, file data chunked into the blob in
 * archive order, missing parent directories created (0755, root-owned, mtime 0), later entries
 * replacing earlier ones, hardlinks to regular files sharing one inode and hardlinks to anything
 * else becoming independent copies of their target.
 */
import { createReadStream } from 'node:fs';
import { Readable, pipeline } from 'node:stream';
import { createGunzip } from 'node:zlib';

import type { BlobWriter } from './blob-writer.js';
import type { ChunkPool } from './chunk-pool.js';
import { TarReader, type TarEntry } from './tar-reader.js';
import { S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFREG } from '../../util/mode-bits.js';
import {
  BuildError,
  isDir,
  isReg,
  showPath,
  type BlobChunk,
  type BuildOptions,
  type Entry,
  type Inode,
  type Xattr,
} from './types.js';
import { normalizeXattrs } from './xattrs.js';

const kXattrPrefix = 'SCHILY.xattr.';
const kAllowedXattr = ['user.', 'trusted.', 'security.', 'system.posix_acl_access', 'system.posix_acl_default'];
/** eStargz bookkeeping files upstream leaves out of RAFS images. */
const kStargzSpecial = new Set(['stargz.index.json', '.prefetch.landmark', '.no.prefetch.landmark']);
const kWhiteoutPrefix = Buffer.from('.wh.');

/** Streams `path`, transparently gunzipping when it starts with the gzip magic. */
async function* openTarStream(path: string): AsyncGenerator<Buffer> {
  const file = createReadStream(path, { highWaterMark: 1 << 20 });
  const it = file[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  try {
    const first = await it.next();
    if (first.done) return;
    const head = first.value;
    if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) {
      const raw = Readable.from(
        (async function* () {
          yield head;
          for (let r = await it.next(); !r.done; r = await it.next()) yield r.value;
        })(),
      );
      const gunzip = pipeline(raw, createGunzip(), () => undefined);
      for await (const chunk of gunzip) yield chunk as Buffer;
    } else {
      yield head;
      for (let r = await it.next(); !r.done; r = await it.next()) yield r.value;
    }
  } catch (err) {
    if (err instanceof BuildError) throw err;
    throw new BuildError(`cannot read tar ${showPath(path)}: ${(err as Error).message}`, { cause: err });
  } finally {
    file.destroy();
  }
}

/** Path components with "." and empty parts dropped; ".." is refused (it would escape the image). */
function components(path: Buffer, where: string): Buffer[] {
  const parts: Buffer[] = [];
  let start = 0;
  for (let i = 0; i <= path.length; i++) {
    if (i === path.length || path[i] === 0x2f) {
      const part = path.subarray(start, i);
      start = i + 1;
      if (part.length === 0 || (part.length === 1 && part[0] === 0x2e)) continue;
      if (part.length === 2 && part[0] === 0x2e && part[1] === 0x2e) {
        throw new BuildError(`${where}: path ${showPath(path)} contains "..", which is not allowed in an image`);
      }
      if (part.length > 255) throw new BuildError(`${where}: name in ${showPath(path)} is longer than 255 bytes`);
      parts.push(part);
    }
  }
  return parts;
}

function newDirInode(): Inode {
  return { mode: S_IFDIR | 0o755, uid: 0, gid: 0, mtimeSec: 0, mtimeNsec: 0, rdev: 0, size: 0, xattrs: [], children: [], links: 0, ino: 0 };
}

/** glibc makedev truncated to 32 bits = the kernel's new_encode_dev for 12-bit majors. */
export function makedev32(major: number, minor: number): number {
  return ((minor & 0xff) | ((major & 0xfff) << 8) | ((minor & 0xfff00) << 12)) >>> 0;
}

class TarTree {
  readonly root: Entry = { name: Buffer.from('/'), inode: newDirInode(), parent: undefined, index: 0 };
  private readonly _maps = new Map<Inode, Map<string, Entry>>();

  private _map(dir: Inode): Map<string, Entry> {
    let m = this._maps.get(dir);
    if (!m) {
      m = new Map();
      this._maps.set(dir, m);
    }
    return m;
  }

  /** The directory entry for `parts`, creating missing directories on the way. */
  ensureDir(parts: Buffer[], where: string): Entry {
    let cur = this.root;
    for (const name of parts) {
      const m = this._map(cur.inode);
      let next = m.get(name.toString('latin1'));
      if (!next) {
        next = { name, inode: newDirInode(), parent: cur, index: 0 };
        m.set(name.toString('latin1'), next);
      } else if (!isDir(next.inode)) {
        throw new BuildError(`${where}: ${showPath(name)} is used as a directory but is not one`);
      }
      cur = next;
    }
    return cur;
  }

  lookup(parts: Buffer[]): Entry | undefined {
    let cur: Entry | undefined = this.root;
    for (const name of parts) {
      if (!cur || !isDir(cur.inode)) return undefined;
      cur = this._maps.get(cur.inode)?.get(name.toString('latin1'));
    }
    return cur;
  }

  /** Adds or replaces `name` in `dir`; a directory replacing a directory keeps its children. */
  put(dir: Entry, name: Buffer, inode: Inode): void {
    const m = this._map(dir.inode);
    const key = name.toString('latin1');
    const old = m.get(key);
    if (old) {
      if (isDir(old.inode) && isDir(inode)) {
        const children = this._maps.get(old.inode);
        if (children) this._maps.set(inode, children);
        this._maps.delete(old.inode);
      }
      old.inode = inode;
    } else {
      m.set(key, { name, inode, parent: dir, index: 0 });
    }
  }

  setRoot(inode: Inode): void {
    const children = this._maps.get(this.root.inode);
    if (children) this._maps.set(inode, children);
    this._maps.delete(this.root.inode);
    this.root.inode = inode;
  }

  /** Turns the per-directory maps into sorted children arrays. */
  finish(): Entry {
    const stack: Entry[] = [this.root];
    while (stack.length > 0) {
      const e = stack.pop()!;
      const m = this._maps.get(e.inode);
      const children = m ? [...m.values()] : [];
      children.sort((a, b) => Buffer.compare(a.name, b.name));
      for (const c of children) c.parent = e;
      e.inode.children = children;
      for (const c of children) if (isDir(c.inode)) stack.push(c);
    }
    return this.root;
  }
}

function xattrsOf(t: TarEntry, where: string, warn: (m: string) => void): Xattr[] {
  const out: Xattr[] = [];
  for (const [key, value] of t.pax) {
    if (!key.startsWith(kXattrPrefix)) continue;
    const name = key.slice(kXattrPrefix.length);
    if (!kAllowedXattr.some((p) => name.startsWith(p))) {
      // e.g. macOS archives (bsdtar) carry namespace-less names; EROFS/RAFS cannot store them.
      warn(`${where}: dropping extended attribute ${JSON.stringify(name)} (RAFS stores only user., trusted., security. and POSIX ACL attributes)`);
      continue;
    }
    out.push({ name: Buffer.from(name, 'utf8'), value });
  }
  return normalizeXattrs(out, where);
}

export async function scanTar(
  opts: BuildOptions,
  writer: BlobWriter,
  report: (bytes: number, fileDone: boolean) => void,
  pool?: ChunkPool,
): Promise<Entry> {
  const tree = new TarTree();
  const reader = new TarReader(openTarStream(opts.source));
  const warn = opts.onWarning ?? ((): void => undefined);
  for (let t = await reader.next(); t; t = await reader.next()) {
    const where = `tar entry ${showPath(t.path)}`;
    const parts = components(t.path, where);
    if (parts.length === 1 && kStargzSpecial.has(parts[0]!.toString('latin1'))) continue;
    const name = parts[parts.length - 1];
    if (name && isWhiteout(opts, name, t)) {
      // The whiteout itself is dropped, but its directory exists (an opaque marker says so).
      tree.ensureDir(parts.slice(0, -1), where);
      continue;
    }
    const inode = await inodeFor(t, tree, reader, opts, writer, pool, report, where, warn);
    if (parts.length === 0) {
      if (!isDir(inode)) throw new BuildError(`${where}: the archive root must be a directory`);
      tree.setRoot(inode);
      continue;
    }
    const dir = tree.ensureDir(parts.slice(0, -1), where);
    tree.put(dir, name!, inode);
  }
  return tree.finish();
}

function isWhiteout(opts: BuildOptions, name: Buffer, t: TarEntry): boolean {
  if (opts.whiteoutSpec === 'oci') return name.subarray(0, kWhiteoutPrefix.length).equals(kWhiteoutPrefix);
  if (opts.whiteoutSpec === 'overlayfs') return t.type === 'chr' && t.devmajor === 0 && t.devminor === 0;
  return false;
}

async function inodeFor(
  t: TarEntry,
  tree: TarTree,
  reader: TarReader,
  opts: BuildOptions,
  writer: BlobWriter,
  pool: ChunkPool | undefined,
  report: (bytes: number, fileDone: boolean) => void,
  where: string,
  warn: (m: string) => void,
): Promise<Inode> {
  if (t.type === 'link') {
    const target = tree.lookup(components(t.linkname, where));
    if (!target) throw new BuildError(`${where}: hardlink target ${showPath(t.linkname)} is not earlier in the archive`);
    if (isDir(target.inode)) throw new BuildError(`${where}: hardlink target ${showPath(t.linkname)} is a directory`);
    // RAFS shares inodes only between regular files; a hardlink to anything else becomes a copy
    // carrying the target's metadata (extracting the archive would show the same attributes).
    return isReg(target.inode) ? target.inode : { ...target.inode, links: 0, ino: 0 };
  }
  const typeBits = { file: S_IFREG, dir: S_IFDIR, symlink: S_IFLNK, chr: S_IFCHR, blk: S_IFBLK, fifo: S_IFIFO }[t.type];
  const inode: Inode = {
    mode: typeBits | (t.mode & 0o7777),
    uid: t.uid,
    gid: t.gid,
    mtimeSec: t.mtimeSec,
    mtimeNsec: t.mtimeNsec,
    rdev: t.type === 'chr' || t.type === 'blk' ? makedev32(t.devmajor, t.devminor) : 0,
    size: 0,
    xattrs: xattrsOf(t, where, warn),
    links: 0,
    ino: 0,
  };
  if (t.uid > 0xffff_ffff || t.gid > 0xffff_ffff) throw new BuildError(`${where}: uid/gid out of range`);
  if (t.type === 'dir') inode.children = [];
  if (t.type === 'symlink') {
    inode.symlink = Buffer.from(t.linkname);
    inode.size = inode.symlink.length;
  }
  if (t.type === 'file') {
    inode.size = t.size;
    inode.chunks = [];
    const pending: Promise<BlobChunk>[] = [];
    for (let off = 0; off < t.size; off += opts.chunkSize) {
      const view = await reader.readData(opts.chunkSize);
      // Copy out of the reader's buffer into one the writer (or a worker) may keep.
      const data = Buffer.from(new ArrayBuffer(view.length));
      view.copy(data);
      pending.push(writer.addChunk(data, off, pool));
      report(data.length, false);
      await writer.drain(8);
    }
    inode.chunks = await Promise.all(pending);
    report(0, true);
  }
  return inode;
}
