/**
 * Test helper: writes a synthetic RAFS v5 bootstrap (and its blob) from the same tree
 * description as the v6 helper (reference/rafs-format.md §2.3): BFS inode numbering so each
 * directory's children are a contiguous, name-sorted range; hardlinks as separate records sharing
 * i_ino; HAS_HOLE files (hole chunks omitted); xattr tables; inode digests. Not the product builder.
 */
import { digestOf, type SynthBlobOutput, SynthBlob, type SynthChunk, type SynthCompressor, type SynthDigester } from './rafs-synth-blob.js';
import type { Real, SynthNode } from './rafs-synth-v6.js';

export interface SynthV5Options {
  compressor?: SynthCompressor;
  digester?: SynthDigester;
  chunkSize?: number;
  explicitUidGid?: boolean;
  prefetch?: string[];
  blobId?: string;
}

export interface SynthV5Output {
  bootstrap: Buffer;
  blob: SynthBlobOutput;
  /** path → inode number (table index, root = 1). */
  refs: Map<string, number>;
}

const kTypeBits = { dir: 0o040000, file: 0o100000, symlink: 0o120000, chr: 0o020000, blk: 0o060000, fifo: 0o010000, sock: 0o140000 };
const pad8 = (n: number): number => Math.ceil(n / 8) * 8;

interface Rec {
  index: number;
  name: Buffer;
  node: Real;
  path: string;
  parent: number;
  ino: number;
  nlink: number;
  hardlink: boolean;
  children: Rec[];
  chunks: { c: SynthChunk; fileOffset: number }[];
  hasHole: boolean;
  size: number;
  digest: Buffer;
}

export function buildV5(root: SynthNode, opts: SynthV5Options = {}): SynthV5Output {
  const chunkSize = opts.chunkSize ?? 0x100000;
  const digester = opts.digester ?? 'sha256';
  const compressor = opts.compressor ?? 'none';
  const blob = new SynthBlob(compressor, digester, false);
  if (root.type !== 'dir') throw new Error('synth: root must be a dir');
  const recs: Rec[] = [];
  const byPath = new Map<string, Rec>();
  const mk = (name: string, node: Real, path: string, parent: number): Rec => {
    const r: Rec = { index: recs.length + 1, name: Buffer.from(name), node, path, parent, ino: recs.length + 1, nlink: 1, hardlink: false, children: [], chunks: [], hasHole: false, size: 0, digest: Buffer.alloc(32) };
    recs.push(r);
    byPath.set(path, r);
    return r;
  };
  const pending: { rec: Rec; link?: string }[] = [];
  // BFS: a directory's children get consecutive numbers, sorted by name.
  const queue: Rec[] = [mk('/', root, '/', 0)];
  for (let qi = 0; qi < queue.length; qi++) {
    const d = queue[qi] as Rec;
    if (d.node.type !== 'dir') continue;
    const names = Object.keys(d.node.children).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    for (const name of names) {
      const child = d.node.children[name] as SynthNode;
      const path = d.path === '/' ? `/${name}` : `${d.path}/${name}`;
      const r = mk(name, child.type === 'hardlink' ? { type: 'file' } : child, path, d.index);
      d.children.push(r);
      if (child.type === 'hardlink') pending.push({ rec: r, link: child.target });
      else queue.push(r);
    }
  }
  const linkRecs = new Set(pending.map((p) => p.rec));
  for (const r of recs) {
    const n = r.node;
    if (n.type === 'file' && !linkRecs.has(r)) {
      const size = n.data?.length ?? n.size ?? 0;
      r.size = size;
      for (let i = 0, off = 0; off < size; i++, off += chunkSize) {
        if (n.holes?.includes(i)) {
          r.hasHole = true;
          continue;
        }
        const len = Math.min(chunkSize, size - off);
        r.chunks.push({ c: n.data ? blob.add(n.data.subarray(off, off + len)) : blob.addFake(len), fileOffset: off });
      }
    } else if (n.type === 'symlink') {
      r.size = Buffer.byteLength(n.target);
    } else if (n.type === 'dir') {
      const sum = r.children.reduce((s, c) => s + c.name.length + 8, 0);
      r.size = sum === 0 ? 4096 : Math.ceil(sum / 4096) * 4096;
      r.nlink = 2 + r.children.filter((c) => c.node.type === 'dir').length;
    }
  }
  for (const p of pending) {
    const t = byPath.get(p.link as string);
    if (!t || t.node.type !== 'file') throw new Error(`synth: bad hardlink target ${p.link}`);
    Object.assign(p.rec, { node: t.node, ino: t.ino, size: t.size, chunks: t.chunks, hasHole: t.hasHole, hardlink: true });
  }
  const links = new Map<number, number>();
  for (const r of recs) links.set(r.ino, (links.get(r.ino) ?? 0) + 1);
  for (const r of recs) {
    if (r.node.type === 'file') r.nlink = links.get(r.ino) ?? 1;
  }
  // Digests bottom-up (children have higher numbers than their parent).
  for (let i = recs.length - 1; i >= 0; i--) {
    const r = recs[i] as Rec;
    const n = r.node;
    if (n.type === 'file') r.digest = digestOf(digester, Buffer.concat(r.chunks.map((c) => c.c.digest)));
    else if (n.type === 'symlink') r.digest = digestOf(digester, Buffer.from(n.target));
    else if (n.type === 'dir') r.digest = digestOf(digester, Buffer.concat(r.children.map((c) => c.digest)));
  }
  const blobOut = blob.finish();
  const blobId = opts.blobId ?? 'b'.repeat(64);

  const records = recs.map((r) => encodeRecord(r, opts.explicitUidGid ?? false));
  const tableOff = 8192;
  const pfOff = tableOff + pad8(recs.length * 4);
  const pf = (opts.prefetch ?? []).map((p) => (byPath.get(p) as Rec).index);
  const btOff = pfOff + pad8(pf.length * 4);
  const bt = Buffer.concat([Buffer.alloc(8), Buffer.from(blobId)]);
  const extOff = btOff + pad8(bt.length);
  let pos = extOff + 64;
  const offsets = records.map((rec) => {
    const o = pos;
    pos += rec.length;
    return o;
  });
  const buf = Buffer.alloc(pos);
  buf.writeUInt32LE(0x52414653, 0);
  buf.writeUInt32LE(0x500, 4);
  buf.writeUInt32LE(8192, 8);
  buf.writeUInt32LE(chunkSize, 12);
  const flags = ({ none: 0x1, lz4_block: 0x2, gzip: 0x40, zstd: 0x80 } as const)[compressor] | (digester === 'blake3' ? 0x4 : 0x8) | (opts.explicitUidGid ? 0x10 : 0);
  buf.writeBigUInt64LE(BigInt(flags), 16);
  buf.writeBigUInt64LE(BigInt(new Set(recs.map((r) => r.ino)).size), 24);
  buf.writeBigUInt64LE(BigInt(tableOff), 32);
  buf.writeBigUInt64LE(BigInt(pfOff), 40);
  buf.writeBigUInt64LE(BigInt(btOff), 48);
  buf.writeUInt32LE(recs.length, 56);
  buf.writeUInt32LE(pf.length, 60);
  buf.writeUInt32LE(bt.length, 64);
  buf.writeUInt32LE(1, 68);
  buf.writeBigUInt64LE(BigInt(extOff), 72);
  offsets.forEach((o, i) => buf.writeUInt32LE(o / 8, tableOff + i * 4));
  pf.forEach((n, i) => buf.writeUInt32LE(n, pfOff + i * 4));
  bt.copy(buf, btOff);
  buf.writeUInt32LE(blob.chunks.length, extOff);
  buf.writeBigUInt64LE(BigInt(blobOut.uncompressedSize), extOff + 8);
  buf.writeBigUInt64LE(BigInt(blobOut.blob.length), extOff + 16);
  records.forEach((rec, i) => rec.copy(buf, offsets[i]));
  const refs = new Map<string, number>();
  for (const r of recs) refs.set(r.path, r.index);
  return { bootstrap: buf, blob: blobOut, refs };
}

function encodeRecord(r: Rec, explicit: boolean): Buffer {
  const n = r.node;
  const target = n.type === 'symlink' ? Buffer.from(n.target) : Buffer.alloc(0);
  const xattrs = n.xattrs ? Object.entries(n.xattrs) : [];
  const pairs = xattrs.map(([k, v]) => {
    const p = Buffer.concat([Buffer.from(k), Buffer.from([0]), v]);
    const len = Buffer.alloc(4);
    len.writeUInt32LE(p.length);
    return Buffer.concat([len, p]);
  });
  const xbody = Buffer.concat(pairs);
  const xattr = xattrs.length > 0 ? Buffer.alloc(8 + pad8(xbody.length)) : Buffer.alloc(0);
  if (xattrs.length > 0) {
    xattr.writeBigUInt64LE(BigInt(xbody.length));
    xbody.copy(xattr, 8);
  }
  const nchunks = n.type === 'file' ? r.chunks.length : 0;
  const head = Buffer.alloc(128 + pad8(r.name.length) + pad8(target.length));
  r.digest.copy(head, 0);
  head.writeBigUInt64LE(BigInt(r.parent), 32);
  head.writeBigUInt64LE(BigInt(r.ino), 40);
  head.writeUInt32LE(explicit ? (n.uid ?? 0) : 0, 48);
  head.writeUInt32LE(explicit ? (n.gid ?? 0) : 0, 52);
  head.writeUInt32LE(kTypeBits[n.type] | (n.mode ?? (n.type === 'dir' ? 0o755 : n.type === 'symlink' ? 0o777 : 0o644)), 60);
  head.writeBigUInt64LE(BigInt(r.size), 64);
  head.writeBigUInt64LE(BigInt(Math.ceil(r.size / 512)), 72);
  head.writeBigUInt64LE(BigInt((n.type === 'symlink' ? 1 : 0) | (r.hardlink ? 2 : 0) | (xattrs.length > 0 ? 4 : 0) | (r.hasHole ? 8 : 0)), 80);
  head.writeUInt32LE(r.nlink, 88);
  head.writeUInt32LE(n.type === 'dir' && r.children.length > 0 ? (r.children[0] as Rec).index : 0, 92);
  head.writeUInt32LE(n.type === 'dir' ? r.children.length : nchunks, 96);
  head.writeUInt16LE(r.name.length, 100);
  head.writeUInt16LE(target.length, 102);
  head.writeUInt32LE(n.type === 'chr' || n.type === 'blk' ? (n.rdev ?? 0) : 0, 104);
  head.writeUInt32LE(n.mtimeNsec ?? 0, 108);
  head.writeBigUInt64LE(BigInt(n.mtime ?? 0), 112);
  r.name.copy(head, 128);
  target.copy(head, 128 + pad8(r.name.length));
  const chunks = Buffer.alloc(nchunks * 80);
  r.chunks.forEach(({ c, fileOffset }, i) => {
    const p = i * 80;
    c.digest.copy(chunks, p);
    chunks.writeUInt32LE(c.compressed ? 1 : 0, p + 36);
    chunks.writeUInt32LE(c.csize, p + 40);
    chunks.writeUInt32LE(c.usize, p + 44);
    chunks.writeBigUInt64LE(BigInt(c.coff), p + 48);
    chunks.writeBigUInt64LE(BigInt(c.uoff), p + 56);
    chunks.writeBigUInt64LE(BigInt(fileOffset), p + 64);
    chunks.writeUInt32LE(c.index, p + 72);
  });
  return Buffer.concat([head, xattr, chunks]);
}
