/**
 * RAFS v6 superblock, extended superblock, device table and blob table (rafs-format.md §2.1),
 * parsed and validated once at open. Everything else in a v6 image is decoded on demand by
 * `V6Image`.
 */
import { type ByteView, cString } from '../layout/bytes.js';
import {
  kBlobFeatures,
  kMaxChunkSize,
  kMaxChunksPerBlob,
  kMinChunkSize,
  kSuperFlags,
  kV5ChunkInfoSize,
  kV6BlobEntrySize,
  kV6BlockSize,
  kV6DeviceSlotSize,
  kV6DevtSlotOff,
  kV6FeatureCompatRafsV6,
  kV6FeatureIncompatRequired,
  kV6Magic,
  kV6SuperBlockOffset,
  kV6SuperBlockSize,
  kV6SuperBlockExtSize,
  kChunkInfoV1Size,
  kChunkInfoV2Size,
} from '../layout/constants.js';
import { kV6Blob, kV6Device, kV6Sb, kV6SbExt } from '../layout/v6-offsets.js';
import { compressorFromEnum, digesterFromEnum } from '../blob/codec.js';
import { algorithmsFromFlags } from './common.js';
import type { BlobInfo, CompressorName, DigesterName } from './types.js';

export interface V6Meta {
  blockSize: number;
  blkszbits: number;
  rootNid: number;
  inos: number;
  buildTime: number;
  /** Byte offset of nid 0 (s_meta_blkaddr × block size). */
  metaBase: number;
  flags: number;
  compressor: CompressorName;
  digester: DigesterName;
  chunkSize: number;
  chunkTableOffset: number;
  chunkTableSize: number;
  prefetchTableOffset: number;
  prefetchTableSize: number;
  blobs: BlobInfo[];
}

const kSb = kV6SuperBlockOffset;
const kExt = kV6SbExt.offset;
const kBlobMaxCompressed = 2 ** 40;
const kBlobMaxUncompressed = 2 ** 44;
/** Low 16 feature bits a stored blob may carry (reference: only 0x0fff). */
const kBlobFeaturesLowValid = 0x0fff;

function overlaps(a: [number, number], b: [number, number]): boolean {
  return a[1] > 0 && b[1] > 0 && a[0] < b[0] + b[1] && b[0] < a[0] + a[1];
}

export function isV6(buf: Buffer): boolean {
  return buf.length >= kSb + 4 && buf.readUInt32LE(kSb) === kV6Magic;
}

export function parseV6Super(v: ByteView): V6Meta {
  const sbw = 'v6 superblock';
  v.check(0, kSb + kV6SuperBlockSize + kV6SuperBlockExtSize, sbw);
  const fail = (field: number, detail: string): Error => v.fail(sbw, kSb + field, detail);
  if (v.u32(kSb + kV6Sb.magic, sbw) !== kV6Magic) throw fail(kV6Sb.magic, 'bad EROFS magic');
  if (v.u32(kSb + kV6Sb.checksum, sbw) !== 0) throw fail(kV6Sb.checksum, 'checksum must be 0');
  if ((v.u32(kSb + kV6Sb.featureCompat, sbw) & kV6FeatureCompatRafsV6) === 0) throw fail(kV6Sb.featureCompat, 'RAFS_V6 compat bit missing');
  const blkszbits = v.u8(kSb + kV6Sb.blkszbits, sbw);
  if (blkszbits !== 12 && blkszbits !== 9) throw fail(kV6Sb.blkszbits, `block size bits ${blkszbits} (want 12, or 9 for tarfs)`);
  const blockSize = 1 << blkszbits;
  if (v.u8(kSb + kV6Sb.extslots, sbw) !== 0) throw fail(kV6Sb.extslots, 'extended slots must be 0');
  const inos = v.u64(kSb + kV6Sb.inos, sbw);
  if (inos === 0) throw fail(kV6Sb.inos, 'inode count is 0');
  if (v.u32(kSb + kV6Sb.xattrBlkaddr, sbw) !== 0) throw fail(kV6Sb.xattrBlkaddr, 'shared xattrs are not used by RAFS');
  if (v.u32(kSb + kV6Sb.featureIncompat, sbw) !== kV6FeatureIncompatRequired) throw fail(kV6Sb.featureIncompat, 'incompat features must be CHUNKED_FILE|DEVICE_TABLE');
  if (v.u16(kSb + kV6Sb.u, sbw) !== 0) throw fail(kV6Sb.u, 's_u must be 0');
  const extraDevices = v.u16(kSb + kV6Sb.extraDevices, sbw);
  if (v.u16(kSb + kV6Sb.devtSlotoff, sbw) !== kV6DevtSlotOff) throw fail(kV6Sb.devtSlotoff, 'device table slot offset must be 11');
  if (v.length < kV6BlockSize || v.length % blockSize !== 0) {
    throw v.fail(sbw, 0, `bootstrap size ${v.length} is not a multiple of the ${blockSize}-byte block (min 4096)`);
  }
  const metaBase = v.u32(kSb + kV6Sb.metaBlkaddr, sbw) * blockSize;
  if (metaBase > v.length) throw fail(kV6Sb.metaBlkaddr, `meta area at ${metaBase} is past the end`);

  const extw = 'v6 extended superblock';
  const flagsLo = v.u32(kExt + kV6SbExt.flags, extw);
  const { compressor, digester } = algorithmsFromFlags(flagsLo, v.file, kExt);
  const tarfs = (flagsLo & kSuperFlags.TARFS_MODE) !== 0;
  if (blkszbits === 9 && !tarfs) throw fail(kV6Sb.blkszbits, '512-byte blocks are only valid in tarfs mode');
  const chunkSize = v.u32(kExt + kV6SbExt.chunkSize, extw);
  if ((chunkSize & (chunkSize - 1)) !== 0 || chunkSize < kMinChunkSize || chunkSize > kMaxChunkSize) {
    throw v.fail(extw, kExt + kV6SbExt.chunkSize, `chunk size ${chunkSize} is not a power of two in 4 KiB..16 MiB`);
  }
  const devtOff = kV6DevtSlotOff * kV6DeviceSlotSize;
  const devtEnd = devtOff + extraDevices * kV6DeviceSlotSize;
  v.check(devtOff, extraDevices * kV6DeviceSlotSize, 'v6 device table');

  const blobOff = v.u64(kExt + kV6SbExt.blobTableOffset, extw);
  const blobSize = v.u32(kExt + kV6SbExt.blobTableSize, extw);
  if (blobSize % kV6BlobEntrySize !== 0 || (blobSize > 0 && (blobOff % kV6BlockSize !== 0 || blobOff < kV6BlockSize || blobOff < devtEnd))) {
    throw v.fail(extw, kExt + kV6SbExt.blobTableOffset, `blob table ${blobOff}+${blobSize} is misplaced`);
  }
  v.check(blobOff, blobSize, 'v6 blob table');
  const ctOff = v.u64(kExt + kV6SbExt.chunkTableOffset, extw);
  const ctSize = v.u64(kExt + kV6SbExt.chunkTableSize, extw);
  if (ctSize > 0) {
    if (ctSize % kV5ChunkInfoSize !== 0 || ctOff % kV6BlockSize !== 0 || ctOff < kV6BlockSize || ctOff < devtEnd) {
      throw v.fail(extw, kExt + kV6SbExt.chunkTableOffset, `chunk table ${ctOff}+${ctSize} is misplaced`);
    }
    v.check(ctOff, ctSize, 'v6 chunk table');
  }
  let pfOff = v.u64(kExt + kV6SbExt.prefetchTableOffset, extw);
  let pfSize = v.u32(kExt + kV6SbExt.prefetchTableSize, extw);
  if (pfOff === 0) pfSize = 0; // legacy empty images: offset 0 with a nonzero size
  if (pfSize > 0) {
    if (pfSize % 4 !== 0 || pfOff < kV6BlockSize || pfOff < devtEnd) throw v.fail(extw, kExt + kV6SbExt.prefetchTableOffset, `prefetch table ${pfOff}+${pfSize} is misplaced`);
    v.check(pfOff, pfSize, 'v6 prefetch table');
  } else {
    pfOff = 0;
  }
  const ranges: [number, number][] = [
    [blobOff, blobSize],
    [ctOff, ctSize],
    [pfOff, pfSize],
  ];
  for (let i = 0; i < ranges.length; i++) {
    for (let j = i + 1; j < ranges.length; j++) {
      if (overlaps(ranges[i] as [number, number], ranges[j] as [number, number])) throw v.fail(extw, kExt, 'blob, chunk and prefetch tables overlap');
    }
  }

  const blobs: BlobInfo[] = [];
  for (let i = 0; i < blobSize / kV6BlobEntrySize; i++) {
    blobs.push(parseBlobEntry(v, blobOff + i * kV6BlobEntrySize, i, chunkSize, tarfs));
  }
  if (extraDevices > blobs.length) throw fail(kV6Sb.extraDevices, `${extraDevices} devices but ${blobs.length} blobs`);
  for (let i = 0; i < extraDevices; i++) {
    const slot = devtOff + i * kV6DeviceSlotSize;
    const blob = blobs[i] as BlobInfo;
    blob.deviceBlocks = v.u32(slot + kV6Device.blocks, 'v6 device slot');
    blob.mappedBlkaddr = v.u32(slot + kV6Device.mappedBlkaddr, 'v6 device slot');
  }
  return {
    blockSize,
    blkszbits,
    rootNid: v.u16(kSb + kV6Sb.rootNid, sbw),
    inos,
    buildTime: v.u64(kSb + kV6Sb.buildTime, sbw),
    metaBase,
    flags: flagsLo,
    compressor,
    digester,
    chunkSize,
    chunkTableOffset: ctSize > 0 ? ctOff : 0,
    chunkTableSize: ctSize,
    prefetchTableOffset: pfOff,
    prefetchTableSize: pfSize,
    blobs,
  };
}

function parseBlobEntry(v: ByteView, off: number, index: number, chunkSize: number, tarfs: boolean): BlobInfo {
  const w = 'v6 blob table entry';
  const bad = (field: number, detail: string): Error => v.fail(w, off + field, `blob ${index}: ${detail}`);
  const blobId = cString(v.sub(off + kV6Blob.blobId, kV6Blob.blobIdLen, w));
  if (blobId.length === 0 || !/^[\x21-\x7e]+$/.test(blobId)) throw bad(kV6Blob.blobId, 'blob id is empty or not printable ASCII');
  if (v.u32(off + kV6Blob.blobIndex, w) !== index) throw bad(kV6Blob.blobIndex, 'blob_index differs from the entry position');
  if (v.u32(off + kV6Blob.chunkSize, w) !== chunkSize) throw bad(kV6Blob.chunkSize, 'chunk size differs from the superblock');
  const chunkCount = v.u32(off + kV6Blob.chunkCount, w);
  if (chunkCount > kMaxChunksPerBlob) throw bad(kV6Blob.chunkCount, `${chunkCount} chunks exceeds 2^24`);
  const compressor = compressorFromEnum(v.u32(off + kV6Blob.compressionAlgo, w));
  const metaCiCompressor = compressorFromEnum(v.u32(off + kV6Blob.ciCompressor, w));
  const digester = digesterFromEnum(v.u32(off + kV6Blob.digestAlgo, w));
  if (!compressor || !metaCiCompressor || !digester || v.u32(off + kV6Blob.cipherAlgo, w) > 3) throw bad(kV6Blob.compressionAlgo, 'unknown algorithm');
  const features = v.u32(off + kV6Blob.features, w);
  if ((features & 0xffff & ~kBlobFeaturesLowValid) !== 0 || (features & kBlobFeatures.V5_NO_EXT_BLOB_TABLE) !== 0) {
    throw bad(kV6Blob.features, `invalid feature bits 0x${features.toString(16)}`);
  }
  const aligned = (features & kBlobFeatures.ALIGNED) !== 0;
  if (aligned === tarfs) throw bad(kV6Blob.features, tarfs ? 'ALIGNED is forbidden in tarfs mode' : 'ALIGNED is required');
  const compressedSize = v.u64(off + kV6Blob.compressedSize, w);
  const uncompressedSize = v.u64(off + kV6Blob.uncompressedSize, w);
  if (compressedSize > kBlobMaxCompressed || uncompressedSize > kBlobMaxUncompressed) throw bad(kV6Blob.compressedSize, 'blob size out of range');
  const ciOffset = v.u64(off + kV6Blob.ciOffset, w);
  const ciC = v.u64(off + kV6Blob.ciCompressedSize, w);
  const ciU = v.u64(off + kV6Blob.ciUncompressedSize, w);
  if (ciC > ciU) throw bad(kV6Blob.ciCompressedSize, `CI compressed size ${ciC} > uncompressed ${ciU}`);
  const v2 = (features & kBlobFeatures.CHUNK_INFO_V2) !== 0;
  const special = (features & (kBlobFeatures.BATCH | kBlobFeatures.ZRAN | kBlobFeatures.ENCRYPTED)) !== 0;
  if (special && !v2) throw bad(kV6Blob.features, 'BATCH/ZRAN/ENCRYPTED need CHUNK_INFO_V2');
  const ok = v2 ? (special ? ciU >= chunkCount * kChunkInfoV2Size : ciU === chunkCount * kChunkInfoV2Size) : tarfs || ciU === chunkCount * kChunkInfoV1Size;
  if (!ok) throw bad(kV6Blob.ciUncompressedSize, `CI size ${ciU} does not match ${chunkCount} ${v2 ? 'v2' : 'v1'} entries`);
  return {
    index,
    blobId,
    chunkCount,
    chunkSize,
    compressor,
    digester,
    features,
    compressedSize,
    uncompressedSize,
    metaCiCompressor,
    metaCiOffset: ciOffset,
    metaCiCompressedSize: ciC,
    metaCiUncompressedSize: ciU,
    tocSize: v.u32(off + kV6Blob.blobTocSize, w),
    tocDigest: Buffer.from(v.sub(off + kV6Blob.blobTocDigest, 32, w)),
  };
}
