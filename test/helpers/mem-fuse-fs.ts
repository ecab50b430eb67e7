/**
 * An in-memory filesystem handler for FUSE transport tests (host /dev/fuse mounts, the virtio
 * driver, QEMU guests): a small tree with directories, files, a symlink and xattrs, plus three
 * files served by the native READ fast path — one from a fully populated cache file, one whose
 * chunks are missing until `readMiss` fills them (lazy fetch), one from chunks of uneven sizes
 * packed back to back in a local blob without a chunk map (neighbouring chunks: one preadv).
 * `expected` describes what a client must see, so tests compare against it.
 */
import { createHash } from 'node:crypto';
import { open, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import type { FuseAttr, FuseDirEntryPlus, FuseEntry, FuseFilesystem, FuseSession } from '../../src/fuse/index.js';
import { FuseExtentTable, fuseErrno } from '../../src/fuse/index.js';
import { DigestAlgo, fill as nativeFill, openChunkMap } from '../../src/native/index.js';

export const kChunk = 65536;

/** Deterministic pseudo-random bytes (xorshift32), different per seed. */
export function pseudoRandom(len: number, seed: number): Buffer {
  const b = Buffer.alloc(len);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < len; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    b[i] = x & 0xff;
  }
  return b;
}

export interface ExpectedNode {
  path: string;
  type: 'dir' | 'file' | 'symlink';
  mode: number;
  size: number;
  mtime: number;
  sha256?: string;
  target?: string;
  xattrs?: Record<string, string>;
}

interface Node {
  nodeid: number;
  name: string;
  parent: number;
  attr: FuseAttr;
  children?: Map<string, number>;
  content?: Buffer;
  target?: string;
  xattrs?: Map<string, Buffer>;
  extents?: FuseExtentTable;
}

export interface MemFs {
  fs: FuseFilesystem;
  expected: ExpectedNode[];
  /** Registers the fast-path blobs on the session (call before mount/attach). */
  bind(session: FuseSession): void;
  counters: { misses: number; fills: number; forgets: number; lookups: number; opens: number };
  /** The bytes a client must read from the file at `path` (relative to the root). */
  content(path: string): Buffer | undefined;
  /** When set, OPEN of this name never answers (a hung handler). */
  hangOpenOf?: string;
  close(): void;
}

const kMtime = 1700000000;

export async function createMemFs(dir: string): Promise<MemFs> {
  const nodes = new Map<number, Node>();
  let nextId = 1;
  const mk = (name: string, parent: number, mode: number, extra: Partial<Node> = {}): Node => {
    const nodeid = nextId++;
    const size = extra.content?.length ?? extra.target?.length ?? (extra.extents?.fileSize ?? 0);
    const n: Node = {
      nodeid,
      name,
      parent,
      attr: { ino: nodeid, mode, nlink: (mode & 0o170000) === 0o040000 ? 2 : 1, uid: 0, gid: 0, size, atime: kMtime, mtime: kMtime + nodeid, mtimeNsec: 1000 * nodeid, ctime: kMtime },
      ...extra,
    };
    nodes.set(nodeid, n);
    if (parent !== 0) nodes.get(parent)?.children?.set(name, nodeid);
    return n;
  };
  const root = mk('', 0, 0o040755, { children: new Map() });
  mk('hello.txt', root.nodeid, 0o100644, {
    content: Buffer.from('hello world\n'),
    xattrs: new Map([['user.greeting', Buffer.from('hi')], ['user.empty', Buffer.alloc(0)]]),
  });
  const sub = mk('dir', root.nodeid, 0o040755, { children: new Map() });
  mk('nested.txt', sub.nodeid, 0o100600, { content: Buffer.from('nested file\n') });
  mk('empty', sub.nodeid, 0o040700, { children: new Map() });
  mk('link', root.nodeid, 0o120777, { target: 'hello.txt' });
  mk('big.bin', root.nodeid, 0o100644, { content: pseudoRandom(3 * 1024 * 1024 + 17, 1) });

  // cached.bin: every chunk in the cache file (stored in reverse chunk order), chunk 3 a hole.
  const cachedData = pseudoRandom(16 * kChunk + 1234, 2);
  const cachedChunks = Math.ceil(cachedData.length / kChunk);
  const cachePath = join(dir, 'cached.blob.data');
  const cacheFile = Buffer.alloc(cachedChunks * kChunk);
  const cachedTable = new FuseExtentTable(cachedData.length);
  for (let c = 0; c < cachedChunks; c++) {
    const len = Math.min(kChunk, cachedData.length - c * kChunk);
    if (c === 3) {
      cachedTable.addHole(c * kChunk, len);
      cachedData.fill(0, c * kChunk, c * kChunk + len);
      continue;
    }
    const src = (cachedChunks - 1 - c) * kChunk;
    cachedData.copy(cacheFile, src, c * kChunk, c * kChunk + len);
    cachedTable.add({ fileOffset: c * kChunk, length: len, blobSlot: 0, chunkIndex: c, sourceOffset: src, sourceSize: len });
  }
  await writeFile(cachePath, cacheFile);
  const cachedMap = openChunkMap(join(dir, 'cached.blob.data.chunk_map'), cachedChunks);
  for (let c = 0; c < cachedChunks; c++) cachedMap.setReady(c);
  mk('cached.bin', root.nodeid, 0o100444, { extents: cachedTable, content: cachedData });

  // lazy.bin: the cache starts empty; readMiss "fetches" chunks from `lazyData`.
  const lazyData = pseudoRandom(8 * kChunk + 100, 3);
  const lazyChunks = Math.ceil(lazyData.length / kChunk);
  const lazyPath = join(dir, 'lazy.blob.data');
  await writeFile(lazyPath, Buffer.alloc(0));
  const lazyMap = openChunkMap(join(dir, 'lazy.blob.data.chunk_map'), lazyChunks);
  const lazyTable = new FuseExtentTable(lazyData.length);
  for (let c = 0; c < lazyChunks; c++) {
    const len = Math.min(kChunk, lazyData.length - c * kChunk);
    lazyTable.add({ fileOffset: c * kChunk, length: len, blobSlot: 1, chunkIndex: c, sourceOffset: c * kChunk, sourceSize: len });
  }
  mk('lazy.bin', root.nodeid, 0o100444, { extents: lazyTable, content: lazyData });

  // packed.bin: chunks of uneven sizes packed back to back in a local "blob" (no cache, no map),
  // so neighbouring chunks continue each other in the file and in the blob.
  const packedData = pseudoRandom(300000, 4);
  const packedPath = join(dir, 'packed.blob');
  const packedTable = new FuseExtentTable(packedData.length);
  const sizes = [kChunk, 12345, 40000, 4096];
  for (let c = 0, at = 0; at < packedData.length; c++) {
    const len = Math.min(sizes[c % sizes.length] ?? kChunk, packedData.length - at);
    packedTable.add({ fileOffset: at, length: len, blobSlot: 2, chunkIndex: c, sourceOffset: at, sourceSize: len });
    at += len;
  }
  await writeFile(packedPath, packedData);
  mk('packed.bin', root.nodeid, 0o100444, { extents: packedTable, content: packedData });

  const counters = { misses: 0, fills: 0, forgets: 0, lookups: 0, opens: 0 };
  const handles = new Map<number, Node>();
  let nextFh = 1;
  const fills = new Map<number, Promise<void>>();
  const lazyFile = await open(lazyPath, 'r+');
  const state: MemFs = { fs: {}, expected: [], bind: () => undefined, counters, close: () => undefined, content: () => undefined };

  const entryOf = (n: Node): FuseEntry => ({ nodeid: n.nodeid, generation: 1, attr: n.attr, entryTimeout: 1, attrTimeout: 1 });
  const nodeOf = (id: number): Node => {
    const n = nodes.get(id);
    if (n === undefined) throw fuseErrno('ENOENT');
    return n;
  };
  const fill = (index: number): Promise<void> => {
    let p = fills.get(index);
    if (p === undefined) {
      p = (async () => {
        const start = index * kChunk;
        const bytes = lazyData.subarray(start, Math.min(lazyData.length, start + kChunk));
        // The daemon's fill: it writes, sets the bit and wakes every READ parked on the chunk
        // itself (no chunksReady from here).
        const out = await nativeFill({
          algo: 0, digester: DigestAlgo.Blake3, validate: false, src: bytes, fd: lazyFile.fd, map: lazyMap, allowSpill: false,
          chunks: [{ srcOffset: 0, storedSize: bytes.length, fileOffset: start, size: bytes.length, compressed: false, index, compressedOffset: start }],
        });
        if (out.status[0] !== 0) throw new Error(`lazy fill of chunk ${index} failed: ${out.status[0]}`);
        counters.fills++;
      })();
      fills.set(index, p);
    }
    return p;
  };

  state.fs = {
    lookup(_ctx, parent, name) {
      counters.lookups++;
      const id = nodeOf(parent).children?.get(name.toString());
      if (id === undefined) return fuseErrno('ENOENT');
      return entryOf(nodeOf(id));
    },
    forget(items) {
      counters.forgets += items.length;
    },
    getattr: (_ctx, nodeid) => ({ attr: nodeOf(nodeid).attr, attrTimeout: 1 }),
    readlink(_ctx, nodeid) {
      const n = nodeOf(nodeid);
      return n.target ?? fuseErrno('EINVAL');
    },
    open(_ctx, nodeid) {
      counters.opens++;
      const n = nodeOf(nodeid);
      if (state.hangOpenOf !== undefined && n.name === state.hangOpenOf) return new Promise(() => undefined);
      const fh = nextFh++;
      handles.set(fh, n);
      return n.extents ? { fh, keepCache: true, extents: n.extents } : { fh, keepCache: true };
    },
    read(_ctx, _nodeid, fh, offset, size) {
      const n = handles.get(fh);
      if (n?.content === undefined) return fuseErrno('EBADF');
      return n.content.subarray(Math.min(offset, n.content.length), Math.min(offset + size, n.content.length));
    },
    async readMiss(_ctx, miss) {
      counters.misses++;
      await Promise.all(miss.chunks.map((c) => (c.blobSlot === 1 ? fill(c.chunkIndex) : Promise.reject(fuseErrno('EIO')))));
    },
    release(_ctx, _nodeid, fh) {
      handles.delete(fh);
    },
    opendir(_ctx, nodeid) {
      if (nodeOf(nodeid).children === undefined) return fuseErrno('ENOTDIR');
      return { fh: 0, keepCache: true, cacheDir: true };
    },
    readdir(_ctx, nodeid, _fh, offset) {
      return listing(nodeid).slice(offset).map((e) => ({ name: e.name, ino: e.entry.nodeid, mode: e.entry.attr?.mode ?? 0, offset: e.offset }));
    },
    readdirplus(_ctx, nodeid, _fh, offset) {
      return listing(nodeid).slice(offset);
    },
    statfs: () => ({ blocks: 1000, bfree: 0, bavail: 0, files: nodes.size, ffree: 0, bsize: 4096, namelen: 255, frsize: 4096 }),
    getxattr(_ctx, nodeid, name) {
      return nodeOf(nodeid).xattrs?.get(name.toString()) ?? fuseErrno('ENODATA');
    },
    listxattr: (_ctx, nodeid) => [...(nodeOf(nodeid).xattrs?.keys() ?? [])],
  };

  function listing(nodeid: number): FuseDirEntryPlus[] {
    const n = nodeOf(nodeid);
    if (n.children === undefined) throw fuseErrno('ENOTDIR');
    const out: FuseDirEntryPlus[] = [
      { name: '.', offset: 1, entry: { nodeid: 0, attr: n.attr } },
      { name: '..', offset: 2, entry: { nodeid: 0, attr: nodeOf(n.parent === 0 ? n.nodeid : n.parent).attr } },
    ];
    for (const id of n.children.values()) out.push({ name: nodeOf(id).name, offset: out.length + 1, entry: entryOf(nodeOf(id)) });
    return out;
  }

  state.bind = (s) => {
    s.registerBlob(0, { dataPath: cachePath, chunkMap: cachedMap });
    s.registerBlob(1, { dataPath: lazyPath, chunkMap: lazyMap });
    s.registerBlob(2, { dataPath: packedPath, chunkMap: null });
  };
  state.close = () => {
    void lazyFile.close();
  };

  const pathOf = (n: Node): string => (n.parent === 0 ? '' : `${pathOf(nodeOf(n.parent))}/${n.name}`);
  state.content = (path) => [...nodes.values()].find((n) => pathOf(n) === `/${path}`)?.content;
  for (const n of nodes.values()) {
    if (n.nodeid === root.nodeid) continue;
    const type = n.children ? 'dir' : n.target !== undefined ? 'symlink' : 'file';
    state.expected.push({
      path: pathOf(n).slice(1),
      type,
      mode: n.attr.mode & 0o7777,
      size: n.attr.size,
      mtime: n.attr.mtime,
      ...(n.content ? { sha256: createHash('sha256').update(n.content).digest('hex') } : {}),
      ...(n.target !== undefined ? { target: n.target } : {}),
      ...(n.xattrs ? { xattrs: Object.fromEntries([...n.xattrs].map(([k, v]) => [k, v.toString()])) } : {}),
    });
  }
  return state;
}
