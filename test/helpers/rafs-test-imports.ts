// Shared imports for the RAFS tests.
import { NydusError } from '../../src/util/errors.js';

export * from '../../src/rafs/index.js';

export function NydusErrorIs(e: unknown, code: string): boolean {
  return NydusError.is(e, code);
}

/** XORs one byte in place. */
export function flipByte(buf: Buffer, at: number, mask: number): void {
  buf.writeUInt8((buf.readUInt8(at) ^ mask) & 0xff, at);
}
