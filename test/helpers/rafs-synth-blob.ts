/**
 * Test/bench helper: builds a small synthetic RAFS data blob (chunks, CI array, blob meta header,
 * `blob.digest`, TOC with GNU tar header) so reader tests can exercise code paths the upstream
 * fixtures do not cover. Written from reference/rafs-format.md; not the product builder.
 */
import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';

import { blake3, compress } from '../../src/native/index.js';

export type SynthCompressor = 'none' | 'lz4_block' | 'gzip' | 'zstd';
export type SynthDigester = 'blake3' | 'sha256';

export const kCompressorEnum: Record<SynthCompressor, number> = { none: 0, lz4_block: 1, gzip: 2, zstd: 3 };

export interface SynthChunk {
  index: number;
  coff: number;
  csize: number;
  uoff: number;
  usize: number;
  compressed: boolean;
  digest: Buffer;
}

export function digestOf(d: SynthDigester, data: Buffer): Buffer {
  return d === 'blake3' ? blake3(data) : createHash('sha256').update(data).digest();
}

function compressWith(c: SynthCompressor, raw: Buffer): Buffer {
  if (c === 'none') return raw;
  if (c === 'gzip') return gzipSync(raw);
  return compress(kCompressorEnum[c], raw);
}

/** A GNU tar header (512 B) with a valid checksum. */
export function tarHeader(name: string, size: number): Buffer {
  const h = Buffer.alloc(512);
  h.write(name, 0, 100, 'latin1');
  h.write('0000644\0', 100, 'latin1');
  h.write('0000000\0', 108, 'latin1');
  h.write('0000000\0', 116, 'latin1');
  h.write(size.toString(8).padStart(11, '0') + '\0', 124, 'latin1');
  h.write('00000000000\0', 136, 'latin1');
  h.write('0', 156, 'latin1');
  h.write('ustar  \0', 257, 'latin1');
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'latin1');
  return h;
}

export interface SynthBlobOutput {
  blob: Buffer;
  /** Uncompressed CI array and the 4096-byte meta header. */
  ci: Buffer;
  header: Buffer;
  ciOffset: number;
  digests: Buffer;
  tocSize: number;
  tocDigest: Buffer;
  /** `.blob.meta` cache-file image. */
  metaFile: Buffer;
  uncompressedSize: number;
}

export class SynthBlob {
  readonly chunks: SynthChunk[] = [];
  private readonly _parts: Buffer[] = [];
  private _coff = 0;
  private _uoff = 0;

  constructor(
    readonly compressor: SynthCompressor,
    readonly digester: SynthDigester,
    /** v6 blobs are ALIGNED: uncompressed offsets advance by round_up_4k(size); a number sets the unit. */
    readonly aligned: boolean | number,
    readonly ciV2 = false,
    /** Tarfs-like raw data: pad stored bytes so compressed offsets equal uncompressed ones. */
    readonly pad = false,
  ) {}

  private get _unit(): number {
    return this.aligned === true ? 4096 : this.aligned === false ? 1 : this.aligned;
  }

  /** Adds a chunk of real data; stores it raw when compression does not shrink it. */
  add(raw: Buffer): SynthChunk {
    let c = compressWith(this.compressor, raw);
    const compressed = this.compressor !== 'none' && c.length < raw.length;
    if (!compressed) c = raw;
    return this._push(c, raw.length, compressed, digestOf(this.digester, raw));
  }

  /** A chunk with no data behind it (bench images): sizes only, zero digest. */
  addFake(usize: number): SynthChunk {
    return this._push(undefined, usize, false, Buffer.alloc(32));
  }

  private _push(c: Buffer | undefined, usize: number, compressed: boolean, digest: Buffer): SynthChunk {
    const csize = c ? c.length : usize;
    const ch: SynthChunk = { index: this.chunks.length, coff: this._coff, csize, uoff: this._uoff, usize, compressed, digest };
    const step = Math.ceil(usize / this._unit) * this._unit;
    if (c) this._parts.push(c);
    this._coff += csize;
    if (this.pad) {
      this._parts.push(Buffer.alloc(step - csize));
      this._coff += step - csize;
    }
    this._uoff += step;
    this.chunks.push(ch);
    return ch;
  }

  ciEntry(ch: SynthChunk): Buffer {
    if (this.ciV2) {
      const e = Buffer.alloc(24);
      e.writeUInt32LE(ch.uoff / 4096, 0);
      e.writeUInt32LE((((ch.usize - 1) & 0xffffff) | ((ch.compressed ? 1 : 0) << 24)) >>> 0, 4);
      e.writeUInt32LE(ch.coff % 2 ** 32, 8);
      e.writeUInt32LE((Math.floor(ch.coff / 2 ** 32) | (ch.csize << 8)) >>> 0, 12);
      return e;
    }
    const e = Buffer.alloc(16);
    const u = ch.usize - 1;
    const c = ch.csize - 1;
    e.writeUInt32LE(((ch.uoff % 2 ** 32) | (((u >> 20) & 0xf) << 8)) >>> 0, 0);
    e.writeUInt32LE((Math.floor(ch.uoff / 2 ** 32) | ((u & 0xfffff) << 12)) >>> 0, 4);
    e.writeUInt32LE(ch.coff % 2 ** 32, 8);
    e.writeUInt32LE((Math.floor(ch.coff / 2 ** 32) | (((c >> 20) & 0xf) << 8) | ((c & 0xfffff) << 12)) >>> 0, 12);
    return e;
  }

  finish(): SynthBlobOutput {
    const ci = Buffer.concat(this.chunks.map((c) => this.ciEntry(c)));
    const ciOffset = this._coff;
    const header = Buffer.alloc(4096);
    header.writeUInt32LE(0xb10bb10b, 0);
    header.writeUInt32LE(0x1 | (this.ciV2 ? 0x4 : 0) | 0x20 | 0x2000_0000, 4);
    header.writeUInt32LE(0, 8);
    header.writeUInt32LE(this.chunks.length, 12);
    header.writeBigUInt64LE(BigInt(ciOffset), 16);
    header.writeBigUInt64LE(BigInt(ci.length), 24);
    header.writeBigUInt64LE(BigInt(ci.length), 32);
    header.writeUInt32LE(0xb10bb10b, 4092);
    const digests = Buffer.concat(this.chunks.map((c) => c.digest));
    const headerOff = ciOffset + ci.length;
    const digestOff = headerOff + 4096;
    const toc = Buffer.concat([
      tocEntry('blob.meta', ci, ciOffset),
      tocEntry('blob.meta.header', header, headerOff),
      tocEntry('blob.digest', digests, digestOff),
    ]);
    const tocTail = Buffer.concat([toc, tarHeader('rafs.blob.toc', toc.length)]);
    const blob = Buffer.concat([...this._parts, ci, header, digests, tocTail]);
    const padded = Buffer.alloc(Math.ceil(ci.length / 4096) * 4096);
    ci.copy(padded);
    return {
      blob,
      ci,
      header,
      ciOffset,
      digests,
      tocSize: tocTail.length,
      tocDigest: createHash('sha256').update(tocTail).digest(),
      metaFile: Buffer.concat([padded, header]),
      uncompressedSize: this._uoff,
    };
  }
}

function tocEntry(name: string, content: Buffer, offset: number): Buffer {
  const e = Buffer.alloc(128);
  e.writeUInt32LE(1, 0);
  e.write(name, 8, 16, 'latin1');
  createHash('sha256').update(content).digest().copy(e, 24);
  e.writeBigUInt64LE(BigInt(offset), 56);
  e.writeBigUInt64LE(BigInt(content.length), 64);
  e.writeBigUInt64LE(BigInt(content.length), 72);
  return e;
}
