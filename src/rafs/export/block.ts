/**
 * `nydus-image export --block`: turns a RAFS v6 image into one raw EROFS disk, the layout of
 * upstream's service/src/block_device.rs — the bootstrap at block 0, then each blob's
 * uncompressed data (every chunk at its uncompressed offset, zeros elsewhere) at the blob's
 * device-table `mapped_blkaddr`. Linux (6.7+, "flat" multi-device EROFS) mounts such a disk
 * directly; with `verity`, a dm-verity hash tree is appended and its options printed.
 *
 * The chunk list comes from the bootstrap's chunk info table (every unique chunk of every blob,
 * which upstream always writes), so only the superblocks, device slots, blob table and that
 * table are parsed here, each bounds-checked.
 */
import { closeSync, ftruncateSync, openSync, readSync, statSync, writeSync } from 'node:fs';
import { basename, join } from 'node:path';

import { decompress } from '../../native/index.js';
import { NotSupportedError, NydusError } from '../../util/errors.js';
import { sha256 } from '../blob/codec.js';
import {
  kChunkFlags,
  kV5ChunkInfoSize,
  kV6BlobEntrySize,
  kV6BlockSize,
  kV6DeviceSlotSize,
  kV6Magic,
  kV6SuperBlockOffset,
  kV6SuperBlockSize,
} from '../layout/constants.js';
import { buildVerityTree, kZeroPageDigest, verityOptions } from './verity.js';

export class ExportError extends NydusError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super('ERR_EXPORT', message, options);
    this.name = 'ExportError';
  }
}

export interface ExportOptions {
  bootstrap: string;
  blobDir: string;
  /** Default: `<blobDir>/<bootstrap file name>.disk`, as upstream. */
  output?: string;
  verity: boolean;
}

export interface ExportResult {
  output: string;
  /** Data blocks of the disk (bootstrap + holes + blobs), excluding the verity tree. */
  blocks: number;
  verity?: { rootDigest: string; hashOffset: number; options: string };
}

interface DeviceInfo {
  id: string;
  blocks: number;
  mappedBlkaddr: number;
  compressor: number;
  uncompressedSize: number;
}

interface ChunkRow {
  blobIndex: number;
  compressed: boolean;
  compressedSize: number;
  uncompressedSize: number;
  compressedOffset: number;
  uncompressedOffset: number;
}

function u64(buf: Buffer, off: number, what: string): number {
  const v = buf.readBigUInt64LE(off);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new ExportError(`bootstrap: ${what} 0x${v.toString(16)} is out of range`);
  return Number(v);
}

export function parseV6Devices(boot: Buffer): { devices: DeviceInfo[]; chunks: ChunkRow[]; metaBlocks: number } {
  if (boot.length < kV6BlockSize || boot.readUInt32LE(kV6SuperBlockOffset) !== kV6Magic) {
    throw new ExportError('bootstrap is not a RAFS v6 (EROFS) image; only v6 can be exported as a block device');
  }
  const blkszbits = boot.readUInt8(kV6SuperBlockOffset + 12);
  if (blkszbits !== 12) throw new NotSupportedError(`exporting tarfs images (${1 << blkszbits}-byte blocks)`);
  const ndev = boot.readUInt16LE(kV6SuperBlockOffset + 86);
  const slotOff = boot.readUInt16LE(kV6SuperBlockOffset + 88) * kV6DeviceSlotSize;
  const ext = kV6SuperBlockOffset + kV6SuperBlockSize;
  const blobTableOffset = u64(boot, ext + 8, 'blob table offset');
  const blobTableSize = boot.readUInt32LE(ext + 16);
  const chunkTableOffset = u64(boot, ext + 24, 'chunk table offset');
  const chunkTableSize = u64(boot, ext + 32, 'chunk table size');
  if (slotOff + ndev * kV6DeviceSlotSize > boot.length) throw new ExportError('bootstrap: device table is out of bounds');
  if (blobTableOffset + blobTableSize > boot.length || blobTableSize < ndev * kV6BlobEntrySize) {
    throw new ExportError('bootstrap: blob table is out of bounds or shorter than the device table');
  }
  if (chunkTableOffset + chunkTableSize > boot.length || chunkTableSize % kV5ChunkInfoSize !== 0) {
    throw new ExportError('bootstrap: chunk info table is out of bounds');
  }
  const devices: DeviceInfo[] = [];
  for (let i = 0; i < ndev; i++) {
    const s = slotOff + i * kV6DeviceSlotSize;
    const b = blobTableOffset + i * kV6BlobEntrySize;
    const rawId = boot.subarray(s, s + 64);
    const nul = rawId.indexOf(0);
    devices.push({
      id: rawId.subarray(0, nul < 0 ? 64 : nul).toString('utf8'),
      blocks: boot.readUInt32LE(s + 64),
      mappedBlkaddr: boot.readUInt32LE(s + 68),
      compressor: boot.readUInt32LE(b + 76),
      uncompressedSize: u64(boot, b + 96, `blob ${i} uncompressed size`),
    });
  }
  const chunks: ChunkRow[] = [];
  for (let off = chunkTableOffset; off < chunkTableOffset + chunkTableSize; off += kV5ChunkInfoSize) {
    chunks.push({
      blobIndex: boot.readUInt32LE(off + 32),
      compressed: (boot.readUInt32LE(off + 36) & kChunkFlags.COMPRESSED) !== 0,
      compressedSize: boot.readUInt32LE(off + 40),
      uncompressedSize: boot.readUInt32LE(off + 44),
      compressedOffset: u64(boot, off + 48, 'chunk compressed offset'),
      uncompressedOffset: u64(boot, off + 56, 'chunk uncompressed offset'),
    });
  }
  return { devices, chunks, metaBlocks: Math.floor(boot.length / kV6BlockSize) };
}

function preadExact(fd: number, len: number, pos: number, what: string): Buffer {
  const buf = Buffer.allocUnsafe(len);
  let got = 0;
  while (got < len) {
    const n = readSync(fd, buf, got, len - got, pos + got);
    if (n === 0) throw new ExportError(`${what}: unexpected end of file at offset ${pos + got}`);
    got += n;
  }
  return buf;
}

function pwriteAll(fd: number, data: Buffer, pos: number): void {
  let off = 0;
  while (off < data.length) off += writeSync(fd, data, off, data.length - off, pos + off);
}

/** Writes the blob's uncompressed data (what a complete `.blob.data` cache file holds). */
function fillBlob(out: number, base: number, dev: DeviceInfo, rows: ChunkRow[], blobDir: string): void {
  const path = join(blobDir, dev.id);
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (err) {
    throw new ExportError(`cannot open blob ${dev.id} in ${blobDir}: ${(err as Error).message}`, { cause: err });
  }
  try {
    const size = statSync(path).size;
    for (const c of rows) {
      if (c.compressedOffset + c.compressedSize > size) {
        throw new ExportError(`blob ${dev.id}: chunk at 0x${c.compressedOffset.toString(16)} extends past the end of the blob`);
      }
      if (c.uncompressedOffset + c.uncompressedSize > dev.blocks * kV6BlockSize) {
        throw new ExportError(`blob ${dev.id}: chunk at uncompressed 0x${c.uncompressedOffset.toString(16)} is outside the device's ${dev.blocks} blocks`);
      }
      const raw = preadExact(fd, c.compressedSize, c.compressedOffset, `blob ${dev.id}`);
      let data = raw;
      if (c.compressed) {
        if (dev.compressor === 2) throw new NotSupportedError('exporting gzip-compressed blobs');
        data = decompress(dev.compressor, raw, c.uncompressedSize);
      } else if (raw.length !== c.uncompressedSize) {
        throw new ExportError(`blob ${dev.id}: uncompressed chunk size mismatch at 0x${c.compressedOffset.toString(16)}`);
      }
      pwriteAll(out, data, base + c.uncompressedOffset);
    }
  } finally {
    closeSync(fd);
  }
}

export function exportBlockImage(opts: ExportOptions): ExportResult {
  let boot: Buffer;
  let bootSize: number;
  const bfd = openSync(opts.bootstrap, 'r');
  try {
    bootSize = statSync(opts.bootstrap).size;
    if (bootSize > 2 ** 31) throw new ExportError('bootstrap is larger than 2 GiB');
    boot = preadExact(bfd, bootSize, 0, 'bootstrap');
  } finally {
    closeSync(bfd);
  }
  const { devices, chunks, metaBlocks } = parseV6Devices(boot);
  let pos = metaBlocks;
  for (const [i, d] of devices.entries()) {
    if (d.mappedBlkaddr === 0) throw new ExportError(`blob ${d.id}: mapped block address is zero; the image cannot be exported as one disk`);
    if (d.mappedBlkaddr < pos) throw new ExportError(`blob ${d.id}: mapped block address ${d.mappedBlkaddr} overlaps the previous device`);
    if (d.uncompressedSize / kV6BlockSize > d.blocks) throw new ExportError(`blob ${i}: blob table and device table disagree on its size`);
    pos = d.mappedBlkaddr + d.blocks;
  }
  const blocks = pos;
  const output = opts.output ?? join(opts.blobDir, `${basename(opts.bootstrap)}.disk`);
  const out = openSync(output, 'w+', 0o644);
  try {
    // ftruncate gives the holes (and the blobs' untouched alignment gaps) as zeros, sparsely.
    ftruncateSync(out, blocks * kV6BlockSize);
    pwriteAll(out, boot.subarray(0, metaBlocks * kV6BlockSize), 0);
    devices.forEach((d, i) => {
      fillBlob(out, d.mappedBlkaddr * kV6BlockSize, d, chunks.filter((c) => c.blobIndex === i), opts.blobDir);
    });
    const result: ExportResult = { output, blocks };
    if (opts.verity) {
      const digests = hashPages(out, blocks);
      const { tree, rootDigest } = buildVerityTree(digests);
      const hashOffset = blocks * kV6BlockSize;
      if (tree.length > 0) pwriteAll(out, tree, hashOffset);
      result.verity = { rootDigest: rootDigest.toString('hex'), hashOffset, options: verityOptions(blocks, hashOffset, rootDigest) };
    }
    return result;
  } finally {
    closeSync(out);
  }
}

function hashPages(fd: number, blocks: number): Buffer {
  const digests = Buffer.alloc(blocks * 32);
  const buf = Buffer.allocUnsafe(1 << 20);
  const zero = Buffer.alloc(kV6BlockSize);
  for (let b = 0; b < blocks; ) {
    const n = Math.min(buf.length / kV6BlockSize, blocks - b);
    const chunk = buf.subarray(0, n * kV6BlockSize);
    let got = 0;
    while (got < chunk.length) {
      const r = readSync(fd, chunk, got, chunk.length - got, b * kV6BlockSize + got);
      if (r === 0) throw new ExportError('disk image shrank while hashing it');
      got += r;
    }
    for (let i = 0; i < n; i++) {
      const page = chunk.subarray(i * kV6BlockSize, (i + 1) * kV6BlockSize);
      const d = page.equals(zero) ? kZeroPageDigest : sha256(page);
      d.copy(digests, (b + i) * 32);
    }
    b += n;
  }
  return digests;
}
