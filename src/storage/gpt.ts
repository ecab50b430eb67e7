/**
 * GUID partition table reader for the `localdisk` backend (UEFI spec, "GPT Disk Layout"; the
 * blob naming from reference/rafs-format.md §3.9): 512-byte sectors, the primary header at
 * LBA 1, its CRC32 and the entry array's CRC32 checked, every used entry bounded by the device.
 *
 * Blob ids as upstream names them: a partition whose type is not Microsoft Basic Data carries
 * the first 32 hex digits of the blob id in its name and the last 32 as its unique GUID (simple
 * form: lower-case hex, no dashes); a legacy Basic Data partition carries a (truncated) blob id
 * in its name alone, and lookups then use the first 32 characters of the id asked for.
 */
import { StorageError } from './contract/errors.js';

export const kSectorSize = 512;
const kSignature = 'EFI PART';
const kMaxEntries = 4096;
/** EBD0A0A2-B9E5-4433-87C0-68B6B72699C7 in its on-disk (mixed-endian) byte order. */
const kBasicDataType = Buffer.from('a2a0d0ebe5b9334487c068b6b72699c7', 'hex');

export interface GptPartition {
  index: number;
  /** Byte range on the device. */
  offset: number;
  length: number;
  name: string;
  /** Unique partition GUID, simple form. */
  guid: string;
  basicData: boolean;
  /** The blob id this partition serves (see the file comment). */
  blobId: string;
}

let crcTable: Uint32Array | undefined;

/** CRC-32 (IEEE 802.3, reflected), as the GPT header and entry array use. */
export function crc32(buf: Uint8Array): number {
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let c = 0xffffffff;
  for (const b of buf) c = (crcTable[(c ^ b) & 0xff] as number) ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** A GUID's 16 on-disk bytes (first three fields little-endian) in simple text form. */
export function guidSimple(b: Buffer): string {
  const le = (s: number, n: number): string => Buffer.from(b.subarray(s, s + n)).reverse().toString('hex');
  return `${le(0, 4)}${le(4, 2)}${le(6, 2)}${b.subarray(8, 16).toString('hex')}`;
}

function u64(b: Buffer, at: number, what: string): number {
  const v = b.readBigUInt64LE(at);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new StorageError('ERR_BACKEND', `GPT: ${what} ${v} is out of range`);
  return Number(v);
}

export type ReadAt = (offset: number, length: number) => Promise<Buffer>;

/** Reads and checks the primary GPT of a device of `capacity` bytes. */
export async function readGpt(readAt: ReadAt, capacity: number, where: string): Promise<GptPartition[]> {
  const bad = (why: string): StorageError => new StorageError('ERR_BACKEND', `${where}: no valid GPT (${why})`);
  if (capacity < 3 * kSectorSize) throw bad('the device is too small');
  const hdr = await readAt(kSectorSize, kSectorSize);
  if (hdr.subarray(0, 8).toString('latin1') !== kSignature) throw bad('no "EFI PART" signature at LBA 1');
  const hdrSize = hdr.readUInt32LE(12);
  if (hdrSize < 92 || hdrSize > kSectorSize) throw bad(`header size ${hdrSize}`);
  const copy = Buffer.from(hdr.subarray(0, hdrSize));
  copy.writeUInt32LE(0, 16);
  if (crc32(copy) !== hdr.readUInt32LE(16)) throw bad('header CRC32 mismatch');
  const entriesLba = u64(hdr, 72, 'partition entry LBA');
  const count = hdr.readUInt32LE(80);
  const entrySize = hdr.readUInt32LE(84);
  if (count > kMaxEntries) throw bad(`${count} partition entries`);
  if (entrySize < 128 || entrySize > 4096 || entrySize % 8 !== 0) throw bad(`partition entry size ${entrySize}`);
  const arrayOffset = entriesLba * kSectorSize;
  const arrayLength = count * entrySize;
  if (entriesLba < 2 || arrayOffset + arrayLength > capacity) throw bad('the partition entry array lies outside the device');
  const entries = await readAt(arrayOffset, arrayLength);
  if (crc32(entries) !== hdr.readUInt32LE(88)) throw bad('partition entry array CRC32 mismatch');
  const out: GptPartition[] = [];
  const seen = new Set<string>();
  for (let i = 0; i < count; i++) {
    const e = entries.subarray(i * entrySize, (i + 1) * entrySize);
    const type = e.subarray(0, 16);
    if (type.every((x) => x === 0)) continue;
    const first = u64(e, 32, `partition ${i + 1} first LBA`);
    const last = u64(e, 40, `partition ${i + 1} last LBA`);
    const offset = first * kSectorSize;
    const length = (last - first + 1) * kSectorSize;
    if (last < first || !Number.isSafeInteger(offset + length) || offset + length > capacity) {
      throw bad(`partition ${i + 1} (LBA ${first}-${last}) lies outside the device`);
    }
    const raw = e.subarray(56, 128);
    let end = 0;
    while (end + 1 < raw.length && (raw[end] !== 0 || raw[end + 1] !== 0)) end += 2;
    const name = raw.subarray(0, end).toString('utf16le');
    const guid = guidSimple(e.subarray(16, 32));
    const basicData = type.equals(kBasicDataType);
    const blobId = basicData ? name : `${name}${guid}`;
    if (name === '') throw bad(`partition ${i + 1} has an empty name (no blob id)`);
    if (seen.has(blobId)) throw bad(`blob ${blobId} appears in two partitions`);
    seen.add(blobId);
    out.push({ index: i + 1, offset, length, name, guid, basicData, blobId });
  }
  return out;
}
