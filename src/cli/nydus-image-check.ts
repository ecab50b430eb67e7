/** `nydus-image check`: placeholder until its implementation lands. */
import { NotSupportedError } from '../util/errors.js';

export function run(_argv: string[]): Promise<number> {
  return Promise.reject(new NotSupportedError('nydus-image check'));
}
