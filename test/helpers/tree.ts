/**
 * Comparable JSON snapshots of filesystem trees, for checking that an image (read back by the
 * RAFS reader, mounted by a kernel, served over virtio-fs or FUSE, extracted by fsck.erofs)
 * shows the same tree as its source.
 *
 *   const want = snapshotDir(srcDir);                 // a host directory (or a mountpoint)
 *   const got = snapshotImage(image, blobReader(dir)); // a RafsImage, structurally typed
 *   assert.deepEqual(diffTrees(want, got, { ignoreRootMtime: true }), []);
 *
 * A snapshot maps each path ("/" for the root; names are bytes: valid UTF-8 is kept as text,
 * anything else becomes "b64:<base64 of the whole path>") to its type, permission bits
 * (setuid/setgid/sticky included), owner, size (files and symlinks), mtime with nanoseconds,
 * nlink, rdev (devices), symlink target, xattrs (hex values) and sha256 of file contents.
 * Hardlinked names carry `link`: the smallest path of their group.
 */
import { createHash } from 'node:crypto';
import { closeSync, lstatSync, mkdirSync, openSync, readFileSync, readSync, readdirSync, readlinkSync, writeFileSync, type BigIntStats } from 'node:fs';
import { join } from 'node:path';

import type { TreeEntry } from '../../qemu/tools.js';
import { decompress, readXattrs } from '../../src/native/index.js';

export type NodeType = 'dir' | 'file' | 'symlink' | 'chr' | 'blk' | 'fifo' | 'sock';

export interface TreeNode {
  type: NodeType;
  /** Permission bits including setuid/setgid/sticky (mode & 0o7777). */
  perm: number;
  uid: number;
  gid: number;
  /** Regular files and symlinks only (directory sizes differ between filesystems). */
  size?: number;
  /** "sec.nnnnnnnnn" */
  mtime: string;
  nlink: number;
  rdev?: number;
  target?: string;
  xattrs?: Record<string, string>;
  sha256?: string;
  /** Hardlink group: smallest path among the names of this inode (non-directories, nlink > 1). */
  link?: string;
}

export type TreeSnapshot = Record<string, TreeNode>;

const kTypes: Record<number, NodeType> = {
  0o040000: 'dir',
  0o100000: 'file',
  0o120000: 'symlink',
  0o020000: 'chr',
  0o060000: 'blk',
  0o010000: 'fifo',
  0o140000: 'sock',
};

export function typeOf(mode: number): NodeType {
  const t = kTypes[mode & 0o170000];
  if (!t) throw new Error(`unknown file type in mode 0o${mode.toString(8)}`);
  return t;
}

/** Text form of a byte string: itself when valid UTF-8, else "b64:" + base64. */
export function bytesKey(b: Buffer): string {
  const s = b.toString('utf8');
  return Buffer.from(s, 'utf8').equals(b) ? s : `b64:${b.toString('base64')}`;
}

/** Nanoseconds since the epoch as timespec (sec, nsec) with 0 <= nsec < 1e9. */
export function splitNs(ns: bigint): [bigint, bigint] {
  let sec = ns / 1_000_000_000n;
  let nsec = ns % 1_000_000_000n;
  if (nsec < 0n) {
    nsec += 1_000_000_000n;
    sec -= 1n;
  }
  return [sec, nsec];
}

export function formatMtime(sec: number | bigint, nsec: number | bigint): string {
  return `${sec}.${String(nsec).padStart(9, '0')}`;
}

function xattrRecord(pairs: [Buffer, Buffer][]): Record<string, string> | undefined {
  if (pairs.length === 0) return undefined;
  const out: Record<string, string> = {};
  for (const [n, v] of [...pairs].sort((a, b) => Buffer.compare(a[0], b[0]))) out[bytesKey(n)] = v.toString('hex');
  return out;
}

function hashFile(path: Buffer): string {
  const h = createHash('sha256');
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.allocUnsafe(1 << 20);
    for (let n = readSync(fd, buf); n > 0; n = readSync(fd, buf)) h.update(buf.subarray(0, n));
  } finally {
    closeSync(fd);
  }
  return h.digest('hex');
}

function assignLinks(snap: TreeSnapshot, groups: Map<string, string[]>): void {
  for (const paths of groups.values()) {
    if (paths.length < 2) continue;
    const first = [...paths].sort()[0]!;
    for (const p of paths) snap[p]!.link = first;
  }
}

export interface SnapshotOptions {
  /** Read extended attributes (default true). */
  xattrs?: boolean;
  /** Hash regular file contents (default true). */
  contents?: boolean;
}

/** Snapshot of a host directory tree (or a mounted filesystem), names as raw bytes. */
export function snapshotDir(root: string, opts: SnapshotOptions = {}): TreeSnapshot {
  const snap: TreeSnapshot = {};
  const groups = new Map<string, string[]>();
  const walk = (abs: Buffer, rel: Buffer): void => {
    const st: BigIntStats = lstatSync(abs, { bigint: true });
    const mode = Number(st.mode);
    const key = rel.length === 0 ? '/' : bytesKey(rel);
    const node: TreeNode = {
      type: typeOf(mode),
      perm: mode & 0o7777,
      uid: Number(st.uid),
      gid: Number(st.gid),
      mtime: formatMtime(...splitNs(st.mtimeNs)),
      nlink: Number(st.nlink),
    };
    if (node.type === 'file' || node.type === 'symlink') node.size = Number(st.size);
    if (node.type === 'chr' || node.type === 'blk') node.rdev = Number(st.rdev & 0xffff_ffffn);
    if (node.type === 'symlink') node.target = bytesKey(readlinkSync(abs, { encoding: 'buffer' }));
    if (opts.xattrs !== false) {
      const x = xattrRecord(readXattrs(abs));
      if (x) node.xattrs = x;
    }
    if (node.type === 'file' && opts.contents !== false) node.sha256 = hashFile(abs);
    if (node.type !== 'dir' && node.nlink > 1) {
      const id = `${st.dev}:${st.ino}`;
      groups.set(id, [...(groups.get(id) ?? []), key]);
    }
    snap[key] = node;
    if (node.type === 'dir') {
      const names = readdirSync(abs, { encoding: 'buffer' }).sort((a, b) => Buffer.compare(a, b));
      for (const n of names) walk(Buffer.concat([abs, Buffer.from('/'), n]), Buffer.concat([rel, Buffer.from('/'), n]));
    }
  };
  walk(Buffer.from(root), Buffer.alloc(0));
  assignLinks(snap, groups);
  return snap;
}

// ---- RAFS images, typed structurally after the reader API in rafs-api.md ----

export interface ImageAttr {
  ino: number;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  nlink: number;
  mtimeSec: number;
  mtimeNsec: number;
  rdev: number;
}
export interface ImageChunk {
  fileOffset: number;
  blobIndex: number;
  compressedOffset: number;
  compressedSize: number;
  uncompressedSize: number;
  compressed: boolean;
}
export interface ImageBlob {
  blobId: string;
  compressor: 'none' | 'lz4_block' | 'gzip' | 'zstd';
}
export interface ImageLike {
  readonly super: { rootRef: number };
  readonly blobs: readonly ImageBlob[];
  getAttr(ref: number): ImageAttr;
  readDir(dir: number, offset: number, visit: (e: { name: Buffer; ref: number }) => boolean): void;
  readLink(ref: number): Buffer;
  listXattrs(ref: number): Buffer[];
  getXattr(ref: number, name: Buffer): Buffer | undefined;
  chunks(ref: number): ImageChunk[];
}

/** Reads `len` bytes at `offset` of a blob; `blobReader(dir)` reads `<dir>/<blobId>`. */
export type BlobRead = (blob: ImageBlob, offset: number, len: number) => Buffer;

export function blobReader(dir: string, rename: Record<string, string> = {}): BlobRead {
  const fds = new Map<string, number>();
  return (blob, offset, len) => {
    const name = rename[blob.blobId] ?? blob.blobId;
    let fd = fds.get(name);
    if (fd === undefined) {
      fd = openSync(join(dir, name), 'r');
      fds.set(name, fd);
    }
    const buf = Buffer.alloc(len);
    let got = 0;
    while (got < len) {
      const n = readSync(fd, buf, got, len - got, offset + got);
      if (n === 0) throw new Error(`blob ${name}: short read at ${offset + got}`);
      got += n;
    }
    return buf;
  };
}

const kAlgo = { none: 0, lz4_block: 1, gzip: 2, zstd: 3 } as const;

/** File contents through the image's chunk list (holes read as zeros). */
export function readImageFile(image: ImageLike, ref: number, read: BlobRead): Buffer {
  const size = image.getAttr(ref).size;
  const out = Buffer.alloc(size);
  for (const c of image.chunks(ref)) {
    const blob = image.blobs[c.blobIndex];
    if (!blob) throw new Error(`chunk refers to missing blob ${c.blobIndex}`);
    const raw = read(blob, c.compressedOffset, c.compressedSize);
    const data = c.compressed ? decompress(kAlgo[blob.compressor], raw, c.uncompressedSize) : raw;
    data.copy(out, c.fileOffset, 0, Math.min(data.length, size - c.fileOffset));
  }
  return out;
}

export function snapshotImage(image: ImageLike, read: BlobRead | undefined, opts: SnapshotOptions = {}): TreeSnapshot {
  const snap: TreeSnapshot = {};
  const groups = new Map<number, string[]>();
  const visit = (ref: number, rel: Buffer): void => {
    const a = image.getAttr(ref);
    const key = rel.length === 0 ? '/' : bytesKey(rel);
    const node: TreeNode = {
      type: typeOf(a.mode),
      perm: a.mode & 0o7777,
      uid: a.uid,
      gid: a.gid,
      mtime: formatMtime(a.mtimeSec, a.mtimeNsec),
      nlink: a.nlink,
    };
    if (node.type === 'file' || node.type === 'symlink') node.size = a.size;
    if (node.type === 'chr' || node.type === 'blk') node.rdev = a.rdev;
    if (node.type === 'symlink') node.target = bytesKey(image.readLink(ref));
    if (opts.xattrs !== false) {
      const x = xattrRecord(image.listXattrs(ref).map((n) => [n, image.getXattr(ref, n) ?? Buffer.alloc(0)]));
      if (x) node.xattrs = x;
    }
    if (node.type === 'file' && opts.contents !== false && read) {
      node.sha256 = createHash('sha256').update(readImageFile(image, ref, read)).digest('hex');
    }
    if (node.type !== 'dir' && node.nlink > 1) groups.set(a.ino, [...(groups.get(a.ino) ?? []), key]);
    snap[key] = node;
    if (node.type === 'dir') {
      const children: { name: Buffer; ref: number }[] = [];
      image.readDir(ref, 0, (e) => {
        if (!(e.name.equals(Buffer.from('.')) || e.name.equals(Buffer.from('..')))) children.push({ name: e.name, ref: e.ref });
        return true;
      });
      children.sort((x, y) => Buffer.compare(x.name, y.name));
      for (const c of children) visit(c.ref, Buffer.concat([rel, Buffer.from('/'), c.name]));
    }
  };
  visit(image.super.rootRef, Buffer.alloc(0));
  const byKey = new Map<string, string[]>();
  for (const [ino, paths] of groups) byKey.set(String(ino), paths);
  assignLinks(snap, byKey);
  return snap;
}

export interface DiffOptions {
  /** Fields not compared at all. */
  ignore?: (keyof TreeNode)[];
  /** RAFS builders store mtime 0 for the root (repeatable builds). */
  ignoreRootMtime?: boolean;
  /** Stop after this many differences (default 50). */
  limit?: number;
}

/** Human-readable differences between two snapshots; [] when they are equal. */
export function diffTrees(want: TreeSnapshot, got: TreeSnapshot, opts: DiffOptions = {}): string[] {
  const out: string[] = [];
  const limit = opts.limit ?? 50;
  const ignore = new Set(opts.ignore ?? []);
  const paths = [...new Set([...Object.keys(want), ...Object.keys(got)])].sort();
  for (const p of paths) {
    if (out.length >= limit) {
      out.push('...');
      break;
    }
    const w = want[p];
    const g = got[p];
    if (!w || !g) {
      out.push(`${p}: ${w ? 'missing' : 'unexpected'}`);
      continue;
    }
    const fields = new Set([...Object.keys(w), ...Object.keys(g)] as (keyof TreeNode)[]);
    for (const f of fields) {
      if (ignore.has(f) || (f === 'mtime' && p === '/' && opts.ignoreRootMtime)) continue;
      const a = JSON.stringify(w[f]);
      const b = JSON.stringify(g[f]);
      if (a !== b) out.push(`${p}: ${f} ${a ?? 'absent'} != ${b ?? 'absent'}`);
    }
  }
  return out;
}

// ---- Trees described by qemu/tools treedump (host or guest) ----

function makedev32(major: number, minor: number): number {
  return ((minor & 0xff) | ((major & 0xfff) << 8) | ((minor & 0xfff00) << 12)) >>> 0;
}

const kTreeDumpTypes: Record<TreeEntry['type'], NodeType | undefined> = {
  file: 'file',
  dir: 'dir',
  symlink: 'symlink',
  char: 'chr',
  block: 'blk',
  fifo: 'fifo',
  socket: 'sock',
  unknown: undefined,
};

/** treedump strings carry one byte per character (\u00XX escapes), like latin1. */
const latin1Key = (s: string): string => bytesKey(Buffer.from(s, 'latin1'));

/**
 * Converts `treedump` output (qemu/tools.ts: the same static binary run on the host or inside a
 * guest) into a snapshot comparable with `snapshotDir` / `snapshotImage`.
 */
export function snapshotFromTreeDump(entries: readonly TreeEntry[]): TreeSnapshot {
  const snap: TreeSnapshot = {};
  const groups = new Map<string, string[]>();
  for (const e of entries) {
    const key = e.path === '/' ? '/' : latin1Key(e.path);
    const type = kTreeDumpTypes[e.type];
    if (!type) throw new Error(`treedump: unknown type ${e.type} for ${e.path}`);
    const node: TreeNode = {
      type,
      perm: e.mode & 0o7777,
      uid: e.uid,
      gid: e.gid,
      mtime: formatMtime(e.mtime, e.mtime_nsec),
      nlink: e.nlink,
    };
    if (node.type === 'file' || node.type === 'symlink') node.size = e.size;
    if (node.type === 'chr' || node.type === 'blk') node.rdev = makedev32(e.rdev_major ?? 0, e.rdev_minor ?? 0);
    if (node.type === 'symlink' && typeof e.target === 'string') node.target = latin1Key(e.target);
    if (node.type === 'file' && e.sha256) node.sha256 = e.sha256;
    const names = Object.keys(e.xattrs).sort((a, b) => Buffer.compare(Buffer.from(a, 'latin1'), Buffer.from(b, 'latin1')));
    if (names.length > 0) {
      node.xattrs = {};
      for (const n of names) node.xattrs[latin1Key(n)] = e.xattrs[n]!;
    }
    if (node.type !== 'dir' && node.nlink > 1) groups.set(String(e.ino), [...(groups.get(String(e.ino)) ?? []), key]);
    snap[key] = node;
  }
  assignLinks(snap, groups);
  return snap;
}

/** Writes file `rel` below `root`, making its parent directories (building source trees). */
export function putFile(root: string, rel: string, data: string | Buffer): void {
  mkdirSync(join(root, rel, '..'), { recursive: true });
  writeFileSync(join(root, rel), data);
}

/** Why tests against the kernel's overlayfs cannot run here, or false when they can. */
export function overlayfsSkip(): string | false {
  if (process.getuid?.() !== 0) return 'FUSE and overlayfs mounts need root';
  return readFileSync('/proc/filesystems', 'utf8').includes('\toverlay\n') ? false : 'the kernel has no overlayfs';
}

/**
 * Writes `<work>/<name>.json`: a localfs image in `blobs` with its own blob cache and the given
 * overlay section (tests of the overlay mounts). Returns its path.
 */
export function overlayConfig(work: string, name: string, blobs: string, overlay: { upper_dir: string; work_dir?: string }): string {
  const cfg = join(work, `${name}.json`);
  const config = {
    version: 2,
    backend: { type: 'localfs', localfs: { dir: blobs } },
    cache: { type: 'blobcache', filecache: { work_dir: join(work, `cache-${name}`) } },
    rafs: { mode: 'direct', enable_xattr: true },
    overlay,
  };
  writeFileSync(cfg, JSON.stringify(config));
  return cfg;
}
