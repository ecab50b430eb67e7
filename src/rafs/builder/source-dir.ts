/**
 * Scans a host directory into the builder tree: lstat of every entry (names kept as raw bytes),
 * extended attributes through the native helper, symlink targets, hardlinks detected by
 * (st_dev, st_ino). File contents are read later, by `dumpDirectoryData`, in layout order.
 */
import { closeSync, lstatSync, openSync, readSync, readdirSync, readlinkSync, type BigIntStats } from 'node:fs';

import { readXattrs } from '../../native/index.js';
import type { BlobWriter } from './blob-writer.js';
import type { ChunkPool } from './chunk-pool.js';
import { S_IFCHR, S_IFMT } from '../../util/mode-bits.js';
import {
  BuildError,
  isReg,
  showPath,
  type BlobChunk,
  type Entry,
  type Inode,
  type WhiteoutSpec,
  type Xattr,
} from './types.js';
import { normalizeXattrs } from './xattrs.js';

const kNsPerSec = 1_000_000_000n;
const kSlash = Buffer.from('/');
const kWhiteoutPrefix = Buffer.from('.wh.');

export interface ScanStats {
  files: number;
}

/** Splits nanoseconds since the epoch into (sec, nsec) with nsec in [0, 1e9), like struct timespec. */
export function splitNs(ns: bigint): { sec: number; nsec: number } {
  let sec = ns / kNsPerSec;
  let nsec = ns % kNsPerSec;
  if (nsec < 0n) {
    nsec += kNsPerSec;
    sec -= 1n;
  }
  return { sec: Number(sec), nsec: Number(nsec) };
}

function join(dir: Buffer, name: Buffer): Buffer {
  return Buffer.concat([dir, kSlash, name]);
}

function inodeFromStat(st: BigIntStats, path: Buffer, isRoot: boolean): Inode {
  const { sec, nsec } = splitNs(st.mtimeNs);
  const xattrs: Xattr[] = readXattrs(path).map(([name, value]) => ({ name, value }));
  const inode: Inode = {
    mode: Number(st.mode),
    uid: Number(st.uid),
    gid: Number(st.gid),
    // Upstream zeroes the root's mtime: the tool that creates the root directory changes it on
    // every build, which would defeat repeatable builds.
    mtimeSec: isRoot ? 0 : sec,
    mtimeNsec: isRoot ? 0 : nsec,
    rdev: Number(st.rdev & 0xffff_ffffn),
    size: 0,
    xattrs: normalizeXattrs(xattrs, showPath(path)),
    links: 0,
    ino: 0,
  };
  if (st.isFile()) {
    inode.size = Number(st.size);
    inode.hostPath = path;
  } else if (st.isSymbolicLink()) {
    inode.symlink = readlinkSync(path, { encoding: 'buffer' });
    inode.size = inode.symlink.length;
  } else if (st.isDirectory()) {
    inode.children = [];
  }
  return inode;
}

function isWhiteout(spec: WhiteoutSpec, name: Buffer, st: BigIntStats): boolean {
  switch (spec) {
    case 'oci':
      return name.subarray(0, kWhiteoutPrefix.length).equals(kWhiteoutPrefix);
    case 'overlayfs':
      return (Number(st.mode) & S_IFMT) === S_IFCHR && st.rdev === 0n;
    case 'none':
      return false;
  }
}

/**
 * Builds the tree under `root`. Whiteouts (per `whiteoutSpec`) are dropped: in a single-layer
 * build they have nothing below them to hide, and the OCI spec keeps them out of final images.
 */
export function scanDirectory(root: string, whiteoutSpec: WhiteoutSpec, stats: ScanStats): Entry {
  const rootPath = Buffer.from(root);
  let st: BigIntStats;
  try {
    st = lstatSync(rootPath, { bigint: true });
  } catch (err) {
    throw new BuildError(`cannot access source directory ${showPath(root)}: ${(err as Error).message}`, { cause: err });
  }
  if (!st.isDirectory()) throw new BuildError(`source ${showPath(root)} is not a directory`);
  const rootEntry: Entry = { name: Buffer.from('/'), inode: inodeFromStat(st, rootPath, true), parent: undefined, index: 0 };
  const links = new Map<string, Inode>();
  const stack: [Entry, Buffer][] = [[rootEntry, rootPath]];
  while (stack.length > 0) {
    const [dir, path] = stack.pop()!;
    let names: Buffer[];
    try {
      names = readdirSync(path, { encoding: 'buffer' });
    } catch (err) {
      throw new BuildError(`cannot read directory ${showPath(path)}: ${(err as Error).message}`, { cause: err });
    }
    names.sort((a, b) => Buffer.compare(a, b));
    const children = dir.inode.children!;
    for (const name of names) {
      const childPath = join(path, name);
      let cst: BigIntStats;
      try {
        cst = lstatSync(childPath, { bigint: true });
      } catch (err) {
        throw new BuildError(`cannot stat ${showPath(childPath)}: ${(err as Error).message}`, { cause: err });
      }
      if (isWhiteout(whiteoutSpec, name, cst)) continue;
      stats.files++;
      let inode: Inode | undefined;
      if (!cst.isDirectory()) {
        const key = `${cst.dev}:${cst.ino}`;
        inode = links.get(key);
        if (!inode) {
          inode = readInode(cst, childPath);
          links.set(key, inode);
        }
      } else {
        inode = readInode(cst, childPath);
      }
      const entry: Entry = { name, inode, parent: dir, index: 0 };
      children.push(entry);
      if (cst.isDirectory()) stack.push([entry, childPath]);
    }
  }
  return rootEntry;
}

function readInode(st: BigIntStats, path: Buffer): Inode {
  try {
    return inodeFromStat(st, path, false);
  } catch (err) {
    if (err instanceof BuildError) throw err;
    throw new BuildError(`cannot read ${showPath(path)}: ${(err as Error).message}`, { cause: err });
  }
}

/** Chunks read ahead of the writer (bounds memory to about this many chunk buffers). */
const kReadAhead = 8;

/** Reads each regular file of `inodes` (already in blob order) and stores its chunks. */
export async function dumpDirectoryData(
  inodes: Iterable<Inode>,
  writer: BlobWriter,
  chunkSize: number,
  progress: (bytes: number, fileDone: boolean) => void,
  pool?: ChunkPool,
): Promise<void> {
  for (const inode of inodes) {
    if (!isReg(inode) || inode.chunks || !inode.hostPath) continue;
    inode.chunks = await readFileChunks(inode.hostPath, inode.size, chunkSize, writer, progress, pool);
    progress(0, true);
  }
}

async function readFileChunks(
  path: Buffer,
  size: number,
  chunkSize: number,
  writer: BlobWriter,
  progress: (bytes: number, fileDone: boolean) => void,
  pool: ChunkPool | undefined,
): Promise<BlobChunk[]> {
  const chunks: Promise<BlobChunk>[] = [];
  if (size === 0) return [];
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (err) {
    throw new BuildError(`cannot open ${showPath(path)}: ${(err as Error).message}`, { cause: err });
  }
  try {
    for (let off = 0; off < size; off += chunkSize) {
      const want = Math.min(chunkSize, size - off);
      // A buffer of its own per chunk: it may be handed over to a worker thread.
      const buf = Buffer.from(new ArrayBuffer(want));
      let got = 0;
      while (got < want) {
        const n = readSync(fd, buf, got, want - got, off + got);
        if (n === 0) throw new BuildError(`${showPath(path)} shrank while the image was being built`);
        got += n;
      }
      chunks.push(writer.addChunk(buf, off, pool));
      progress(want, false);
      await writer.drain(kReadAhead);
    }
  } finally {
    closeSync(fd);
  }
  return Promise.all(chunks);
}
