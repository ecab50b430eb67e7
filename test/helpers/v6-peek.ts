/**
 * A deliberately small, independent look into RAFS v6 bootstraps for builder tests: superblock
 * fields, blob table, inodes by path and their chunk indexes. It trusts its input (test images)
 * and is no substitute for the reader in src/rafs/reader.
 */
export interface PeekInode {
  nid: number;
  format: number;
  layout: number;
  xattrCount: number;
  mode: number;
  size: number;
  u: number;
  ino: number;
  uid: number;
  gid: number;
  mtime: number;
  mtimeNsec: number;
  nlink: number;
}

export class V6Peek {
  readonly buf: Buffer;
  readonly rootNid: number;
  readonly inos: number;
  readonly blocks: number;
  readonly metaBlkaddr: number;
  readonly extraDevices: number;
  readonly flags: number;
  readonly blobTableOffset: number;
  readonly blobTableSize: number;
  readonly chunkSize: number;
  readonly chunkTableOffset: number;
  readonly chunkTableSize: number;
  readonly prefetchOffset: number;
  readonly prefetchSize: number;

  constructor(buf: Buffer) {
    this.buf = buf;
    if (buf.readUInt32LE(1024) !== 0xe0f5e1e2) throw new Error('not a v6 bootstrap');
    this.rootNid = buf.readUInt16LE(1024 + 14);
    this.inos = Number(buf.readBigUInt64LE(1024 + 16));
    this.blocks = buf.readUInt32LE(1024 + 36);
    this.metaBlkaddr = buf.readUInt32LE(1024 + 40);
    this.extraDevices = buf.readUInt16LE(1024 + 86);
    const ext = 1152;
    this.flags = Number(buf.readBigUInt64LE(ext));
    this.blobTableOffset = Number(buf.readBigUInt64LE(ext + 8));
    this.blobTableSize = buf.readUInt32LE(ext + 16);
    this.chunkSize = buf.readUInt32LE(ext + 20);
    this.chunkTableOffset = Number(buf.readBigUInt64LE(ext + 24));
    this.chunkTableSize = Number(buf.readBigUInt64LE(ext + 32));
    this.prefetchOffset = Number(buf.readBigUInt64LE(ext + 40));
    this.prefetchSize = buf.readUInt32LE(ext + 48);
  }

  device(i: number): { id: string; blocks: number; mappedBlkaddr: number } {
    const off = 1408 + i * 128;
    return { id: this.buf.subarray(off, off + 64).toString().replace(/\0+$/, ''), blocks: this.buf.readUInt32LE(off + 64), mappedBlkaddr: this.buf.readUInt32LE(off + 68) };
  }

  blob(i: number): Record<string, number | string | Buffer> {
    const o = this.blobTableOffset + i * 256;
    const b = this.buf;
    return {
      id: b.subarray(o, o + 64).toString().replace(/\0+$/, ''),
      index: b.readUInt32LE(o + 64),
      chunkSize: b.readUInt32LE(o + 68),
      chunkCount: b.readUInt32LE(o + 72),
      compressor: b.readUInt32LE(o + 76),
      digester: b.readUInt32LE(o + 80),
      features: b.readUInt32LE(o + 84),
      compressedSize: Number(b.readBigUInt64LE(o + 88)),
      uncompressedSize: Number(b.readBigUInt64LE(o + 96)),
      tocSize: b.readUInt32LE(o + 104),
      ciCompressor: b.readUInt32LE(o + 108),
      ciOffset: Number(b.readBigUInt64LE(o + 112)),
      ciCompressedSize: Number(b.readBigUInt64LE(o + 120)),
      ciUncompressedSize: Number(b.readBigUInt64LE(o + 128)),
      tocDigest: b.subarray(o + 136, o + 168),
    };
  }

  offsetOf(nid: number): number {
    return this.metaBlkaddr * 4096 + nid * 32;
  }

  inode(nid: number): PeekInode {
    const b = this.buf;
    const o = this.offsetOf(nid);
    const format = b.readUInt16LE(o);
    if ((format & 1) !== 1) throw new Error('compact inodes are not expected from this builder');
    return {
      nid,
      format,
      layout: (format >> 1) & 7,
      xattrCount: b.readUInt16LE(o + 2),
      mode: b.readUInt16LE(o + 4),
      size: Number(b.readBigUInt64LE(o + 8)),
      u: b.readUInt32LE(o + 16),
      ino: b.readUInt32LE(o + 20),
      uid: b.readUInt32LE(o + 24),
      gid: b.readUInt32LE(o + 28),
      mtime: Number(b.readBigInt64LE(o + 32)),
      mtimeNsec: b.readUInt32LE(o + 40),
      nlink: b.readUInt32LE(o + 44),
    };
  }

  private xattrSize(i: PeekInode): number {
    return i.xattrCount === 0 ? 0 : 12 + (i.xattrCount - 1) * 4;
  }

  /** Directory or symlink data (inline tail included). */
  data(i: PeekInode): Buffer {
    const full = i.layout === 2 ? Math.floor(i.size / 4096) * 4096 : i.size;
    const parts = [this.buf.subarray(i.u * 4096, i.u * 4096 + full)];
    if (i.layout === 2) {
      const tail = this.offsetOf(i.nid) + 64 + this.xattrSize(i);
      parts.push(this.buf.subarray(tail, tail + (i.size - full)));
    }
    return Buffer.concat(parts);
  }

  readDir(i: PeekInode): { name: Buffer; nid: number; type: number }[] {
    const d = this.data(i);
    const out: { name: Buffer; nid: number; type: number }[] = [];
    for (let blk = 0; blk * 4096 < d.length; blk++) {
      const block = d.subarray(blk * 4096, Math.min(d.length, (blk + 1) * 4096));
      const count = block.readUInt16LE(8) / 12;
      for (let k = 0; k < count; k++) {
        const nameoff = block.readUInt16LE(k * 12 + 8);
        const end = k + 1 < count ? block.readUInt16LE((k + 1) * 12 + 8) : block.length;
        let name = block.subarray(nameoff, end);
        const nul = name.indexOf(0);
        if (nul >= 0) name = name.subarray(0, nul);
        out.push({ name, nid: Number(block.readBigUInt64LE(k * 12)), type: block[k * 12 + 10]! });
      }
    }
    return out;
  }

  lookup(path: string): PeekInode {
    let cur = this.inode(this.rootNid);
    for (const part of path.split('/').filter(Boolean)) {
      const e = this.readDir(cur).find((d) => d.name.equals(Buffer.from(part)));
      if (!e) throw new Error(`${path}: ${part} not found`);
      cur = this.inode(e.nid);
    }
    return cur;
  }

  /** Chunk addresses of a regular file: blob index, chunk index, block address. */
  chunks(i: PeekInode): { blobIndex: number; ciIndex: number; blkaddr: number }[] {
    const count = Math.ceil(i.size / this.chunkSize);
    let o = this.offsetOf(i.nid) + 64 + this.xattrSize(i);
    o = Math.ceil(o / 8) * 8;
    const out = [];
    for (let k = 0; k < count; k++, o += 8) {
      const lo = this.buf.readUInt16LE(o);
      const hi = this.buf.readUInt16LE(o + 2);
      out.push({ blobIndex: (hi & 0xff) - 1, ciIndex: ((hi >> 8) << 16) | lo, blkaddr: this.buf.readUInt32LE(o + 4) });
    }
    return out;
  }

  prefetchNids(): number[] {
    const out = [];
    for (let o = this.prefetchOffset; o < this.prefetchOffset + this.prefetchSize; o += 4) out.push(this.buf.readUInt32LE(o));
    return out;
  }
}
