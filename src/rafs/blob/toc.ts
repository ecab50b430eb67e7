/**
 * The TOC ("table of contents") at a blob's tail (reference/rafs-format.md §2.2 "Native data blob
 * layout"): 128-byte entries followed by a GNU tar header named `rafs.blob.toc`. Found from the
 * last bytes of the blob alone, or at a location (offset, size, sha256) taken from the bootstrap's
 * blob table. Entries locate `blob.meta`, `blob.meta.header`, `blob.digest` and `image.boot`.
 */
import { cString, isZero, readU64 } from '../layout/bytes.js';
import { kTarHeaderSize, kTocEntrySize, kTocNames } from '../layout/constants.js';
import { kTarHdr, kTocEntry, kTocMaxSize, kTocMinSize } from '../layout/blob-offsets.js';
import { corrupt, kRafsErrorCodes, RafsError } from '../layout/errors.js';
import { compressorFromTocFlags, decodeChunk, sha256, type CompressorName } from './codec.js';

export interface TarHeader {
  name: string;
  size: number;
  /** '0' (or NUL) for a regular file. */
  typeflag: string;
}

/** Where the TOC content and its tar header sit in a blob; `digest` = sha256 of those bytes. */
export interface TocLocation {
  offset: number;
  size: number;
  digest?: Buffer | undefined;
}

export interface TocEntry {
  name: string;
  flags: number;
  compressor: CompressorName | undefined;
  /** sha256 of the uncompressed content. */
  digest: Buffer;
  compressedOffset: number;
  compressedSize: number;
  uncompressedSize: number;
}

function parseOctal(field: Buffer, file: string, off: number, what: string): number {
  // GNU base-256 for values that do not fit 11 octal digits.
  if (((field[0] as number) & 0x80) !== 0) {
    let v = 0;
    for (let i = 1; i < field.length; i++) v = v * 256 + (field[i] as number);
    if (((field[0] as number) & 0x7f) !== 0 || !Number.isSafeInteger(v)) throw corrupt(file, what, off, 'base-256 number out of range');
    return v;
  }
  const s = field.toString('latin1').replace(/[\0 ]+$/, '').replace(/^ +/, '');
  if (!/^[0-7]*$/.test(s)) throw corrupt(file, what, off, `not an octal number: ${JSON.stringify(s)}`);
  return s === '' ? 0 : parseInt(s, 8);
}

/** Parses and checks (checksum, magic, size) a 512-byte tar header. */
export function parseTarHeader(hdr: Buffer, file = 'blob', offset = 0): TarHeader {
  const what = 'tar header';
  if (hdr.length !== kTarHeaderSize) throw corrupt(file, what, offset, `needs 512 bytes, got ${hdr.length}`);
  if (!hdr.subarray(kTarHdr.magic, kTarHdr.magic + 5).equals(Buffer.from('ustar'))) {
    throw corrupt(file, what, offset, 'no ustar magic');
  }
  const stored = parseOctal(hdr.subarray(kTarHdr.checksum, kTarHdr.checksum + kTarHdr.checksumLen), file, offset, what);
  let sum = 0;
  for (let i = 0; i < kTarHeaderSize; i++) {
    sum += i >= kTarHdr.checksum && i < kTarHdr.checksum + kTarHdr.checksumLen ? 0x20 : (hdr[i] as number);
  }
  if (sum !== stored) throw corrupt(file, what, offset, `checksum ${stored} != computed ${sum}`);
  return {
    name: cString(hdr.subarray(kTarHdr.name, kTarHdr.name + kTarHdr.nameLen)),
    size: parseOctal(hdr.subarray(kTarHdr.size, kTarHdr.size + kTarHdr.sizeLen), file, offset + kTarHdr.size, what),
    typeflag: String.fromCharCode(hdr[kTarHdr.typeflag] as number),
  };
}

function isRegular(h: TarHeader): boolean {
  return h.typeflag === '0' || h.typeflag === '\0';
}

function checkTocSize(size: number, file: string, offset: number): void {
  if (!Number.isSafeInteger(size) || size < kTocMinSize || size > kTocMaxSize || size % kTocEntrySize !== 0) {
    throw corrupt(file, 'blob TOC location', offset, `size ${size} is not a multiple of 128 within 512..65536`);
  }
}

/**
 * Locates the TOC from the last bytes of a blob (`tail` ends at `blobSize`; 512 bytes suffice,
 * the conventional read is the last min(4096, size rounded down to 128)).
 */
export function findToc(tail: Buffer, blobSize: number, file = 'blob'): TocLocation {
  if (tail.length < kTarHeaderSize || tail.length > blobSize) {
    throw corrupt(file, 'blob TOC', Math.max(0, blobSize - tail.length), `a ${blobSize}-byte blob has no room for a TOC tar header`);
  }
  const hdrOff = blobSize - kTarHeaderSize;
  const h = parseTarHeader(tail.subarray(tail.length - kTarHeaderSize), file, hdrOff);
  if (h.name !== kTocNames.toc || !isRegular(h)) {
    throw corrupt(file, 'blob TOC', hdrOff, `last tar header is ${JSON.stringify(h.name)}, not a regular ${kTocNames.toc}`);
  }
  const size = h.size + kTarHeaderSize;
  checkTocSize(size, file, hdrOff);
  if (size > blobSize) throw corrupt(file, 'blob TOC', hdrOff, `TOC of ${h.size} bytes exceeds the ${blobSize}-byte blob`);
  return { offset: blobSize - size, size };
}

/** sha256 over the TOC content and its tar header, as stored in `blob_toc_digest`. */
export function tocDigest(buf: Buffer): Buffer {
  return sha256(buf);
}

/**
 * Parses the TOC from `buf` = the blob bytes `[location.offset, +location.size)`. With a
 * `location.digest` (non-zero) the bytes must hash to it.
 */
export function parseToc(buf: Buffer, location?: TocLocation, file = 'blob'): TocEntry[] {
  const base = location?.offset ?? 0;
  checkTocSize(buf.length, file, base);
  if (location && location.size !== buf.length) {
    throw corrupt(file, 'blob TOC', base, `buffer of ${buf.length} bytes for a ${location.size}-byte location`);
  }
  const hdrOff = buf.length - kTarHeaderSize;
  const h = parseTarHeader(buf.subarray(hdrOff), file, base + hdrOff);
  if (h.name !== kTocNames.toc || !isRegular(h)) {
    throw corrupt(file, 'blob TOC', base + hdrOff, `tar header is ${JSON.stringify(h.name)}, not a regular ${kTocNames.toc}`);
  }
  // The location must frame exactly the TOC content and its header (blob_toc_size = TOC + 512).
  if (h.size !== hdrOff) {
    throw corrupt(file, 'blob TOC', base + hdrOff, `tar header says ${h.size} bytes of TOC, the location holds ${hdrOff}`);
  }
  const start = 0;
  if (location?.digest && !isZero(location.digest)) {
    const got = tocDigest(buf.subarray(start));
    if (!got.equals(location.digest)) {
      throw new RafsError(
        kRafsErrorCodes.DIGEST_MISMATCH,
        `${file}: blob TOC at offset ${base + start}: sha256 ${got.toString('hex')} != expected ${location.digest.toString('hex')}`,
      );
    }
  }
  const entries: TocEntry[] = [];
  for (let off = start; off < hdrOff; off += kTocEntrySize) {
    const flags = buf.readUInt32LE(off + kTocEntry.flags);
    const what = 'TOC entry';
    entries.push({
      name: cString(buf.subarray(off + kTocEntry.name, off + kTocEntry.name + kTocEntry.nameLen)),
      flags,
      compressor: compressorFromTocFlags(flags),
      digest: Buffer.from(buf.subarray(off + kTocEntry.digest, off + kTocEntry.digest + 32)),
      compressedOffset: readU64(buf, off + kTocEntry.compressedOffset, file, what),
      compressedSize: readU64(buf, off + kTocEntry.compressedSize, file, what),
      uncompressedSize: readU64(buf, off + kTocEntry.uncompressedSize, file, what),
    });
  }
  return entries;
}

export function getTocEntry(entries: readonly TocEntry[], name: string): TocEntry | undefined {
  return entries.find((e) => e.name === name);
}

/** Reads `len` bytes at `off` of the blob. */
export type BlobRead = (off: number, len: number) => Buffer;

/** Extracts one TOC entry's content (decompressed, sha256-checked when the entry has a digest). */
export function extractTocEntry(read: BlobRead, entry: TocEntry, blobSize: number, file = 'blob', maxSize = 0x7fff_ffff): Buffer {
  const what = `TOC entry ${JSON.stringify(entry.name)}`;
  if (entry.compressor === undefined) throw corrupt(file, what, entry.compressedOffset, `unknown compression flags 0x${entry.flags.toString(16)}`);
  if (entry.compressedOffset + entry.compressedSize > blobSize) {
    throw corrupt(file, what, entry.compressedOffset, `${entry.compressedSize} bytes run past the ${blobSize}-byte blob`);
  }
  if (entry.uncompressedSize > maxSize) throw corrupt(file, what, entry.compressedOffset, `size ${entry.uncompressedSize} exceeds ${maxSize}`);
  const raw = read(entry.compressedOffset, entry.compressedSize);
  const data = decodeChunk(entry.compressor, raw, entry.uncompressedSize, `${file}: ${what}`);
  if (!isZero(entry.digest)) {
    const got = sha256(data);
    if (!got.equals(entry.digest)) {
      throw new RafsError(kRafsErrorCodes.DIGEST_MISMATCH, `${file}: ${what} at offset ${entry.compressedOffset}: sha256 ${got.toString('hex')} != ${entry.digest.toString('hex')}`);
    }
  }
  return data;
}
