/**
 * What prefetch needs from a RAFS image, through the reader's public interface only: file lists
 * (paths, the bootstrap's prefetch table) turned into chunk lists in priority order, and a
 * per-blob index of every chunk by compressed offset (prefetch_all, readahead replay).
 *
 * The image is untrusted: directory cycles end the walk, a file whose chunks cannot be read is
 * skipped with a warning, and nothing here throws on bad metadata.
 */
import { posix } from 'node:path';

import type { ChunkInfo, InodeRef, RafsImage } from '../../rafs/index.js';
import { isDotOrDotDot } from '../../rafs/index.js';
import { isDirMode, isRegMode } from '../../util/mode-bits.js';
import type { Logger } from '../../util/logger.js';
import { StorageError } from '../contract/errors.js';

/** Upstream refuses a prefetch list with a relative path (service/src/fs_service.rs). */
export function checkPrefetchList(paths: readonly string[]): void {
  for (const p of paths) {
    if (typeof p !== 'string' || !p.startsWith('/')) {
      throw new StorageError('ERR_PREFETCH_LIST', `invalid prefetch file list: ${JSON.stringify(p)} is not an absolute path`, { errno: 22 });
    }
  }
}

/** The inode at an absolute path (components resolved from the root; ".." stops at the root). */
export function resolvePath(image: RafsImage, path: string): InodeRef | undefined {
  let ref = image.super.rootRef;
  for (const name of posix.normalize(path).split('/')) {
    if (name === '') continue;
    if (!image.isDir(ref)) return undefined;
    const next = image.lookup(ref, Buffer.from(name));
    if (next === undefined) return undefined;
    ref = next;
  }
  return ref;
}

/**
 * Chunk lists of the regular files at `refs`, directories expanded (pre-order, directory order),
 * in the order given; a file reached twice (hardlinks, overlapping entries) counts once.
 */
export function filesChunks(image: RafsImage, refs: readonly InodeRef[], log: Logger): { chunks: ChunkInfo[]; files: number } {
  const seenFiles = new Set<number>();
  const seenDirs = new Set<InodeRef>();
  const chunks: ChunkInfo[] = [];
  let files = 0;
  const visitFile = (ref: InodeRef, ino: number): void => {
    if (seenFiles.has(ino)) return;
    seenFiles.add(ino);
    try {
      const cs = image.chunks(ref);
      for (const c of cs) chunks.push(c);
      files++;
    } catch (err) {
      log.warn(`prefetch: inode ${ref}: cannot read its chunks, skipped: ${(err as Error).message}`);
    }
  };
  for (const top of refs) {
    const stack: InodeRef[] = [top];
    while (stack.length > 0) {
      const ref = stack.pop() as InodeRef;
      try {
        const attr = image.getAttr(ref);
        if (isRegMode(attr.mode)) {
          if (attr.size > 0) visitFile(ref, attr.ino);
          continue;
        }
        if (!isDirMode(attr.mode) || seenDirs.has(ref)) continue;
        seenDirs.add(ref);
        const children: InodeRef[] = [];
        image.readDir(ref, 0, (e) => {
          if (!isDotOrDotDot(e.name)) children.push(e.ref);
          return true;
        });
        for (let i = children.length - 1; i >= 0; i--) stack.push(children[i] as InodeRef);
      } catch (err) {
        log.warn(`prefetch: inode ${ref}: ${(err as Error).message}; skipped`);
      }
    }
  }
  return { chunks, files };
}

/**
 * Every chunk of every blob, per blob index sorted by compressed offset with unique chunk
 * indexes: the index prefetch_all plans over and readahead replay looks ranges up in.
 */
export function chunkIndex(image: RafsImage, log: Logger): Map<number, ChunkInfo[]> {
  const { chunks } = filesChunks(image, [image.super.rootRef], log);
  const byBlob = new Map<number, Map<number, ChunkInfo>>();
  for (const c of chunks) {
    let m = byBlob.get(c.blobIndex);
    if (!m) {
      m = new Map();
      byBlob.set(c.blobIndex, m);
    }
    if (!m.has(c.chunkIndex)) m.set(c.chunkIndex, c);
  }
  const out = new Map<number, ChunkInfo[]>();
  for (const [blob, m] of byBlob) out.set(blob, [...m.values()].sort((a, b) => a.compressedOffset - b.compressedOffset || a.chunkIndex - b.chunkIndex));
  return out;
}
