// Shared imports for the RAFS tests.
import { NydusError } from '../../src/util/errors.js';

export * from '../../src/rafs/index.js';

export function NydusErrorIs(e: unknown, code: string): boolean {
  return NydusError.is(e, code);
}
