/** Test helper: a RAFS image of one file, built under `work` (blobs/ and boot), for tests that only need something to serve. */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { createImage, defaultBuildOptions } from '../../src/rafs/builder/index.js';

export async function oneFileImage(work: string, name: string, content: string): Promise<{ boot: string; blobs: string }> {
  const src = join(work, 'src');
  const blobs = join(work, 'blobs');
  mkdirSync(src);
  mkdirSync(blobs);
  writeFileSync(join(src, name), content);
  const r = await createImage({ ...defaultBuildOptions(src), blobDir: blobs, bootstrapPath: join(work, 'boot') });
  return { boot: r.bootstrapPath ?? join(work, 'boot'), blobs };
}
