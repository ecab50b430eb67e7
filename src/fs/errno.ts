/** errno values the filesystem layer answers with (positive; the session negates them). */
import { constants } from 'node:os';

const e = constants.errno;

export const kErrno = {
  EPERM: e.EPERM,
  ENOENT: e.ENOENT,
  EIO: e.EIO,
  EBADF: e.EBADF,
  EACCES: e.EACCES,
  ENOTDIR: e.ENOTDIR,
  EISDIR: e.EISDIR,
  EINVAL: e.EINVAL,
  ERANGE: e.ERANGE,
  ENOSYS: e.ENOSYS,
  ENODATA: e.ENODATA,
  ENXIO: e.ENXIO,
  EROFS: e.EROFS,
  EOVERFLOW: e.EOVERFLOW,
  ENAMETOOLONG: e.ENAMETOOLONG,
} as const;

/** A filesystem operation's failure: the errno goes back to the kernel/guest. */
export class FsErrno extends Error {
  readonly errno: number;
  constructor(errno: number, message?: string) {
    super(message ?? `errno ${errno}`);
    this.errno = errno;
  }
}
