/**
 * Prefetch test helpers: a small image built by our nydus-image (incompressible files, small
 * chunks so files span several), opened the way the daemon opens one (config text -> settings ->
 * StorageService -> reader -> blob meta), with a spy on the backend that records every request
 * (offset, length, priority, time) and can hold requests.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after } from 'node:test';

import { parseConfigText } from '../../src/config/index.js';
import type { RafsImage } from '../../src/rafs/index.js';
import { openBootstrap } from '../../src/rafs/index.js';
import { createImage, defaultBuildOptions } from '../../src/rafs/builder/index.js';
import type { ImageStorage, ReadOptions } from '../../src/storage/index.js';
import { StorageService, storageSettings } from '../../src/storage/index.js';
import { supplyBlobMeta } from '../../src/storage/image-meta.js';
import { ImagePrefetch } from '../../src/storage/prefetch/index.js';
import type { Logger } from '../../src/util/logger.js';
import { nullLogger } from '../../src/util/logger.js';
import { chunkBytes } from './storage-fixtures.js';

/** A fresh directory per call, under one temp root removed after the test file. */
export function tempDirs(prefix: string): () => string {
  const root = mkdtempSync(join(tmpdir(), prefix));
  after(() => rmSync(root, { recursive: true, force: true }));
  let seq = 0;
  return () => {
    const d = join(root, `d${seq++}`);
    mkdirSync(d);
    return d;
  };
}

/** A logger that keeps its warnings (and drops everything else). */
export function warningLogger(): { log: Logger; warnings: string[] } {
  const warnings: string[] = [];
  return { log: Object.assign(nullLogger(), { warn: (m: string) => void warnings.push(m) }), warnings };
}

export interface TestImage {
  boot: string;
  blobDir: string;
  src: string;
  /** In-image path -> content. */
  files: Map<string, Buffer>;
}

export interface ImageSpec {
  fsVersion?: 5 | 6;
  chunkSize?: number;
  /** In-image path -> size (incompressible bytes). */
  files: Record<string, number>;
  /** `--prefetch-policy fs` with these patterns. */
  prefetchTable?: string[];
}

export async function buildTestImage(dir: string, spec: ImageSpec): Promise<TestImage> {
  const src = join(dir, 'src');
  const blobDir = join(dir, 'blobs');
  mkdirSync(src, { recursive: true });
  mkdirSync(blobDir, { recursive: true });
  const files = new Map<string, Buffer>();
  let seed = 1;
  for (const [path, size] of Object.entries(spec.files)) {
    const data = chunkBytes(seed++ * 7919, size, false);
    mkdirSync(dirname(join(src, path)), { recursive: true });
    writeFileSync(join(src, path), data);
    files.set(path, data);
  }
  const boot = join(dir, 'image.boot');
  await createImage({
    ...defaultBuildOptions(src),
    fsVersion: spec.fsVersion ?? 6,
    chunkSize: spec.chunkSize ?? 0x10000,
    blobDir,
    bootstrapPath: boot,
    ...(spec.prefetchTable ? { prefetchPolicy: 'fs' as const, prefetchPatterns: spec.prefetchTable.map((p) => Buffer.from(p)) } : {}),
  });
  return { boot, blobDir, src, files };
}

export interface BackendRequest {
  offset: number;
  length: number;
  priority: 'ondemand' | 'prefetch';
  /** performance.now() when the request was issued. */
  at: number;
}

export interface OpenedImage {
  service: StorageService;
  image: RafsImage;
  storage: ImageStorage;
  /** Data requests to the backend (blob meta reads included). */
  requests: BackendRequest[];
  /** Holds every later request until release() (for ordering tests). */
  hold(): void;
  release(): void;
  chunksOf(path: string): ReturnType<RafsImage['chunks']>;
  close(): Promise<void>;
}

/**
 * `config` is a nydusd configuration (v1 or v2 object) as a user writes it; its backend and cache
 * sections are the caller's. The spy sits on the raw backend, below retries: what the server sees.
 */
export async function openImage(img: TestImage, config: Record<string, unknown>): Promise<OpenedImage> {
  const loaded = parseConfigText(JSON.stringify(config), 'test config');
  const settings = storageSettings(loaded.config, loaded.origin);
  const service = await StorageService.create(settings, nullLogger());
  const requests: BackendRequest[] = [];
  const raw = service.backend.raw;
  const tryRead = raw.tryRead.bind(raw);
  let gate: Promise<void> | undefined;
  let open: (() => void) | undefined;
  raw.tryRead = async (blobId: string, offset: number, length: number, signal?: AbortSignal, opts?: ReadOptions): Promise<Buffer> => {
    requests.push({ offset, length, priority: opts?.priority ?? 'ondemand', at: performance.now() });
    if (gate) await gate;
    return tryRead(blobId, offset, length, signal, opts);
  };
  // A local backend's on-demand ranges are read by the native fill from the blob file: the request
  // is "sent" when the cache asks where the range is (prefetch still goes through tryRead).
  const fileRange = raw.fileRange?.bind(raw);
  if (fileRange) {
    raw.fileRange = async (blobId: string, offset: number, length: number) => {
      requests.push({ offset, length, priority: 'ondemand', at: performance.now() });
      if (gate) await gate;
      return fileRange(blobId, offset, length);
    };
  }
  const image = openBootstrap(img.boot);
  const storage = await service.openImage(image.blobs);
  const cache = service.settings.cache;
  await supplyBlobMeta(image, storage, service.backend, {
    validate: service.settings.validate,
    workDir: cache.kind === 'blobcache' ? cache.workDir : undefined,
    log: nullLogger(),
  });
  // The blob meta reads of opening are not what the tests look at.
  requests.length = 0;
  const lookup = (path: string): number => {
    let ref = image.super.rootRef;
    for (const name of path.split('/').filter(Boolean)) {
      const next = image.lookup(ref, Buffer.from(name));
      if (next === undefined) throw new Error(`${path}: not in the image`);
      ref = next;
    }
    return ref;
  };
  return {
    service,
    image,
    storage,
    requests,
    hold: () => {
      gate = new Promise((r) => (open = r));
    },
    release: () => {
      gate = undefined;
      open?.();
    },
    chunksOf: (path) => image.chunks(lookup(path)),
    close: async () => {
      open?.();
      await service.close();
      image.close();
    },
  };
}

/** A v2 configuration over localfs with a blob cache, plus the given rafs/cache prefetch sections. */
export function localConfig(img: TestImage, cacheDir: string, extra: { prefetch?: Record<string, unknown>; cachePrefetch?: Record<string, unknown>; backend?: Record<string, unknown> } = {}): Record<string, unknown> {
  return {
    version: 2,
    backend: { type: 'localfs', localfs: { dir: img.blobDir, ...extra.backend } },
    cache: { type: 'blobcache', filecache: { work_dir: cacheDir }, ...(extra.cachePrefetch ? { prefetch: extra.cachePrefetch } : {}) },
    rafs: { ...(extra.prefetch ? { prefetch: extra.prefetch } : {}) },
  };
}

/** ImagePrefetch.start for an opened image, as the daemon calls it. */
export function startPrefetch(o: OpenedImage, opts: { files?: string[]; log?: Logger; demand?: boolean } = {}): ImagePrefetch {
  return ImagePrefetch.start({
    image: o.image,
    storage: o.storage,
    settings: o.service.settings,
    ...(opts.demand === false ? {} : { demand: o.service.demand }),
    ...(opts.files ? { files: opts.files } : {}),
    log: opts.log ?? nullLogger(),
  });
}
