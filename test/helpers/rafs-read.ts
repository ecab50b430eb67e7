/** Test helper: reassembles a file's bytes from its chunks (holes read as zeros). */
import { bufferSource, type BlobSource, readChunkData, type RafsImage } from '../../src/rafs/index.js';

export function readFileBytes(img: RafsImage, ref: number, blobs: (index: number) => BlobSource, verify = true): Buffer {
  const out = Buffer.alloc(img.getAttr(ref).size);
  for (const c of img.chunks(ref)) {
    const src = blobs(c.blobIndex);
    const data = readChunkData((o, l) => src.read(o, l), c, img.blobs[c.blobIndex] as NonNullable<(typeof img.blobs)[number]>, verify);
    data.copy(out, c.fileOffset);
  }
  return out;
}

export function oneBlob(buf: Buffer, name = 'blob'): (index: number) => BlobSource {
  const src = bufferSource(buf, name);
  return () => src;
}

/** Resolves an absolute path with lookup(). */
export function resolvePath(img: RafsImage, path: string): number | undefined {
  let ref: number | undefined = img.super.rootRef;
  for (const part of path.split('/').filter(Boolean)) {
    if (ref === undefined) return undefined;
    ref = img.lookup(ref, Buffer.from(part));
  }
  return ref;
}
