/**
 * Test helper: a synthetic RAFS v5 image (rafs-synth-v5.ts) opened with its storage (the blob in
 * `dir` behind a localfs backend, no cache), ready for a RafsFilesystem; close() releases it.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

import type { RafsImage } from '../../src/rafs/index.js';
import { openBootstrapBuffer } from '../../src/rafs/index.js';
import type { ImageStorage } from '../../src/storage/index.js';
import { StorageService, storageSettings } from '../../src/storage/index.js';
import { nullLogger } from '../../src/util/logger.js';
import type { SynthV5Options } from './rafs-synth-v5.js';
import { buildV5 } from './rafs-synth-v5.js';
import type { SynthNode } from './rafs-synth-v6.js';

export interface OpenedSynthImage {
  image: RafsImage;
  storage: ImageStorage;
  close(): Promise<void>;
}

export async function openSynthV5(dir: string, tree: SynthNode, opts: SynthV5Options & { blobId: string }): Promise<OpenedSynthImage> {
  const { bootstrap, blob } = buildV5(tree, opts);
  const image = openBootstrapBuffer(bootstrap, 'synthetic-v5');
  writeFileSync(join(dir, opts.blobId), blob.blob);
  const service = await StorageService.create(
    storageSettings({ version: 2, id: '', backend: { type: 'localfs', localfs: { dir, blob_file: '', alt_dirs: [] } }, external_backends: [], cache: { type: 'dummycache' } } as never),
    nullLogger(),
  );
  const storage = await service.openImage(image.blobs);
  return {
    image,
    storage,
    async close(): Promise<void> {
      await storage.close();
      await service.close();
    },
  };
}
