/**
 * Pieces both readers share: superblock flag decoding, DT_* types and the pre-order walk
 * with directory-cycle detection.
 */
import { algorithmsInSuperFlags } from '../blob/codec.js';
import { corrupt, kRafsErrorCodes, RafsError } from '../layout/errors.js';
import { isDirMode, S_IFMT } from '../../util/mode-bits.js';
import type { CompressorName, DigesterName, InodeAttr, InodeRef, RafsImage } from './types.js';

export const DT_UNKNOWN = 0;
export const DT_FIFO = 1;
export const DT_CHR = 2;
export const DT_DIR = 4;
export const DT_BLK = 6;
export const DT_REG = 8;
export const DT_LNK = 10;
export const DT_SOCK = 12;

/** DT_* from st_mode, as readdir reports it. */
export function dtFromMode(mode: number): number {
  return (mode & S_IFMT) >>> 12;
}

/** Exactly one compression flag and exactly one hash flag must be set. */
export function algorithmsFromFlags(flags: number, file: string, off: number): { compressor: CompressorName; digester: DigesterName } {
  const { compressors: comp, digesters: dig } = algorithmsInSuperFlags(flags);
  if (comp.length !== 1 || dig.length !== 1) {
    throw corrupt(file, 'superblock flags', off, `0x${flags.toString(16)} must set exactly one compression and one hash flag`);
  }
  return { compressor: comp[0] as CompressorName, digester: dig[0] as DigesterName };
}

export function notDir(file: string, ref: InodeRef): RafsError {
  return new RafsError(kRafsErrorCodes.NOT_DIR, `${file}: inode ${ref} is not a directory`);
}

export function wrongType(file: string, ref: InodeRef, want: string): RafsError {
  return new RafsError(kRafsErrorCodes.WRONG_TYPE, `${file}: inode ${ref} is not ${want}`);
}

/**
 * Pre-order walk ("/" first, children in directory order). A directory reached twice means a
 * cycle (RAFS has no directory hardlinks), so the walk stops with CORRUPT instead of looping.
 * Iterative so deep trees cannot overflow the JS stack.
 */
export function walkImage(img: RafsImage, file: string, visit: (path: string, ref: InodeRef, attr: InodeAttr) => void): void {
  const root = img.super.rootRef;
  const seenDirs = new Set<InodeRef>();
  const stack: { path: string; ref: InodeRef }[] = [{ path: '/', ref: root }];
  while (stack.length > 0) {
    const { path, ref } = stack.pop() as { path: string; ref: InodeRef };
    const attr = img.getAttr(ref);
    const dir = isDirMode(attr.mode);
    if (dir && seenDirs.has(ref)) throw corrupt(file, 'directory tree', 0, `directory ${ref} (${path}) is reachable twice: cycle`);
    visit(path, ref, attr);
    if (!dir) continue;
    seenDirs.add(ref);
    const children: { path: string; ref: InodeRef }[] = [];
    const prefix = path === '/' ? '/' : `${path}/`;
    img.readDir(ref, 0, (e) => {
      if (!isDotOrDotDot(e.name)) children.push({ path: prefix + e.name.toString('utf8'), ref: e.ref });
      return true;
    });
    for (let i = children.length - 1; i >= 0; i--) stack.push(children[i] as { path: string; ref: InodeRef });
  }
}

/** The "." and ".." entries every directory lists first. */
export function isDotOrDotDot(name: Buffer): boolean {
  return (name.length === 1 && name[0] === 0x2e) || (name.length === 2 && name[0] === 0x2e && name[1] === 0x2e);
}

/**
 * Bytewise comparison of buf[s, e) with `name` (sign of entry − name). A JS loop beats the
 * native Buffer#compare call for short names (< 256 bytes).
 */
export function cmpName(buf: Buffer, s: number, e: number, name: Buffer): number {
  const n = Math.min(e - s, name.length);
  for (let i = 0; i < n; i++) {
    const d = (buf[s + i] as number) - (name[i] as number);
    if (d !== 0) return d;
  }
  return e - s - name.length;
}
