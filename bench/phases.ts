/**
 * The phases besides the warm workloads: machine bounds, start-to-ready, cold reads per
 * compressor, and the 100 000-file image.
 */
import { closeSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import type { ColdImage, Fixture } from './lib/fixture.js';
import { kColdFiles, makeHundredK } from './lib/fixture.js';
import { driverJson, exec, processMemory, progress } from './lib/proc.js';
import type { Row } from './lib/report.js';
import { summarize } from './lib/stats.js';
import type { OursImage } from './lib/servers.js';
import { startOurs, startPeer } from './lib/servers.js';
import type { DriverResult, RawRecord } from './warm.js';

interface BoundJson {
  bound: string;
  mb_per_s: number;
}

export interface Bounds {
  /** pread of the source big file (virtiofsd's), one sample per repetition. */
  preadSourceMBps: number[];
  /** pread of our blob cache data file, one sample per repetition. */
  preadCacheMBps: number[];
  memcpyMBps: number;
  decompressMBps: Record<string, number>;
  codecRatio: Record<string, number>;
  raw: unknown[];
}

/** The blob cache data file of a warm cache folder. */
export function blobDataFile(cacheDir: string): string | undefined {
  const files = readdirSync(cacheDir).filter((f) => f.endsWith('.blob.data'));
  return files.length > 0 ? join(cacheDir, files[0] as string) : undefined;
}

async function bound(raw: unknown[], args: string[], seconds: number): Promise<BoundJson & Record<string, unknown>> {
  const r = await driverJson<BoundJson & Record<string, unknown>>(undefined, ['bounds', ...args, '--seconds', String(seconds)]);
  raw.push(r);
  return r;
}

/** Once per run: memcpy and single-core decompression of the corpus for each codec. */
export async function measureBounds(fx: Fixture, seconds: number): Promise<Bounds> {
  const raw: unknown[] = [];
  progress('bounds: memcpy');
  const mem = await bound(raw, ['memcpy', '--size', '1M', '--span', '256M'], seconds);
  const decompressMBps: Record<string, number> = {};
  const codecRatio: Record<string, number> = {};
  for (const algo of ['none', 'lz4_block', 'zstd']) {
    progress(`bounds: single-core ${algo} decompression of 1 MiB chunks of the corpus`);
    const r = await bound(raw, ['codec', '--file', fx.corpus, '--algo', algo, '--chunk', '1M', '--max', '256M'], seconds);
    decompressMBps[algo] = r.mb_per_s;
    codecRatio[algo] = Number(r['ratio']);
  }
  return { preadSourceMBps: [], preadCacheMBps: [], memcpyMBps: mem.mb_per_s, decompressMBps, codecRatio, raw };
}

/**
 * Page-cache read bandwidth (one copy) of the file each server reads: virtiofsd the source
 * big.bin, ours its blob cache file. Appended to `b`; measured every repetition because it
 * moves with the load of a shared machine as much as the workloads do.
 */
export async function measurePreadBounds(b: Bounds, sourceFile: string, cacheFile: string, seconds: number): Promise<void> {
  const src = await bound(b.raw, ['pread', '--file', sourceFile, '--size', '1M'], seconds);
  const cache = await bound(b.raw, ['pread', '--file', cacheFile, '--size', '1M'], seconds);
  b.preadSourceMBps.push(src.mb_per_s);
  b.preadCacheMBps.push(cache.mb_per_s);
  progress(`bounds: pread one copy: source file ${Math.round(src.mb_per_s)} MB/s, our blob cache file ${Math.round(cache.mb_per_s)} MB/s`);
}

export function renderBounds(b: Bounds): string {
  const f = (x: number | undefined): string => (x === undefined || !Number.isFinite(x) ? '-' : `${Math.round(x)} MB/s`);
  const s = (xs: number[]): string => {
    const m = summarize(xs);
    return m.n === 0 ? '-' : `${f(m.median)}${m.n > 1 ? ` ±${Math.round(m.spread * 100)}%` : ''}`;
  };
  const src = summarize(b.preadSourceMBps).median;
  const cache = summarize(b.preadCacheMBps).median;
  const lines = [
    'machine bounds (this run, one thread, MB = 10^6 B)',
    `  page-cache read, one copy (pread 1 MiB into one buffer, median of ${b.preadCacheMBps.length}): ` +
      `source file ${s(b.preadSourceMBps)}, our blob cache file ${s(b.preadCacheMBps)}`,
    `  memcpy 1 MiB blocks from a 256 MiB span: ${f(b.memcpyMBps)}`,
    `  decompression of 1 MiB chunks (corpus): lz4_block ${f(b.decompressMBps['lz4_block'])} (ratio ${(b.codecRatio['lz4_block'] ?? 0).toFixed(2)}), ` +
      `zstd ${f(b.decompressMBps['zstd'])} (ratio ${(b.codecRatio['zstd'] ?? 0).toFixed(2)}), none (memcpy per chunk) ${f(b.decompressMBps['none'])}`,
  ];
  if (Number.isFinite(src) && Number.isFinite(cache) && Math.abs(cache / src - 1) > 0.25) {
    lines.push('  note: the two files read at different speeds from the page cache (folio sizes follow how a file was written); ' +
      'each side is compared with the bound of the file it reads');
  }
  return lines.join('\n');
}

/** Start-to-ready of both servers: spawn -> socket listening -> first `info` done. */
export async function measureStartup(workDir: string, warm: OursImage, src: string, reps: number, raw: RawRecord[]): Promise<Row[]> {
  const ours: number[] = [];
  const oursSocket: number[] = [];
  const oursSelf: number[] = [];
  const peer: number[] = [];
  const peerSocket: number[] = [];
  const bareNode: number[] = [];
  const bareNodeNoCa: number[] = [];
  const extraCa = process.env['NODE_EXTRA_CA_CERTS'];
  for (let rep = 0; rep < reps; rep++) {
    // What Node itself costs here, measured the same way (spawn to exit), next to our starts.
    bareNode.push((await exec(process.execPath, ['-e', '0'])).ms);
    // And without the certificate parse bin/nydusd's launcher spares a start: its floor.
    if (extraCa) bareNodeNoCa.push((await exec('env', ['-u', 'NODE_EXTRA_CA_CERTS', process.execPath, '-e', '0'])).ms);
    for (const side of rep % 2 === 0 ? ['ours', 'peer'] : ['peer', 'ours']) {
      const s = side === 'ours' ? await startOurs(workDir, warm, { probe: true }) : await startPeer(workDir, src, { probe: true });
      await s.stop();
      const rec = { socket_ms: s.socketMs, ready_ms: s.readyMs, self_ready_ms: s.selfReadyMs };
      raw.push({ phase: 'startup', id: 'start', side: s.name, rep, result: rec });
      if (side === 'ours') {
        ours.push(s.readyMs ?? Number.NaN);
        oursSocket.push(s.socketMs);
        oursSelf.push(s.selfReadyMs ?? Number.NaN);
      } else {
        peer.push(s.readyMs ?? Number.NaN);
        peerSocket.push(s.socketMs);
      }
      progress(`start-up ${rep + 1}/${reps} ${s.name.padEnd(9)} socket ${s.socketMs.toFixed(1)} ms, ready ${(s.readyMs ?? Number.NaN).toFixed(1)} ms`);
    }
  }
  const g = 'daemon start and image open';
  return [
    {
      id: 'start.ready', group: g, label: 'start-to-ready', unit: 'ms', ours: { name: 'ours', values: ours },
      ref: { name: 'virtiofsd', values: peer }, target: { kind: 'abs-max', value: 80 },
      note: 'spawn -> socket listening (/proc/net/unix, no connect) -> first driver `info` session done (driver exec included)',
    },
    {
      id: 'start.node', group: g, label: 'bare node -e 0', unit: 'ms', ours: { name: 'node', values: bareNode },
      note: `spawn to exit of Node itself${extraCa ? '; NODE_EXTRA_CA_CERTS is set: Node parses those certificates at every start (bin/nydusd defers them)' : ', the floor under start-to-ready'}`,
    },
    ...(extraCa
      ? [{
          id: 'start.node-noca', group: g, label: 'bare node -e 0, no extra CAs', unit: 'ms', ours: { name: 'node', values: bareNodeNoCa },
          note: 'the same without NODE_EXTRA_CA_CERTS (env -u; env\'s exec included): the floor under start-to-ready, as bin/nydusd starts Node',
        } satisfies Row]
      : []),
    {
      id: 'start.socket', group: g, label: 'spawn-to-listening', unit: 'ms', ours: { name: 'ours', values: oursSocket },
      ref: { name: 'virtiofsd', values: peerSocket }, note: `nydusd's own "ready in" log: ${oursSelf.map((x) => x.toFixed(1)).join(', ')} ms`,
    },
  ];
}

/**
 * Cold reads: a fresh, empty blob cache each repetition, the compressed blob (localfs backend)
 * already in the host page cache, so the numbers are fetch + decompress + cache fill + reply,
 * not disk. Each file is read once: cold-a at queue depth 1, cold-b at queue depth 16.
 */
export async function measureCold(workDir: string, images: readonly ColdImage[], bounds: Bounds, reps: number, raw: RawRecord[]): Promise<Row[]> {
  const samples = new Map<string, number[]>();
  const cpu = new Map<string, number[]>();
  for (const img of images) {
    for (const f of readdirSync(img.blobDir)) readFileSync(join(img.blobDir, f));
  }
  // Best of three 64 MiB files (a cold file's worth), like the cold runs' fresh cache files.
  const writeMBps = Math.max(...[0, 1, 2].map(() => measureWriteMBps(workDir)));
  progress(`bounds: cache write (pwrite 1 MiB blocks into a new 64 MiB file, best of 3) ${Math.round(writeMBps)} MB/s`);
  for (let rep = 0; rep < reps; rep++) {
    for (const img of images) {
      const cacheDir = mkdtempSync(join(workDir, `cold-cache-${img.compressor}-`));
      const s = await startOurs(workDir, { bootstrap: img.bootstrap, blobDir: img.blobDir, cacheDir });
      try {
        for (const [file, qd] of [[kColdFiles[0], 1], [kColdFiles[1], 16]] as const) {
          const r = await driverJson<DriverResult>(s.socket, ['bench', 'read', '--path', file, '--size', '1M', '--qd', String(qd), '--passes', '1']);
          const key = `${img.compressor}-qd${qd}`;
          samples.set(key, [...(samples.get(key) ?? []), r.mb_per_s ?? Number.NaN]);
          cpu.set(key, [...(cpu.get(key) ?? []), (r.server_cpu_s ?? Number.NaN) / r.seconds]);
          raw.push({ phase: 'cold', id: key, side: 'ours', rep, result: r });
          progress(`cold ${rep + 1}/${reps} ${img.compressor.padEnd(9)} qd${String(qd).padEnd(2)} ${Math.round(r.mb_per_s ?? 0)} MB/s`);
        }
      } finally {
        await s.stop();
        rmSync(cacheDir, { recursive: true, force: true });
      }
    }
  }
  const rows: Row[] = [];
  for (const img of images) {
    for (const qd of [1, 16]) {
      const key = `${img.compressor}-qd${qd}`;
      const decode = bounds.decompressMBps[img.compressor];
      // The pipeline bound: each byte is decoded on one core, written once to the cache file and
      // copied once to the reader, one after the other.
      const bound = decode === undefined ? undefined : 1 / (1 / decode + 1 / writeMBps + 1 / bounds.memcpyMBps);
      const med = [...(cpu.get(key) ?? [])].sort((a, b) => a - b)[Math.floor((cpu.get(key)?.length ?? 0) / 2)];
      const row: Row = {
        id: `cold-${key}.mbps`, group: 'cold reads (localfs backend, empty cache, blob in page cache)',
        label: `cold ${img.compressor} qd${qd}`, unit: 'MB/s', ours: { name: 'ours', values: samples.get(key) ?? [] },
        note: `server ${med !== undefined && Number.isFinite(med) ? med.toFixed(2) : '-'} cores; bound = 1/(1/decode ${Math.round(decode ?? 0)} + 1/write ${Math.round(writeMBps)} + 1/memcpy ${Math.round(bounds.memcpyMBps)}) MB/s`,
      };
      // Uncompressed data has no codec to compare with: its row is information only.
      if (bound !== undefined && img.compressor !== 'none') {
        row.ref = { name: 'pipeline bound', values: [bound] };
        row.target = { kind: 'ratio-min', value: 0.6 };
      }
      rows.push(row);
    }
  }
  return rows;
}

/** pwrite of 1 MiB blocks into a new file under `dir` (one cache write per byte), MB/s. */
function measureWriteMBps(dir: string, mib = 64): number {
  const path = join(dir, 'write-bound.bin');
  const buf = Buffer.alloc(1 << 20, 0x5a);
  const fd = openSync(path, 'w');
  try {
    const t0 = performance.now();
    for (let i = 0; i < mib; i++) writeSync(fd, buf, 0, buf.length, i * buf.length);
    return (mib * buf.length) / 1e6 / ((performance.now() - t0) / 1000);
  } finally {
    closeSync(fd);
    rmSync(path, { force: true });
  }
}

interface OpenJson {
  first_open_ms: number;
  open_ms: number;
  inodes: number;
  rss_open_delta_mib: number;
}

/** Bootstrap open time (fresh process) and our daemon's RSS serving a 100 000-file image. */
export async function measureHundredK(workDir: string, reps: number, raw: RawRecord[]): Promise<Row[]> {
  const img = await makeHundredK(workDir);
  const child = fileURLToPath(new URL('./open-image.js', import.meta.url));
  const first: number[] = [];
  const warm: number[] = [];
  const delta: number[] = [];
  for (let rep = 0; rep < reps; rep++) {
    const r = await exec(process.execPath, ['--expose-gc', child, img.bootstrap]);
    if (r.status !== 0) throw new Error(`open-image failed: ${r.stderr}`);
    const j = JSON.parse(r.stdout) as OpenJson;
    raw.push({ phase: '100k', id: 'open', side: 'ours', rep, result: j });
    first.push(j.first_open_ms);
    warm.push(j.open_ms);
    delta.push(j.rss_open_delta_mib);
    progress(`100k image ${rep + 1}/${reps}: first open ${j.first_open_ms.toFixed(1)} ms, later opens ${j.open_ms.toFixed(1)} ms, ${j.inodes} inodes`);
  }
  const ready: number[] = [];
  const rss: number[] = [];
  for (let rep = 0; rep < reps; rep++) {
    const cacheDir = mkdtempSync(join(workDir, 'cache-100k-'));
    const s = await startOurs(workDir, { bootstrap: img.bootstrap, blobDir: img.blobDir, cacheDir }, { probe: true });
    // After a listing of one folder: the daemon as it is once a guest started looking around.
    await driverJson(s.socket, ['ls', '/d00']);
    const mem = processMemory(s.pid);
    await s.stop();
    rmSync(cacheDir, { recursive: true, force: true });
    ready.push(s.readyMs ?? Number.NaN);
    rss.push(mem?.rssMiB ?? Number.NaN);
    raw.push({ phase: '100k', id: 'daemon', side: 'ours', rep, result: { ready_ms: s.readyMs, self_ready_ms: s.selfReadyMs, ...mem } });
    progress(`100k image ${rep + 1}/${reps}: nydusd ready in ${(s.readyMs ?? 0).toFixed(0)} ms, RSS ${(mem?.rssMiB ?? 0).toFixed(1)} MiB`);
  }
  const g = 'daemon start and image open';
  return [
    { id: '100k.open', group: g, label: '100k-file bootstrap open', unit: 'ms', ours: { name: 'ours', values: first }, target: { kind: 'abs-max', value: 300 },
      note: `first openBootstrap() in a fresh process; later opens ${warm.map((x) => x.toFixed(0)).join('/')} ms` },
    { id: '100k.rss', group: g, label: '100k-file nydusd RSS', unit: 'MiB', ours: { name: 'ours', values: rss }, target: { kind: 'abs-max', value: 100 },
      note: `VmRSS of nydusd (Node included) after ready + one ls; the open image alone adds ${delta.map((x) => x.toFixed(0)).join('/')} MiB` },
    { id: '100k.ready', group: g, label: '100k-file start-to-ready', unit: 'ms', ours: { name: 'ours', values: ready } },
  ];
}
