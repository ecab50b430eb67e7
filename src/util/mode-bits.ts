/**
 * POSIX st_mode file-type bits (stat(2), inode(7)): the same numbers in RAFS inodes, tar
 * headers, FUSE attributes and `lstat` results, so every layer reads them from here.
 */
export const S_IFMT = 0o170000;
export const S_IFSOCK = 0o140000;
export const S_IFLNK = 0o120000;
export const S_IFREG = 0o100000;
export const S_IFBLK = 0o060000;
export const S_IFDIR = 0o040000;
export const S_IFCHR = 0o020000;
export const S_IFIFO = 0o010000;

/** The file-type bits of `mode` (one of the S_IF* values, or something invalid). */
export function fileType(mode: number): number {
  return mode & S_IFMT;
}

export function isDirMode(mode: number): boolean {
  return fileType(mode) === S_IFDIR;
}

export function isRegMode(mode: number): boolean {
  return fileType(mode) === S_IFREG;
}

export function isLnkMode(mode: number): boolean {
  return fileType(mode) === S_IFLNK;
}

/** Character and block devices, FIFOs and sockets: inodes with no data and no children. */
export function isDeviceMode(mode: number): boolean {
  const t = fileType(mode);
  return t === S_IFCHR || t === S_IFBLK || t === S_IFIFO || t === S_IFSOCK;
}

/** Short type names, as `nydus-image inspect` prints them. */
export const kFileTypeNames: Readonly<Record<number, string>> = {
  [S_IFDIR]: 'dir',
  [S_IFREG]: 'file',
  [S_IFLNK]: 'symlink',
  [S_IFCHR]: 'chr',
  [S_IFBLK]: 'blk',
  [S_IFIFO]: 'fifo',
  [S_IFSOCK]: 'sock',
};
