/**
 * `npm run bench -- --guest`: the same files seen from inside QEMU guests (qemu/guest.ts, TCG,
 * vhost-user-fs-pci), one boot with our nydusd and one with virtiofsd (more with --rounds,
 * alternating). Each guest mounts the bench tree (and, for the chroot step, a Debian rootfs) and
 * times, with its own clock (bench/guest/benchtime.c around each step, so boot time is excluded):
 *   seq    cat of the large file
 *   small  cat of the 10 000 small files (the glob lists the folder, then open/read/close each)
 *   ls     ls -l of the 10 000-entry folder (READDIRPLUS + attributes)
 *   chroot a container-style start: chroot into the rootfs and run apt-get and dpkg-query
 * The guest drops its caches before every step (so each step goes to the server), one untimed
 * round first, then `reps` timed rounds. Servers are warm: ours has its blob caches filled by
 * reading everything through it once; virtiofsd's files are in the host page cache.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { guestAvailable, runGuest } from '../qemu/guest.js';
import { guestCacheRoot } from '../qemu/kernel.js';
import { debianRootfs } from '../test/helpers/rootfs.js';
import { buildImage, makeWarmTree, readTree } from './lib/fixture.js';
import type { SuiteOptions } from './lib/options.js';
import { hostInfo, loadNote } from './lib/options.js';
import { driverJson, progress } from './lib/proc.js';
import type { Row, RunFile } from './lib/report.js';
import type { Server } from './lib/servers.js';
import { peerSkip, startOurs, startPeer } from './lib/servers.js';
import type { RawRecord } from './warm.js';

const kSteps = [
  { id: 'seq', label: 'seq read of big.bin', cmd: "sh -c 'cat /mnt/b/big.bin > /dev/null'" },
  { id: 'small', label: 'read 10k small files', cmd: "sh -c 'cat /mnt/b/many/* > /dev/null'" },
  { id: 'ls', label: 'ls -l of a 10k-entry dir', cmd: "sh -c 'ls -l /mnt/b/many > /dev/null'" },
  { id: 'chroot', label: 'chroot + apt-get, dpkg-query', cmd: "chroot /mnt/r /bin/bash -c 'apt-get --version > /dev/null && dpkg-query -W > /dev/null'" },
] as const;

/** The static guest timer, built once per source version (cached like qemu/tools.ts). */
export function benchtimeBinary(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const src = [join(here, 'guest', 'benchtime.c'), join(here, '..', '..', 'bench', 'guest', 'benchtime.c')].find((p) => existsSync(p));
  if (!src) throw new Error('bench/guest/benchtime.c not found');
  const key = createHash('sha256').update(readFileSync(src)).digest('hex').slice(0, 16);
  const outDir = join(dirname(guestCacheRoot()), 'tools');
  const out = join(outDir, `benchtime-${key}`);
  if (existsSync(out)) return out;
  mkdirSync(outDir, { recursive: true });
  const tmp = `${out}.tmp${process.pid}`;
  const r = spawnSync('cc', ['-static', '-O2', '-Wall', '-o', tmp, src], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`cannot build benchtime (needs cc and a static libc): ${r.stderr}`);
  renameSync(tmp, out);
  return out;
}

/**
 * The steps `--only` selects (matched against the row id `guest.ID` and the bare id), so one row
 * can be measured over many rounds without the minutes the others take under TCG; none matching
 * is an error rather than an empty run.
 */
export function guestSteps(only: RegExp | undefined): (typeof kSteps)[number][] {
  const steps = kSteps.filter((s) => only === undefined || only.test(`guest.${s.id}`) || only.test(s.id));
  if (steps.length === 0) throw new Error(`--only ${String(only)} matches no guest row (ids: ${kSteps.map((s) => `guest.${s.id}`).join(' ')})`);
  return steps;
}

function guestScript(steps: readonly { id: string; cmd: string }[], reps: number, rootfs: boolean): string {
  const lines = [
    'set -e',
    'chmod +x /benchtime',
    'mkdir -p /mnt/b /mnt/r',
    'mount -t virtiofs bench /mnt/b',
    ...(rootfs ? ['mount -t virtiofs rootfs /mnt/r'] : []),
    // Each step starts with empty guest caches: every LOOKUP, READDIRPLUS and READ reaches the server.
  ];
  return [...lines, ...timedLoop(steps, reps)].join('\n');
}

/**
 * Guest shell lines: rounds 0..reps (0 is the untimed warm-up) of `steps`, each run under
 * /benchtime after dropping the guest's caches, printing "BENCH id rep ns"; `before`/`after`
 * run untimed inside each round.
 */
export function timedLoop(steps: readonly { id: string; cmd: string }[], reps: number, before: string[] = [], after: string[] = []): string[] {
  return [
    'drop() { sync; echo 3 > /proc/sys/vm/drop_caches; }',
    `for rep in ${Array.from({ length: reps + 1 }, (_v, i) => i).join(' ')}; do`,
    ...before.map((l) => `  ${l}`),
    ...steps.map((s) => `  drop; t=$(/benchtime ${s.cmd}); echo "BENCH ${s.id} $rep $t"`),
    ...after.map((l) => `  ${l}`),
    'done',
  ];
}

/** Files the "BENCH id rep ns" lines of a guest's output: all in `raw`, timed rounds in `times` (ms). */
export function collectTimes(output: string, phase: string, side: 'ours' | 'virtiofsd', round: number,
  times: Map<string, { ours: number[]; peer: number[] }>, raw: RawRecord[]): void {
  for (const m of output.matchAll(/^BENCH (\w+) (\d+) (\d+)$/gm)) {
    const [, id, rep, ns] = m;
    raw.push({ phase, id: id ?? '', side, rep: Number(rep), result: { ns: Number(ns), round } });
    if (Number(rep) === 0) continue; // the untimed first round
    const t = times.get(id ?? '');
    (side === 'ours' ? t?.ours : t?.peer)?.push(Number(ns) / 1e6);
  }
}

interface Shares {
  name: 'ours' | 'virtiofsd';
  bench: Server;
  rootfs: Server | undefined;
}

export async function runGuestSuite(o: SuiteOptions): Promise<RunFile> {
  const why = guestAvailable() || peerSkip();
  if (why) throw new Error(`guest mode unavailable: ${why}`);
  const steps = guestSteps(o.only);
  // The rootfs share is only built, filled and mounted for the step that uses it.
  const withRootfs = steps.some((s) => s.id === 'chroot');
  let rootfsDir = '';
  if (withRootfs) {
    const rootfs = debianRootfs();
    if ('unavailable' in rootfs) throw new Error(`the chroot step needs the Debian rootfs: ${rootfs.unavailable}`);
    rootfsDir = rootfs.dir;
  }
  const started = new Date().toISOString();
  const busy = loadNote(loadavg()[0] ?? 0);
  if (busy) progress(`note: ${busy}`);
  const reps = o.quick ? 2 : 5;
  const work = mkdtempSync(join(tmpdir(), 'nydus-bench-guest-'));
  const raw: RawRecord[] = [];
  const ours: Server[] = [];
  try {
    const tool = benchtimeBinary();
    const tree = await makeWarmTree(work, o.quick ? 64 : 128);
    progress(`starting our nydusd${withRootfs ? 's (bench tree, rootfs)' : ' (bench tree)'} and filling the blob caches`);
    ours.push(await startOurs(work, tree.warm));
    if (withRootfs) {
      progress(`building the rootfs image from ${rootfsDir} (nydus-image create, zstd)`);
      const rootImg = await buildImage(rootfsDir, join(work, 'rootfs-image'), 'zstd');
      const rootCache = join(work, 'rootfs-cache');
      mkdirSync(rootCache);
      ours.push(await startOurs(work, { ...rootImg, cacheDir: rootCache }));
    }
    for (const s of ours) await driverJson(s.socket, ['tree', '/']);
    readTree(tree.src);
    if (withRootfs) readTree(rootfsDir);

    const times = new Map<string, { ours: number[]; peer: number[] }>(steps.map((s) => [s.id, { ours: [], peer: [] }]));
    for (let round = 0; round < o.rounds; round++) {
      for (const side of round % 2 === 0 ? ['ours', 'virtiofsd'] as const : ['virtiofsd', 'ours'] as const) {
        let shares: Shares;
        if (side === 'ours') {
          shares = { name: 'ours', bench: ours[0] as Server, rootfs: ours[1] };
        } else {
          shares = { name: 'virtiofsd', bench: await startPeer(work, tree.src), rootfs: withRootfs ? await startPeer(work, rootfsDir) : undefined };
        }
        progress(`guest round ${round + 1}/${o.rounds}: booting with ${side} (${reps} timed rounds of ${steps.length} steps; load ${loadavg().map((l) => l.toFixed(2)).join(' ')})`);
        try {
          const r = await runGuest({
            script: guestScript(steps, reps, withRootfs),
            virtiofs: [{ socket: shares.bench.socket, tag: 'bench' }, ...(shares.rootfs ? [{ socket: shares.rootfs.socket, tag: 'rootfs' }] : [])],
            files: { '/benchtime': readFileSync(tool) },
            memoryMiB: 1024,
            timeoutMs: 900_000,
          });
          if (r.exitCode !== 0) {
            throw new Error(`guest with ${side} failed (exit ${r.exitCode}${r.timedOut ? ', timed out' : ''}):\n${r.output.slice(-3000)}\n${r.consoleLog.slice(-2000)}`);
          }
          collectTimes(r.output, 'guest', side, round, times, raw);
          progress(`guest ${side}: ${steps.map((s) => `${s.id} ${(times.get(s.id)?.[side === 'ours' ? 'ours' : 'peer'].slice(-reps) ?? []).map((x) => x.toFixed(0)).join('/')} ms`).join(', ')}`);
        } finally {
          if (side === 'virtiofsd') {
            await shares.bench.stop();
            await shares.rootfs?.stop();
          }
        }
      }
    }
    const rows: Row[] = steps.map((s) => ({
      id: `guest.${s.id}`, group: 'inside a QEMU TCG guest, guest caches dropped before each step', label: s.label, unit: 'ms',
      ours: { name: 'ours', values: times.get(s.id)?.ours ?? [] }, ref: { name: 'virtiofsd', values: times.get(s.id)?.peer ?? [] },
      target: { kind: 'ratio-max', value: 1.05 },
    }));
    return {
      schema: 1, kind: 'guest', started, finished: new Date().toISOString(), ...hostInfo(),
      options: { quick: o.quick, rounds: o.rounds, reps }, bounds: {}, rows, raw,
      notes: [
        `${o.rounds} boot(s) per side, alternating; ${reps} timed rounds per boot after an untimed one; times from the guest's CLOCK_MONOTONIC`,
        `bench tree: ${tree.bigBytes >> 20} MiB big.bin + 10000 x 4 KiB files${withRootfs ? `; rootfs: ${rootfsDir} (ours: nydus-image create, zstd)` : ''}`,
        'TCG guests: the guest CPU is emulated, so guest-side work weighs more than server speed',
        ...(busy ? [busy] : []),
      ],
    };
  } finally {
    for (const s of ours) await s.stop();
    if (o.keep) progress(`kept ${work}`);
    else rmSync(work, { recursive: true, force: true });
  }
}
