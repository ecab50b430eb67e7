/**
 * Errno for FUSE handlers, in one place: the errno numbers by name (`kErrno`, from the running
 * system), cheap shared `FuseErrno` values to return, and the mapping from whatever a handler
 * throws to the errno the kernel gets.
 */
import { constants } from 'node:os';

import { nativeAbi } from '../native/index.js';
import { NydusError } from '../util/errors.js';
import { FuseErrno } from './types.js';

/** errno numbers by name (kErrno.ENOENT, kErrno.EIO, ...), as the running system defines them. */
export const kErrno = constants.errno;

const kCache = new Map<number, FuseErrno>();

/** True when `n` is an errno a FUSE reply can carry (1 .. the kernel's maximum). */
export function isReplyErrno(n: number): boolean {
  return Number.isInteger(n) && n >= 1 && n <= nativeAbi().limits.maxErrno;
}

/**
 * A shared, frozen FuseErrno for `errno` (a number, or a name such as 'ENOENT'). Returning it is
 * cheaper than throwing: a negative lookup in a hot directory allocates nothing.
 */
export function fuseErrno(errno: number | string): FuseErrno {
  const n = typeof errno === 'string' ? kErrno[errno as keyof typeof kErrno] : errno;
  if (n === undefined || !isReplyErrno(n)) {
    throw new NydusError('ERR_FUSE_ERRNO', `${String(errno)} is not an errno in 1..${String(nativeAbi().limits.maxErrno)}`);
  }
  let e = kCache.get(n);
  if (e === undefined) {
    e = Object.freeze(new FuseErrno(n));
    kCache.set(n, e);
  }
  return e;
}

/**
 * The errno for a thrown value, and whether it was expected (a filesystem answer) rather than
 * an internal failure that must be logged.
 */
export function errnoOf(err: unknown): { errno: number; expected: boolean } {
  if (err instanceof FuseErrno) return validErrno(err.errno);
  if (typeof err === 'object' && err !== null) {
    const e = err as { errno?: unknown; code?: unknown };
    if (typeof e.errno === 'number' && Number.isInteger(e.errno) && e.errno !== 0) {
      // NydusError carries a positive errno; Node's SystemError a negative one.
      return validErrno(Math.abs(e.errno));
    }
    if (typeof e.code === 'string' && /^E[A-Z0-9]+$/.test(e.code)) {
      const n = kErrno[e.code as keyof typeof kErrno];
      if (n !== undefined) return validErrno(n);
    }
  }
  return { errno: kErrno.EIO, expected: false };
}

function validErrno(n: number): { errno: number; expected: boolean } {
  return isReplyErrno(n) ? { errno: n, expected: true } : { errno: kErrno.EIO, expected: false };
}

/** A FUSE session or transport failure raised to the caller (mount, stop, arguments). */
export class FuseSessionError extends NydusError {
  constructor(code: string, message: string, options: { cause?: unknown; errno?: number } = {}) {
    super(code, message, options);
    this.name = 'FuseSessionError';
  }
}
