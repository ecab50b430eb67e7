/**
 * One measured container start, run by container-start.ts inside a network namespace of its own
 * (`unshare --net`): the loopback is brought up and shaped with `tc tbf` to the link rate, the
 * registry (docker-registry over the storage the parent filled) and nydusd run inside, and the
 * container is "started" by chrooting into the FUSE mount and running its programs.
 *
 * Variants (argv[2] is a JSON ChildArgs):
 *  - download:  every blob fetched whole through the link (curl), then nydusd over localfs on the
 *               downloaded blobs and the same programs: "pull, then run";
 *  - lazy:      nydusd over the registry with an empty cache;
 *  - readahead: a first (unmeasured) start records its readahead log; the cache data is then
 *               dropped and the measured second start prefetches what the log holds.
 * Prints one JSON line (ChildResult) on stdout, with the measured start's timeline (nydusd spawned,
 * up, storage ready, mounted, first FUSE request, each program done, readahead planned and done)
 * and the backend requests and bytes, which container-start.ts prints with every run.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { startDaemon } from '../test/helpers/daemon.js';
import { startRegistry } from '../test/helpers/remote-servers.js';
import { exec, sleep } from './lib/proc.js';

export type Variant = 'download' | 'lazy' | 'readahead';

export interface ChildArgs {
  variant: Variant;
  work: string;
  bootstrap: string;
  blobIds: string[];
  registryStore: string;
  repo: string;
  rateMbit: number;
}

export interface ChildResult {
  variant: Variant;
  ms: number;
  /** Bytes nydusd's backend read (download: bytes curl fetched). */
  bytes: number;
  /** Read misses nydusd filled on demand during the measured start. */
  misses: number;
  /** Time until nydusd was ready (part of ms). */
  readyMs: number;
  /** Backend requests nydusd made (download: one per blob). */
  reads: number;
  prefetchBytes?: number;
  /** Where the measured start spent its time: [event, ms since the start began], in order. */
  timeline: [string, number][];
}

/** The programs of a container start (issue 13's workload). */
export const kCommands = ['dpkg-query -W', 'apt-get --version', 'perl -e "print 1"', 'ls -l /usr/bin'] as const;

/**
 * Each command prints a marker when it is done (echo is a shell builtin: no file of the image is
 * read for it), so the start's timeline shows what each program cost.
 */
export const kWorkload = kCommands.map((c, i) => `${c} >/dev/null && echo @${i}`).join(' && ');

/**
 * As a container runtime does: /dev and /proc mounted into the root (a FUSE mount is nodev, the
 * image's own device nodes cannot be opened), in a mount namespace that ends with the command.
 */
function containerCommand(mnt: string): [string, string[]] {
  const setup = 'mount --bind /dev "$0/dev" && mount -t proc proc "$0/proc" && exec chroot "$0" /bin/sh -c "$1"';
  return ['unshare', ['--mount', '--', '/bin/sh', '-c', setup, mnt, kWorkload]];
}

function sh(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr || r.stdout}`);
}

function nydusConfig(path: string, backend: Record<string, unknown>, cacheDir: string): void {
  writeFileSync(path, JSON.stringify({
    device: { backend, cache: { type: 'blobcache', config: { work_dir: cacheDir } } },
    mode: 'direct',
  }));
}

/** Events of nydusd's log, by the line that marks them (timestamps of the log, ms resolution). */
const kLogEvents: [string, RegExp][] = [
  ['nydusd up', /\] nydusd v/],
  ['storage ready', /\] storage ready/],
  ['FUSE mounted', /\] FUSE mounted/],
  ['first FUSE request', /FUSE INIT/],
  ['readahead planned', /\] readahead: \d+ range/],
  ['prefetch done', /\] prefetch done/],
];

function logEvents(log: string, wall0: number): [string, number][] {
  const out: [string, number][] = [];
  for (const [name, re] of kLogEvents) {
    const line = log.split('\n').find((l) => re.test(l));
    const at = line ? Date.parse(line.slice(1, 25)) : NaN;
    if (Number.isFinite(at)) out.push([name, at - wall0]);
  }
  return out;
}

async function startAndRun(a: ChildArgs, cfg: string, mnt: string, t0: number, wall0: number, timeline: [string, number][]): Promise<{ ms: number; readyMs: number; log: string }> {
  const spawnedAt = performance.now() - t0;
  const d = await startDaemon(['--config', cfg, '--bootstrap', a.bootstrap, '--mountpoint', mnt], { readyTimeoutMs: 60_000 });
  const readyMs = performance.now() - t0;
  timeline.push(['nydusd spawned', spawnedAt], ['ready seen', readyMs]);
  let r;
  try {
    const [cmd, args] = containerCommand(mnt);
    r = await exec(cmd, args, 300_000, (s) => {
      const now = performance.now() - t0;
      for (const m of s.match(/@\d/g) ?? []) timeline.push([`${kCommands[Number(m[1])]?.split(' ')[0] ?? m} done`, now]);
    });
  } catch (err) {
    await d.stop();
    throw err;
  }
  const ms = performance.now() - t0;
  const status = await d.stop();
  timeline.push(...logEvents(d.log(), wall0));
  timeline.sort((x, y) => x[1] - y[1]);
  // Kept with the work folder (bench --keep) to see where a start spent its time.
  writeFileSync(join(a.work, `nydusd-${++runs}.log`), d.log());
  if (r.status !== 0) throw new Error(`the container start failed (${String(r.status)}): ${r.stderr}\n${d.log().slice(-2000)}`);
  if (status !== 0) throw new Error(`nydusd exited ${String(status)}:\n${d.log().slice(-2000)}`);
  return { ms, readyMs, log: d.log() };
}

let runs = 0;

/** Pause between the registry's start and any measured start (see main). */
const kSettleMs = 500;

const num = (log: string, re: RegExp): number => Number(re.exec(log)?.[1] ?? 0);

async function main(): Promise<void> {
  const a = JSON.parse(process.argv[2] ?? '{}') as ChildArgs;
  sh('ip', ['link', 'set', 'lo', 'up']);
  // burst above the loopback's 64 KiB GSO packets, or tbf drops them all.
  sh('tc', ['qdisc', 'add', 'dev', 'lo', 'root', 'tbf', 'rate', `${a.rateMbit}mbit`, 'burst', '256kb', 'latency', '100ms']);
  const reg = await startRegistry(join(a.work, 'registry'), a.registryStore, { kind: 'none' });
  // This process and the registry have just started and still burn CPU for a while (compiling,
  // the registry's own start): a start measured at once pays ~50 ms of that on this 2-core
  // machine, which the download variant hides behind its transfer. Every variant's clock starts
  // once that is over.
  await sleep(kSettleMs);
  try {
    const mnt = join(a.work, 'mnt');
    const cache = join(a.work, 'cache');
    mkdirSync(mnt, { recursive: true });
    mkdirSync(cache, { recursive: true });
    const cfg = join(a.work, 'nydusd.json');
    const registry = { type: 'registry', config: { scheme: 'http', host: `127.0.0.1:${reg.port}`, repo: a.repo, readahead: a.variant === 'readahead', readahead_sec: 60 } };
    let out: ChildResult;
    const timeline: [string, number][] = [];
    if (a.variant === 'download') {
      const blobs = join(a.work, 'blobs');
      mkdirSync(blobs, { recursive: true });
      const wall0 = Date.now();
      const t0 = performance.now();
      let bytes = 0;
      for (const id of a.blobIds) {
        const r = await exec('curl', ['-sSf', '-o', join(blobs, id), '-w', '%{size_download}', `${reg.url}/v2/${a.repo}/blobs/sha256:${id}`]);
        if (r.status !== 0) throw new Error(`curl ${id}: ${r.stderr}`);
        bytes += Number(r.stdout);
      }
      timeline.push(['blobs downloaded', performance.now() - t0]);
      nydusConfig(cfg, { type: 'localfs', config: { dir: blobs } }, cache);
      const s = await startAndRun(a, cfg, mnt, t0, wall0, timeline);
      out = { variant: a.variant, ms: s.ms, readyMs: s.readyMs, bytes, reads: a.blobIds.length, misses: num(s.log, /(\d+) read misses filled/), timeline };
    } else {
      nydusConfig(cfg, registry, cache);
      if (a.variant === 'readahead') {
        // The first start records; the measured start has its log and nothing else of the
        // cache (no data, no chunk map, no blob meta).
        await startAndRun(a, cfg, mnt, performance.now(), Date.now(), []);
        for (const f of readdirSync(cache)) if (!f.endsWith('.access')) rmSync(join(cache, f));
      }
      const s = await startAndRun(a, cfg, mnt, performance.now(), Date.now(), timeline);
      out = {
        variant: a.variant,
        ms: s.ms,
        readyMs: s.readyMs,
        bytes: num(s.log, /storage closed: backend \d+ reads \((\d+) bytes/),
        reads: num(s.log, /storage closed: backend (\d+) reads/),
        misses: num(s.log, /(\d+) read misses filled/),
        timeline,
      };
      const pf = /prefetch done: \d+ request\(s\), (\d+) bytes/.exec(s.log);
      if (pf) out.prefetchBytes = Number(pf[1]);
    }
    process.stdout.write(`${JSON.stringify(out)}\n`);
  } finally {
    await reg.stop();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`container-start child: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
