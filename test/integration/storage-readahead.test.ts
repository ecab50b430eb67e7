/**
 * The seed's readahead log over every kind of backend: localfs, the registry (Debian's
 * docker-registry), http-proxy (nginx, whose access log also shows the Range of every request
 * it served), s3 (s3rver) and localdisk (a GPT disk image made by sgdisk). OSS has no server
 * here that checks its signatures (s3rver refuses them); it shares the HTTP layer and the cache
 * code with s3, and the log lives in the cache, above every backend. A first start records the
 * ranges it reads; a second start with an emptied cache issues prefetch requests for exactly
 * those ranges, and records nothing.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { accessLogPath, decodeAccessLog } from '../../src/storage/prefetch/index.js';
import type { TestImage } from '../helpers/prefetch-image.js';
import { buildTestImage, openImage, startPrefetch as start, tempDirs, warningLogger } from '../helpers/prefetch-image.js';
import type { Child, Nginx, Registry } from '../helpers/remote-servers.js';
import { freePort, makeGptDisk, pushBlob, putObject, startChild, startNginx, startRegistry, which } from '../helpers/remote-servers.js';

const fresh = tempDirs('nydus-readahead-');

const kFiles = { '/a': 300_000, '/b': 400_000, '/c': 250_000, '/d': 500_000, '/e': 90_000 };

type Backend = { type: string; [k: string]: unknown };

function config(backend: Backend, cacheDir: string, readahead: Record<string, unknown>): Record<string, unknown> {
  const { type, ...cfg } = backend;
  return {
    version: 2,
    backend: { type, [type]: { ...cfg, ...readahead } },
    cache: { type: 'blobcache', filecache: { work_dir: cacheDir } },
    // Small on-demand windows (amplify_io), so a start makes several requests.
    rafs: { batch_size: 131072 },
  };
}

/** Empties the blob cache (data and chunk map) and keeps the readahead logs, as a fresh node would. */
function dropCacheData(cacheDir: string): void {
  for (const f of readdirSync(cacheDir)) if (/\.blob\.data(\.chunk_map)?$/.test(f)) rmSync(join(cacheDir, f));
}

const key = (r: { offset: number; length: number }): string => `${r.offset}+${r.length}`;

/**
 * The bytes a list of ranges covers, as sorted disjoint [start, end) pairs; throws when ranges
 * overlap (a byte fetched twice).
 */
function bytesOf(ranges: readonly { offset: number; length: number }[]): [number, number][] {
  const out: [number, number][] = [];
  for (const r of [...ranges].sort((a, b) => a.offset - b.offset)) {
    const last = out[out.length - 1];
    if (last && r.offset < last[1]) throw new Error(`ranges overlap at ${r.offset}`);
    if (last && r.offset === last[1]) last[1] += r.length;
    else out.push([r.offset, r.offset + r.length]);
  }
  return out;
}

async function recordThenReplay(img: TestImage, backend: Backend, served?: () => Promise<string[]>): Promise<void> {
  const cacheDir = fresh();
  const cfg = config(backend, cacheDir, { readahead: true, readahead_sec: 0 });
  const blobId = readdirSync(img.blobDir).find((f) => /^[0-9a-f]{64}$/.test(f)) as string;
  const logPath = accessLogPath(cacheDir, blobId);

  const first = await openImage(img, cfg);
  let recorded: { offset: number; length: number }[];
  try {
    const p = start(first);
    await p.whenIdle();
    assert.equal(first.requests.length, 0, 'no log yet: nothing to prefetch');
    // What this "container start" reads: all of /b, the head of /d, a middle part of /a.
    assert.ok((await first.storage.read(first.chunksOf('/b'), 0, 400_000)).equals(img.files.get('/b') as Buffer));
    assert.ok((await first.storage.read(first.chunksOf('/d'), 0, 100_000)).equals((img.files.get('/d') as Buffer).subarray(0, 100_000)));
    assert.ok((await first.storage.read(first.chunksOf('/a'), 150_000, 10_000)).equals((img.files.get('/a') as Buffer).subarray(150_000, 160_000)));
    assert.ok(first.requests.length >= 3);
    assert.ok(first.requests.every((r) => r.priority === 'ondemand'));
    await p.stop();
    recorded = decodeAccessLog(readFileSync(logPath), 0, logPath);
    assert.deepEqual(recorded, first.requests.map((r) => ({ offset: r.offset, length: r.length })), 'the log holds the reads, in order');
  } finally {
    await first.close();
  }
  const logBytes = readFileSync(logPath);
  const before = served ? (await served()).length : 0;
  dropCacheData(cacheDir);

  const second = await openImage(img, cfg);
  try {
    const p = start(second);
    await p.whenIdle();
    assert.ok(second.requests.every((r) => r.priority === 'prefetch'));
    assert.deepEqual(bytesOf(second.requests), bytesOf(recorded), 'prefetch requests cover exactly the recorded ranges');
    assert.ok(second.requests.length <= recorded.length);
    assert.equal(p.stats().prefetch_requests_count, second.requests.length);
    if (served) {
      const lines = (await served()).slice(before);
      const ranges = lines.map((l) => /bytes=(\d+)-(\d+)/.exec(l)).map((m) => ({ offset: Number(m?.[1]), length: Number(m?.[2]) - Number(m?.[1]) + 1 }));
      assert.deepEqual(ranges.map(key).sort(), second.requests.map(key).sort(), 'the server saw those requests');
    }
    // The replayed start reads from the cache: no request at all.
    const n = second.requests.length;
    assert.ok((await second.storage.read(second.chunksOf('/b'), 0, 400_000)).equals(img.files.get('/b') as Buffer));
    assert.equal(second.requests.length, n);
    // Reads after the replay are not recorded: the log stays as it was.
    await second.storage.read(second.chunksOf('/e'), 0, 90_000);
    await p.stop();
    assert.ok(readFileSync(logPath).equals(logBytes));
  } finally {
    await second.close();
  }
}

describe('readahead log', () => {
  let img: TestImage;
  before(async () => {
    img = await buildTestImage(fresh(), { files: kFiles });
  });

  test('localfs: a second start prefetches exactly the ranges the first one read', async () => {
    await recordThenReplay(img, { type: 'localfs', dir: img.blobDir });
  });

  test('the window closes after readahead_sec and writes the log without a stop; a damaged log is recorded anew', async () => {
    const cacheDir = fresh();
    const cfg = config({ type: 'localfs', dir: img.blobDir }, cacheDir, { readahead: true, readahead_sec: 1 });
    const blobId = readdirSync(img.blobDir).find((f) => /^[0-9a-f]{64}$/.test(f)) as string;
    const logPath = accessLogPath(cacheDir, blobId);
    writeFileSync(logPath, Buffer.alloc(17));
    const o = await openImage(img, cfg);
    const { log, warnings } = warningLogger();
    try {
      const p = start(o, { log });
      await p.whenIdle();
      assert.match(warnings.join('\n'), /17 bytes is not a whole number of 16-byte entries; recording a new one/);
      await o.storage.read(o.chunksOf('/c'), 0, 250_000);
      const inWindow = o.requests.length;
      for (let i = 0; i < 300 && readFileSync(logPath).length === 17; i++) await new Promise((r) => setTimeout(r, 10));
      const logged = decodeAccessLog(readFileSync(logPath), 0, logPath);
      assert.equal(logged.length, inWindow, 'the log was written when the window closed');
      await o.storage.read(o.chunksOf('/e'), 0, 90_000);
      assert.ok(o.requests.length > inWindow);
      await p.stop();
      assert.equal(decodeAccessLog(readFileSync(logPath), 0, logPath).length, inWindow, 'reads after the window are not recorded');
    } finally {
      await o.close();
    }
  });

  test('without a blob cache, readahead is off with a warning', async () => {
    const cfg = config({ type: 'localfs', dir: img.blobDir }, fresh(), { readahead: true });
    cfg['cache'] = { type: 'dummycache' };
    const o = await openImage(img, cfg);
    const { log, warnings } = warningLogger();
    try {
      const p = start(o, { log });
      await o.storage.read(o.chunksOf('/c'), 0, 1000);
      await p.stop();
      assert.match(warnings.join('\n'), /readahead needs a blob cache/);
    } finally {
      await o.close();
    }
  });

  const kTools: [string, string][] = [['docker-registry', 'docker-registry'], ['nginx', 'nginx'], ['sgdisk', 'gdisk']];
  const missing = kTools.find(([bin]) => !which(bin));
  const remoteSkip = missing ? `${missing[0]} not found (apt-get install ${missing[1]})` : false;
  describe('remote backends', { skip: remoteSkip }, () => {
    let reg: Registry;
    let ng: Nginx;
    let s3: Child;
    let port = 0;
    let work = '';
    const blobIds = (): string[] => readdirSync(img.blobDir).filter((x) => /^[0-9a-f]{64}$/.test(x));
    before(async () => {
      work = fresh();
      reg = await startRegistry(join(work, 'registry'), join(work, 'store'), { kind: 'none' });
      for (const f of blobIds()) await pushBlob(reg.url, 'ra/test', f, readFileSync(join(img.blobDir, f)));
      port = await freePort();
      ng = await startNginx(
        join(work, 'nginx'),
        `server { listen 127.0.0.1:${port}; location /blobs/ { alias ${img.blobDir}/; } location = /ping { return 200; } }`,
        { url: `http://127.0.0.1:${port}/ping` },
        '$request $status $http_range',
      );
    });
    after(async () => {
      await ng?.stop();
      await reg?.stop();
      await s3?.stop();
    });

    test('registry (docker-registry): the second start prefetches exactly the recorded ranges', async () => {
      await recordThenReplay(img, { type: 'registry', scheme: 'http', host: `127.0.0.1:${reg.port}`, repo: 'ra/test' });
    });

    test('http-proxy (nginx): the server sees exactly the recorded ranges again', async () => {
      const served = async (): Promise<string[]> => (await ng.settled()).filter((l) => l.startsWith('GET /blobs/') && l.includes('bytes='));
      await recordThenReplay(img, { type: 'http-proxy', addr: `http://127.0.0.1:${port}`, path: '/blobs' }, served);
      assert.ok(existsSync(join(ng.dir, 'access.log')));
    });

    test('s3 (s3rver): the second start prefetches exactly the recorded ranges', async () => {
      s3 = await startChild({ mode: 's3rver', directory: join(work, 's3rver'), buckets: ['nydus'] }, join(work, 's3rver.log'));
      for (const id of blobIds()) await putObject(s3.port, 'nydus', `layers/${id}`, readFileSync(join(img.blobDir, id)));
      const cfg = { scheme: 'http', endpoint: `127.0.0.1:${s3.port}`, region: 'us-east-1', bucket_name: 'nydus', object_prefix: 'layers/', access_key_id: 'S3RVER', access_key_secret: 'S3RVER' };
      await recordThenReplay(img, { type: 's3', ...cfg });
    });

    test('localdisk (GPT image): the second start prefetches exactly the recorded ranges', async () => {
      const disk = join(work, 'disk.img');
      makeGptDisk(disk, blobIds().map((id) => ({ id, file: join(img.blobDir, id) })));
      await recordThenReplay(img, { type: 'localdisk', device_path: disk });
    });
  });
});
