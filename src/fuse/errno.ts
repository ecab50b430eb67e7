/**
 * Errno handling for FUSE handlers: cheap `FuseErrno` values to return, and the mapping from
 * whatever a handler throws to the errno the kernel gets.
 */
import { constants } from 'node:os';

import { NydusError } from '../util/errors.js';
import { FuseErrno } from './fuse-types.js';

export { FuseErrno } from './fuse-types.js';

/** errno numbers by name (ENOENT, EIO, ...), from the running system. */
export const Errno: Readonly<Record<string, number>> = constants.errno;

const kEIO = constants.errno.EIO;
const kCache = new Map<number, FuseErrno>();

/**
 * A shared, frozen FuseErrno for `errno` (a number, or a name such as 'ENOENT'). Returning it is
 * cheaper than throwing: a negative lookup in a hot directory allocates nothing.
 */
export function fuseErrno(errno: number | string): FuseErrno {
  const n = typeof errno === 'string' ? constants.errno[errno as keyof typeof constants.errno] : errno;
  if (n === undefined || !Number.isInteger(n) || n < 1 || n > 511) {
    throw new NydusError('ERR_FUSE_ERRNO', `${String(errno)} is not an errno in 1..511`);
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
      const n = constants.errno[e.code as keyof typeof constants.errno];
      if (n !== undefined) return validErrno(n);
    }
  }
  return { errno: kEIO, expected: false };
}

function validErrno(n: number): { errno: number; expected: boolean } {
  return n >= 1 && n <= 511 ? { errno: n, expected: true } : { errno: kEIO, expected: false };
}

/** A FUSE session or transport failure raised to the caller (mount, stop, arguments). */
export class FuseSessionError extends NydusError {
  constructor(code: string, message: string, options: { cause?: unknown; errno?: number } = {}) {
    super(code, message, options);
    this.name = 'FuseSessionError';
  }
}
