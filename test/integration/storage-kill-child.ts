/**
 * Child process of storage-kill.test: fills a blob cache from a localfs blob, several chunks
 * at a time, printing "filled <index>" as each chunk this process filled becomes ready (also those
 * amplification or readahead filled before a worker got to them), until it is killed.
 * argv: <spec.json> (blobsDir, workDir, info, chunks with hex digests, validate)
 */
import { readFileSync } from 'node:fs';

import { CachedBlob, StorageService } from '../../src/storage/index.js';
import type { BlobInfo, ChunkInfo } from '../../src/storage/index.js';

interface Spec {
  blobsDir: string;
  workDir: string;
  info: BlobInfo;
  chunks: (Omit<ChunkInfo, 'digest'> & { digest: string })[];
  /** digest_validate: the native fill also checks each chunk's digest. */
  validate: boolean;
}

const spec = JSON.parse(readFileSync(process.argv[2] ?? '', 'utf8')) as Spec;
const chunks: ChunkInfo[] = spec.chunks.map((c) => ({ ...c, digest: Buffer.from(c.digest, 'hex') }));
const service = await StorageService.create({
  backend: { type: 'localfs', config: { dir: spec.blobsDir, blob_file: '', alt_dirs: [] } },
  backendKey: 'backend.localfs',
  cache: { kind: 'blobcache', workDir: spec.workDir, workDirKey: 'work_dir' },
  validate: spec.validate,
  batchSize: 0,
});
const image = await service.openImage([spec.info]);
const source = image.blob(0);
if (!(source instanceof CachedBlob)) throw new Error('expected a blobcache blob');
const blob: CachedBlob = source;
// Ready before this process started: a previous run filled them.
const readyAtStart = new Set(chunks.filter((c) => blob.isReady(c.chunkIndex)).map((c) => c.chunkIndex));
let next = 0;
async function worker(): Promise<void> {
  while (next < chunks.length) {
    const c = chunks[next++] as ChunkInfo;
    // Only chunks this process fills are reported. Readahead runs ahead of the workers (the blob
    // has a CI), so a chunk may be ready by this process's own fill before a worker asks for it.
    if (blob.isReady(c.chunkIndex)) {
      if (!readyAtStart.has(c.chunkIndex)) process.stdout.write(`filled ${c.chunkIndex}\n`);
      continue;
    }
    await image.ensureReady([c]);
    process.stdout.write(`filled ${c.chunkIndex}\n`);
  }
}
await Promise.all([worker(), worker(), worker(), worker()]);
process.stdout.write('done\n');
await service.close();
