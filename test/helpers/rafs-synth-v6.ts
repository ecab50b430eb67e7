/**
 * Test/bench helper: writes a synthetic RAFS v6 bootstrap (plus its data blob) from a tree
 * description, following reference/rafs-format.md §2.1. It covers what the upstream fixtures do
 * not: compact inodes, FLAT_PLAIN multi-block directories, inline xattrs, devices, hardlinks,
 * holes, prefetch tables and the chunk info table path. Not the product builder.
 */
import { kV6XattrPrefixes } from '../../src/rafs/layout/constants.js';
import { type SynthBlobOutput, type SynthChunk, SynthBlob, type SynthCompressor, type SynthDigester, kCompressorEnum } from './rafs-synth-blob.js';

interface Common {
  mode?: number;
  uid?: number;
  gid?: number;
  mtime?: number;
  mtimeNsec?: number;
  xattrs?: Record<string, Buffer>;
  compact?: boolean;
}
export type SynthNode =
  | ({ type: 'dir'; children: Record<string, SynthNode> } & Common)
  | ({ type: 'file'; data?: Buffer; size?: number; holes?: number[] } & Common)
  | ({ type: 'symlink'; target: string } & Common)
  | ({ type: 'chr' | 'blk' | 'fifo' | 'sock'; rdev?: number } & Common)
  | { type: 'hardlink'; target: string };

export interface SynthV6Options {
  compressor?: SynthCompressor;
  digester?: SynthDigester;
  chunkSize?: number;
  explicitUidGid?: boolean;
  inlinedChunkDigest?: boolean;
  ciV2?: boolean;
  /** Put dir/symlink tails inline (FLAT_INLINE) when they fit; default true. */
  inlineData?: boolean;
  prefetch?: string[];
  blobId?: string;
  /** TARFS mode: 512-byte blocks, raw uncompressed data addressed by block number, no CI. */
  tarfs?: boolean;
}

export interface SynthV6Output {
  bootstrap: Buffer;
  blob: SynthBlobOutput;
  blobId: string;
  /** path → nid ("/" is the root). */
  nids: Map<string, number>;
}

const kTypeBits = { dir: 0o040000, file: 0o100000, symlink: 0o120000, chr: 0o020000, blk: 0o060000, fifo: 0o010000, sock: 0o140000 };
const kFileType = { file: 1, dir: 2, chr: 3, blk: 4, fifo: 5, sock: 6, symlink: 7 };

export type Real = Exclude<SynthNode, { type: 'hardlink' }>;
interface Rec {
  node: Real;
  path: string;
  ino: number;
  nlink: number;
  parent?: Rec;
  entries?: { name: Buffer; rec: Rec }[];
  data?: Buffer; // dir/symlink data
  chunks?: (SynthChunk | undefined)[];
  xattr: Buffer;
  layout: number;
  isize: number;
  tail: number;
  fullBlocks: number;
  size: number;
  off: number;
  blkaddr: number;
}

function xattrArea(x: Record<string, Buffer> | undefined): Buffer {
  if (!x || Object.keys(x).length === 0) return Buffer.alloc(0);
  const parts = [Buffer.alloc(12)];
  for (const [name, value] of Object.entries(x)) {
    const exact = kV6XattrPrefixes.find(([, p]) => !p.endsWith('.') && p === name);
    const pre = exact ?? kV6XattrPrefixes.find(([, p]) => p.endsWith('.') && name.startsWith(p));
    if (!pre) throw new Error(`synth: unsupported xattr namespace ${name}`);
    const suffix = Buffer.from(name.slice(pre[1].length));
    const e = Buffer.alloc(Math.ceil((4 + suffix.length + value.length) / 4) * 4);
    e[0] = suffix.length;
    e[1] = pre[0];
    e.writeUInt16LE(value.length, 2);
    suffix.copy(e, 4);
    value.copy(e, 4 + suffix.length);
    parts.push(e);
  }
  return Buffer.concat(parts);
}

/** Packs sorted entries into dirent blocks; returns per-block entry lists and the dir size. */
function packDir(entries: { name: Buffer }[], BS: number): { blocks: { name: Buffer }[][]; size: number } {
  const blocks: { name: Buffer }[][] = [[]];
  let used = 0;
  for (const e of entries) {
    if (used + 12 + e.name.length > BS) {
      blocks.push([]);
      used = 0;
    }
    (blocks[blocks.length - 1] as { name: Buffer }[]).push(e);
    used += 12 + e.name.length;
  }
  return { blocks, size: (blocks.length - 1) * BS + used };
}

export function buildV6(root: SynthNode, opts: SynthV6Options = {}): SynthV6Output {
  const chunkSize = opts.chunkSize ?? 0x100000;
  const digester = opts.digester ?? 'blake3';
  const tarfs = opts.tarfs ?? false;
  const BS = tarfs ? 512 : 4096;
  const compressor = tarfs ? 'none' : (opts.compressor ?? 'zstd');
  const blobId = opts.blobId ?? 'a'.repeat(64);
  const inline = opts.inlineData ?? true;
  const blob = new SynthBlob(compressor, digester, tarfs ? 512 : true, opts.ciV2 ?? false, tarfs);
  if (root.type !== 'dir') throw new Error('synth: root must be a dir');

  // Pass 1: records in DFS order, hardlinks resolved to their target's record.
  const recs: Rec[] = [];
  const byPath = new Map<string, Rec>();
  const links: { dir: Rec; name: Buffer; target: string }[] = [];
  const visit = (node: Real, path: string, parent: Rec | undefined): Rec => {
    const r: Rec = { node, path, ino: recs.length + 1, nlink: 1, xattr: xattrArea(node.xattrs), layout: 0, isize: node.compact ? 32 : 64, tail: 0, fullBlocks: 0, size: 0, off: 0, blkaddr: 0 };
    if (parent) r.parent = parent;
    recs.push(r);
    byPath.set(path, r);
    if (node.type === 'dir') {
      r.entries = [];
      for (const [name, child] of Object.entries(node.children)) {
        const cpath = path === '/' ? `/${name}` : `${path}/${name}`;
        if (child.type === 'hardlink') links.push({ dir: r, name: Buffer.from(name), target: child.target });
        else r.entries.push({ name: Buffer.from(name), rec: visit(child, cpath, r) });
      }
    } else if (node.type === 'file') {
      const size = node.data?.length ?? node.size ?? 0;
      r.size = size;
      r.chunks = [];
      for (let i = 0, off = 0; off < size; i++, off += chunkSize) {
        const len = Math.min(chunkSize, size - off);
        if (node.holes?.includes(i)) r.chunks.push(undefined);
        else r.chunks.push(node.data ? blob.add(node.data.subarray(off, off + len)) : blob.addFake(len));
      }
    } else if (node.type === 'symlink') {
      r.data = Buffer.from(node.target);
    }
    return r;
  };
  visit(root, '/', undefined);
  for (const l of links) {
    const t = byPath.get(l.target);
    if (!t || t.node.type === 'dir') throw new Error(`synth: bad hardlink target ${l.target}`);
    t.nlink++;
    (l.dir.entries as { name: Buffer; rec: Rec }[]).push({ name: l.name, rec: t });
  }
  const blobOut = blob.finish();

  // Pass 2: sizes and layouts.
  for (const r of recs) {
    if (r.node.type === 'dir') {
      const ents = r.entries as { name: Buffer; rec: Rec }[];
      r.nlink = 2 + ents.filter((e) => e.rec.node.type === 'dir').length;
      ents.push({ name: Buffer.from('.'), rec: r }, { name: Buffer.from('..'), rec: r.parent ?? r });
      ents.sort((a, b) => Buffer.compare(a.name, b.name));
      r.size = packDir(ents, BS).size;
    } else if (r.node.type === 'symlink') {
      r.size = (r.data as Buffer).length;
    }
    const hasData = r.node.type === 'dir' || r.node.type === 'symlink';
    if (r.node.type === 'file') {
      r.layout = 4;
    } else if (hasData) {
      const nblocks = Math.ceil(r.size / BS);
      const tail = r.size - (nblocks - 1) * BS;
      if (inline && r.size % BS !== 0 && r.isize + r.xattr.length + tail <= BS) {
        r.layout = 2;
        r.tail = tail;
        r.fullBlocks = nblocks - 1;
      } else {
        r.layout = 0;
        r.fullBlocks = nblocks;
      }
    }
  }

  // Pass 3: place inodes (root at nid 128, i.e. 4096 B into the meta area) and data blocks.
  const metaBase = 8192;
  let pos = metaBase + 4096;
  for (const r of recs) {
    const chunkArr = r.chunks ? Math.ceil((r.isize + r.xattr.length) / 8) * 8 - (r.isize + r.xattr.length) + r.chunks.length * 8 : 0;
    const len = r.isize + r.xattr.length + chunkArr + r.tail;
    if (r.tail > 0 && (pos % BS) + len > BS) pos = Math.ceil(pos / BS) * BS; // inline data must not cross a block
    r.off = pos;
    pos += Math.ceil(len / 32) * 32;
  }
  let blk = Math.ceil(pos / BS);
  for (const r of recs) {
    if (r.fullBlocks > 0) {
      r.blkaddr = blk;
      blk += r.fullBlocks;
    }
  }
  const nid = (r: Rec): number => (r.off - metaBase) / 32;
  const ctOff = blk * BS;
  const ctSize = opts.inlinedChunkDigest || tarfs ? 0 : blob.chunks.length * 80;
  const total = Math.max(ctOff + Math.ceil(ctSize / BS) * BS, ctOff);
  const buf = Buffer.alloc(total);

  // Superblock, extended superblock, device slot, blob table, prefetch table.
  const sb = 1024;
  buf.writeUInt32LE(0xe0f5e1e2, sb);
  buf.writeUInt32LE(0x4000_0000, sb + 8);
  buf[sb + 12] = tarfs ? 9 : 12;
  const rootNid = nid(recs[0] as Rec);
  buf.writeUInt16LE(rootNid, sb + 14);
  buf.writeBigUInt64LE(BigInt(recs.length + links.length), sb + 16);
  const devBlocks = Math.max(1, Math.ceil(blobOut.uncompressedSize / BS));
  buf.writeUInt32LE(devBlocks, sb + 36);
  buf.writeUInt32LE(metaBase / BS, sb + 40);
  buf.writeUInt32LE(0x0c, sb + 80);
  buf.writeUInt16LE(1, sb + 86);
  buf.writeUInt16LE(11, sb + 88);
  const anyXattr = recs.some((r) => r.xattr.length > 0);
  const flags =
    ({ none: 0x1, lz4_block: 0x2, gzip: 0x40, zstd: 0x80 } as const)[compressor] |
    (digester === 'blake3' ? 0x4 : 0x8) |
    ((opts.explicitUidGid ?? true) ? 0x10 : 0) |
    (anyXattr ? 0x20 : 0) |
    (opts.inlinedChunkDigest ? 0x100 : 0) |
    (tarfs ? 0x200 : 0);
  const ext = 1152;
  buf.writeUInt32LE(flags, ext);
  buf.writeBigUInt64LE(4096n, ext + 8);
  buf.writeUInt32LE(256, ext + 16);
  buf.writeUInt32LE(chunkSize, ext + 20);
  buf.writeBigUInt64LE(BigInt(ctSize > 0 ? ctOff : 0), ext + 24);
  buf.writeBigUInt64LE(BigInt(ctSize), ext + 32);
  buf.write(blobId, 1408, 64, 'latin1');
  buf.writeUInt32LE(devBlocks, 1408 + 64);
  const be = 4096;
  buf.write(blobId, be, 64, 'latin1');
  buf.writeUInt32LE(0, be + 64);
  buf.writeUInt32LE(chunkSize, be + 68);
  buf.writeUInt32LE(blob.chunks.length, be + 72);
  buf.writeUInt32LE(kCompressorEnum[compressor], be + 76);
  buf.writeUInt32LE(digester === 'blake3' ? 0 : 1, be + 80);
  const features = (tarfs ? 0x40 : 0x1) | (opts.ciV2 ? 0x4 : 0) | (opts.inlinedChunkDigest ? 0x20 : 0) | 0x2000_0000 | 0x4000_0000;
  buf.writeUInt32LE(features >>> 0, be + 84);
  buf.writeBigUInt64LE(BigInt(blobOut.blob.length), be + 88);
  buf.writeBigUInt64LE(BigInt(blobOut.uncompressedSize), be + 96);
  buf.writeUInt32LE(blobOut.tocSize, be + 104);
  buf.writeBigUInt64LE(BigInt(blobOut.ciOffset), be + 112);
  buf.writeBigUInt64LE(BigInt(blobOut.ci.length), be + 120);
  buf.writeBigUInt64LE(BigInt(blobOut.ci.length), be + 128);
  blobOut.tocDigest.copy(buf, be + 136);
  const pf = (opts.prefetch ?? []).map((p) => {
    const r = byPath.get(p);
    if (!r) throw new Error(`synth: prefetch path ${p} not found`);
    return nid(r);
  });
  if (pf.length > 0) {
    buf.writeBigUInt64LE(BigInt(be + 256), ext + 40);
    buf.writeUInt32LE(pf.length * 4, ext + 48);
    pf.forEach((n, i) => buf.writeUInt32LE(n, be + 256 + i * 4));
  }

  // Inodes and their data.
  for (const r of recs) {
    const n = r.node;
    const o = r.off;
    const icount = r.xattr.length > 0 ? 1 + (r.xattr.length - 12) / 4 : 0;
    const mode = kTypeBits[n.type] | (n.mode ?? (n.type === 'dir' ? 0o755 : n.type === 'symlink' ? 0o777 : 0o644));
    const iu = n.type === 'file' ? 0x20 | (Math.log2(chunkSize) - Math.log2(BS)) : n.type === 'dir' || n.type === 'symlink' ? r.blkaddr : (n.rdev ?? 0);
    buf.writeUInt16LE((n.compact ? 0 : 1) | (r.layout << 1), o);
    buf.writeUInt16LE(icount, o + 2);
    buf.writeUInt16LE(mode, o + 4);
    buf.writeUInt32LE(iu, o + 16);
    buf.writeUInt32LE(r.ino, o + 20);
    if (n.compact) {
      buf.writeUInt16LE(r.nlink, o + 6);
      buf.writeUInt32LE(r.size, o + 8);
      buf.writeUInt16LE(n.uid ?? 0, o + 24);
      buf.writeUInt16LE(n.gid ?? 0, o + 26);
    } else {
      buf.writeBigUInt64LE(BigInt(r.size), o + 8);
      buf.writeUInt32LE(n.uid ?? 0, o + 24);
      buf.writeUInt32LE(n.gid ?? 0, o + 28);
      buf.writeBigUInt64LE(BigInt(n.mtime ?? 0), o + 32);
      buf.writeUInt32LE(n.mtimeNsec ?? 0, o + 40);
      buf.writeUInt32LE(r.nlink, o + 44);
    }
    r.xattr.copy(buf, o + r.isize);
    const after = o + r.isize + r.xattr.length;
    if (r.chunks) {
      const arr = o + Math.ceil((r.isize + r.xattr.length) / 8) * 8;
      r.chunks.forEach((c, i) => {
        const at = arr + i * 8;
        if (!c) {
          buf.writeUInt32LE(0xffffffff, at + 4);
          return;
        }
        buf.writeUInt16LE(c.index & 0xffff, at);
        buf.writeUInt16LE(1 | ((c.index >> 16) << 8), at + 2);
        buf.writeUInt32LE(c.uoff / BS, at + 4);
      });
    }
    let data: Buffer | undefined = r.data;
    if (n.type === 'dir') {
      const { blocks } = packDir(r.entries as { name: Buffer }[], BS);
      const parts: Buffer[] = [];
      blocks.forEach((bl, bi) => {
        const ents = bl as { name: Buffer; rec: Rec }[];
        const used = ents.length * 12 + ents.reduce((s, e) => s + e.name.length, 0);
        const b = Buffer.alloc(bi === blocks.length - 1 ? used : BS);
        let nameoff = ents.length * 12;
        ents.forEach((e, j) => {
          b.writeBigUInt64LE(BigInt(nid(e.rec)), j * 12);
          b.writeUInt16LE(nameoff, j * 12 + 8);
          b[j * 12 + 10] = kFileType[e.rec.node.type];
          e.name.copy(b, nameoff);
          nameoff += e.name.length;
        });
        parts.push(b);
      });
      data = Buffer.concat(parts);
    }
    if (data) {
      if (r.fullBlocks > 0) data.copy(buf, r.blkaddr * BS, 0, r.fullBlocks * BS);
      if (r.tail > 0) data.copy(buf, after, r.fullBlocks * BS);
    }
  }
  // Chunk info table (RafsV5ChunkInfo rows), in chunk order.
  if (ctSize > 0) {
    blob.chunks.forEach((c, i) => {
      const p = ctOff + i * 80;
      c.digest.copy(buf, p);
      buf.writeUInt32LE(0, p + 32);
      buf.writeUInt32LE(c.compressed ? 1 : 0, p + 36);
      buf.writeUInt32LE(c.csize, p + 40);
      buf.writeUInt32LE(c.usize, p + 44);
      buf.writeBigUInt64LE(BigInt(c.coff), p + 48);
      buf.writeBigUInt64LE(BigInt(c.uoff), p + 56);
      buf.writeUInt32LE(c.index, p + 72);
    });
  }
  const nids = new Map<string, number>();
  for (const [p, r] of byPath) nids.set(p, nid(r));
  return { bootstrap: buf, blob: blobOut, blobId, nids };
}
