/**
 * Encoders for the structures at the end of a native data blob (rafs-format.md §2.2 and "Native
 * data blob layout"): chunk info v1 entries, the 4096-byte compression-context header, TOC
 * entries and the GNU tar headers that follow each section.
 */
import {
  kBlobMetaHeaderSize,
  kBlobMetaMagic,
  kChunkInfoV1Size,
  kTarHeaderSize,
  kTocEntrySize,
} from '../layout/constants.js';
import { compressorFromEnum, compressorToTocFlags } from '../blob/codec.js';
import { BuildError, type BlobChunk } from './types.js';

const kMaxCompressedOffset = 2 ** 40;
const kMaxUncompressedOffset = 2 ** 44;
const kMaxSize = 2 ** 24;

/**
 * BlobChunkInfoV1Ondisk array: sizes stored minus one, 24 bits split 20+4; the uncompressed
 * offset must be 4 KiB aligned (ALIGNED blobs). A chunk counts as compressed iff csize != usize,
 * which holds because incompressible chunks are stored raw (csize == usize).
 */
export function encodeChunkInfoV1(chunks: readonly BlobChunk[]): Buffer {
  const out = Buffer.alloc(chunks.length * kChunkInfoV1Size);
  chunks.forEach((c, i) => {
    if (c.uncompressedOffset % 4096 !== 0 || c.uncompressedOffset >= kMaxUncompressedOffset) {
      throw new BuildError(`chunk ${i}: uncompressed offset 0x${c.uncompressedOffset.toString(16)} cannot be encoded`);
    }
    if (c.compressedOffset >= kMaxCompressedOffset) {
      throw new BuildError(`chunk ${i}: compressed offset 0x${c.compressedOffset.toString(16)} exceeds 40 bits`);
    }
    for (const size of [c.uncompressedSize, c.compressedSize]) {
      if (size < 1 || size > kMaxSize) throw new BuildError(`chunk ${i}: size ${size} out of range`);
    }
    const u = BigInt(c.uncompressedSize - 1);
    const cs = BigInt(c.compressedSize - 1);
    const uncomp = (BigInt(c.uncompressedOffset) & 0x0fff_ffff_f000n) | (((u >> 20n) & 0xfn) << 8n) | ((u & 0xfffffn) << 44n);
    const comp = BigInt(c.compressedOffset) | (((cs >> 20n) & 0xfn) << 40n) | ((cs & 0xfffffn) << 44n);
    out.writeBigUInt64LE(uncomp, i * kChunkInfoV1Size);
    out.writeBigUInt64LE(comp, i * kChunkInfoV1Size + 8);
  });
  return out;
}

export interface BlobMetaHeader {
  features: number;
  ciCompressor: number;
  ciEntries: number;
  ciOffset: number;
  ciCompressedSize: number;
  ciUncompressedSize: number;
}

/** BlobCompressionContextHeader (4096 B): magic at both ends, no zran/batch contexts. */
export function encodeBlobMetaHeader(h: BlobMetaHeader): Buffer {
  const out = Buffer.alloc(kBlobMetaHeaderSize);
  out.writeUInt32LE(kBlobMetaMagic, 0);
  out.writeUInt32LE(h.features >>> 0, 4);
  out.writeUInt32LE(h.ciCompressor, 8);
  out.writeUInt32LE(h.ciEntries, 12);
  out.writeBigUInt64LE(BigInt(h.ciOffset), 16);
  out.writeBigUInt64LE(BigInt(h.ciCompressedSize), 24);
  out.writeBigUInt64LE(BigInt(h.ciUncompressedSize), 32);
  out.writeUInt32LE(kBlobMetaMagic, kBlobMetaHeaderSize - 4);
  return out;
}

export interface TocEntry {
  name: string;
  /** RAFS compressor enum of the stored bytes (only none/lz4_block/zstd are representable). */
  compressor: number;
  /** sha256 of the uncompressed content. */
  digest: Buffer;
  compressedOffset: number;
  compressedSize: number;
  uncompressedSize: number;
}

function tocFlags(compressor: number): number {
  const name = compressorFromEnum(compressor);
  const flags = name === undefined ? undefined : compressorToTocFlags(name);
  if (flags === undefined) throw new BuildError(`compressor ${compressor} cannot be recorded in a blob TOC`);
  return flags;
}

export function encodeToc(entries: readonly TocEntry[]): Buffer {
  const out = Buffer.alloc(entries.length * kTocEntrySize);
  entries.forEach((e, i) => {
    const off = i * kTocEntrySize;
    const name = Buffer.from(e.name, 'latin1');
    if (name.length > 16) throw new BuildError(`TOC entry name ${e.name} is longer than 16 bytes`);
    out.writeUInt32LE(tocFlags(e.compressor), off);
    name.copy(out, off + 8);
    e.digest.copy(out, off + 24, 0, 32);
    out.writeBigUInt64LE(BigInt(e.compressedOffset), off + 56);
    out.writeBigUInt64LE(BigInt(e.compressedSize), off + 64);
    out.writeBigUInt64LE(BigInt(e.uncompressedSize), off + 72);
  });
  return out;
}

/** Right-aligned zero-padded octal into `len - 1` bytes, last byte NUL (the tar crate's form). */
function writeOctal(buf: Buffer, off: number, len: number, value: number): void {
  const s = value.toString(8).padStart(len - 1, '0');
  buf.write(s.slice(-(len - 1)), off, 'latin1');
  buf[off + len - 1] = 0;
}

/**
 * The GNU tar header upstream writes *after* each blob section ("ustar  " magic, zero
 * mode/uid/gid, octal-zero mtime, regular file type, checksum set so Go's tar reader accepts it).
 */
export function gnuTarHeader(name: string, size: number): Buffer {
  const h = Buffer.alloc(kTarHeaderSize);
  const nameBytes = Buffer.from(name, 'latin1');
  if (nameBytes.length > 100) throw new BuildError(`tar header name ${name} is too long`);
  nameBytes.copy(h, 0);
  if (size < 0o77777777777) {
    writeOctal(h, 124, 12, size);
  } else {
    // Base-256 for sizes beyond 8 GiB: marker bit, then the big-endian value.
    h[124] = 0x80;
    let v = BigInt(size);
    for (let i = 135; i > 124; i--) {
      h[i] = Number(v & 0xffn);
      v >>= 8n;
    }
  }
  writeOctal(h, 136, 12, 0);
  h[156] = 0x30; // '0': regular file
  h.write('ustar  ', 257, 'latin1');
  h[264] = 0;
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  writeOctal(h, 148, 8, sum);
  return h;
}
