/**
 * Fetches the guest kernel and builds the base initramfs (both cached outside the repository),
 * skipping whatever is already there. `scripts/test.mjs` runs this before integration and e2e
 * tests; the demo calls prepareGuest() itself.
 *
 *   node dist/qemu/prepare.js
 */
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

import { NydusError } from '../src/util/errors.js';
import { ensureBaseInitramfs } from './initramfs.js';
import type { GuestKernel } from './kernel.js';
import { ensureKernel } from './kernel.js';

export interface PreparedGuest {
  kernel: GuestKernel;
  initramfs: string;
}

export function prepareGuest(): PreparedGuest {
  const kernel = ensureKernel();
  const base = ensureBaseInitramfs(kernel);
  return { kernel, initramfs: base.path };
}

function isMain(): boolean {
  try {
    return process.argv[1] !== undefined && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url);
  } catch {
    return false;
  }
}

if (isMain()) {
  try {
    const g = prepareGuest();
    process.stderr.write(`guest: ready: kernel ${g.kernel.release}, initramfs ${g.initramfs}\n`);
  } catch (err) {
    process.stderr.write(`guest: ${NydusError.is(err) ? err.message : String(err)}\n`);
    process.exit(1);
  }
}
