/**
 * Writable rows (issue 12): a QEMU TCG guest writes through our passthrough share (`nydusd
 * virtiofs --shared-dir DIR`, upstream's fixed passthrough_fs options: writeback, no_open) and
 * through QEMU's virtiofsd twice: with its defaults (`-o cache=auto`, no writeback cache) and
 * with `-o writeback` (the same mode as ours). One guest mounts all three shares and runs each
 * step on them back to back, the order rotating per repetition, so the load other processes put
 * on this machine falls on all three alike (separate boots measured minutes apart differed by
 * more than the effect measured). Each step starts with the guest's caches dropped and ends with its data on
 * the host (fsync/sync), so a writeback cache cannot hide the server's work. Timed with the
 * guest's clock (bench/guest/benchtime.c), boot excluded:
 *   seqwrite  dd of 64 MiB in 1 MiB blocks, conv=fsync
 *   create    1000 files: create, write 4 KiB, close; then sync
 *   untar     tar -x of the Debian tar (qemu/debian-tar.ts) from a raw virtio disk; then sync
 *   stat      stat of the 1000 files just written
 * Target: ours takes no longer than virtiofsd (ratio of medians <= 1.0), against both.
 */
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';

import { debianTarAvailable, makeDebianTar } from '../qemu/debian-tar.js';
import { guestAvailable, runGuest } from '../qemu/guest.js';
import { toolBinary } from '../qemu/tools.js';
import { startVirtiofsd, virtiofsdAvailable } from '../qemu/virtiofsd.js';
import { startDaemon } from '../test/helpers/daemon.js';
import { benchtimeBinary } from './guest-suite.js';
import { progress } from './lib/proc.js';
import type { Row } from './lib/report.js';
import type { RawRecord } from './warm.js';

const kSteps = [
  { id: 'seqwrite', label: 'seq write 64 MiB, 1 MiB blocks + fsync', cmd: 'sh -c "dd if=/dev/zero of=$R/seq bs=1M count=64 conv=fsync 2>/dev/null"' },
  { id: 'create', label: 'create+write 4 KiB+close x1000, sync', cmd: 'sh -c "/posixsuite mkfiles $R/files 1000 4096 && sync"' },
  { id: 'untar', label: 'untar Debian files from virtio-blk, sync', cmd: 'sh -c "tar -C $R/u -x -f /dev/vda && sync"' },
  { id: 'stat', label: 'stat of the 1000 written files', cmd: '/posixsuite statfiles $R/files 1000' },
] as const;

// Why the default-mode seqwrite row is a mode comparison, not a server one (measured in the
// guest, 6.1 kernel, 1 GiB RAM): with FUSE_WRITEBACK_CACHE the guest's page cache takes the
// writes, and every FUSE bdi is strictlimit with max_ratio 1%: debugfs shows BdiDirtyThresh
// ~1.7 MiB with writeback and 0 without. dd is then paced by balance_dirty_pages and each page
// is copied twice in the guest (page cache, then fuse's writeback copy); without the writeback
// cache every 1 MiB write(2) goes to the server at once. The writeback runs are bimodal, for
// ours and virtiofsd -o writeback alike: 0.3-0.7 s, or 1-3.5 s when dd spends most of its time
// in balance_dirty_pages pauses (traced: 1.5 s of 2.3 s in 17 pauses, dirty_ratelimit staying
// ~100 MB/s, so the writer is over the bdi's small limit, not paced by a low bandwidth estimate);
// virtiofsd without writeback takes 0.15-0.5 s. The INIT replies match where it matters:
// max_write 1 MiB, BIG_WRITES and MAX_PAGES (256 pages) from both servers.
const kModeNote = 'ours: writeback cache (upstream passthrough_fs), virtiofsd: none; same-mode row below';
const kSameModeNote = 'both with FUSE_WRITEBACK_CACHE';

type Side = 'ours' | 'virtiofsd' | 'virtiofsd-wb';
const kSides: readonly Side[] = ['ours', 'virtiofsd', 'virtiofsd-wb'];

export function writableGuestSkip(): string | false {
  if (process.getuid?.() !== 0) return 'needs root (chown in the untar)';
  return guestAvailable() || virtiofsdAvailable() || debianTarAvailable();
}

const kTag: Record<Side, string> = { ours: 'ours', virtiofsd: 'vfsd', 'virtiofsd-wb': 'vfsdwb' };

/**
 * Rounds 0..reps (0 untimed) of every step on every share, the share order rotating per round;
 * each timed step prints "BENCH step rep ns tag".
 */
function script(reps: number, round: number): string {
  const lines = [
    'set -e',
    'chmod +x /benchtime /posixsuite',
    ...kSides.map((s) => `mkdir -p /${kTag[s]} && mount -t virtiofs ${kTag[s]} /${kTag[s]}`),
    'drop() { sync; echo 3 > /proc/sys/vm/drop_caches; }',
  ];
  for (let rep = 0; rep <= reps; rep++) {
    const order = kSides.map((_s, i) => kSides[(i + rep + round) % kSides.length] as Side);
    lines.push(...order.map((s) => `mkdir -p /${kTag[s]}/r${rep}/files /${kTag[s]}/r${rep}/u`));
    for (const step of kSteps) {
      for (const s of order) {
        lines.push(`R=/${kTag[s]}/r${rep}; export R; drop; t=$(/benchtime ${step.cmd}); echo "BENCH ${step.id} ${rep} $t ${kTag[s]}"`);
      }
    }
    lines.push(...order.map((s) => `rm -rf /${kTag[s]}/r${rep}`));
  }
  return lines.join('\n');
}

function collect(output: string, round: number, times: Map<string, Record<Side, number[]>>, raw: RawRecord[]): void {
  for (const m of output.matchAll(/^BENCH (\w+) (\d+) (\d+) (\w+)$/gm)) {
    const [, id = '', rep, ns, tag] = m;
    const side = kSides.find((s) => kTag[s] === tag);
    if (side === undefined) continue;
    raw.push({ phase: 'writable', id, side, rep: Number(rep), result: { ns: Number(ns), round } });
    if (Number(rep) === 0) continue; // the untimed first round
    times.get(id)?.[side].push(Number(ns) / 1e6);
  }
}

export async function measureWritableGuest(workDir: string, rounds: number, reps: number, raw: RawRecord[]): Promise<Row[]> {
  const work = join(workDir, 'writable');
  mkdirSync(work, { recursive: true });
  const tar = makeDebianTar(work);
  const files = { '/benchtime': readFileSync(benchtimeBinary()), '/posixsuite': readFileSync(toolBinary('posixsuite')) };
  const times = new Map<string, Record<Side, number[]>>(kSteps.map((s) => [s.id, { ours: [], virtiofsd: [], 'virtiofsd-wb': [] }]));
  for (let round = 0; round < rounds; round++) {
    const servers: { stop(): Promise<unknown> }[] = [];
    const shares: string[] = [];
    try {
      for (const side of kSides) {
        const share = join(work, `${side}-${round}`);
        mkdirSync(share);
        shares.push(share);
        const sock = join(work, `${side}-${round}.sock`);
        servers.push(side === 'ours'
          ? await startDaemon(['virtiofs', '--shared-dir', share, '--sock', sock, '--log-level', 'info'])
          : await startVirtiofsd({ source: share, socketPath: sock, cache: 'auto', extraArgs: side === 'virtiofsd-wb' ? ['-o', 'writeback'] : [] }));
      }
      progress(`writable guest round ${round + 1}/${rounds}: ours, virtiofsd, virtiofsd -o writeback (${reps} timed rounds of ${kSteps.length} steps each)`);
      const r = await runGuest({
        script: script(reps, round),
        virtiofs: kSides.map((s) => ({ socket: join(work, `${s}-${round}.sock`), tag: kTag[s] })),
        disks: [{ path: tar, readonly: true }],
        files, memoryMiB: 1024, timeoutMs: 900_000,
      });
      if (r.exitCode !== 0) {
        throw new Error(`writable guest failed (exit ${r.exitCode}${r.timedOut ? ', timed out' : ''}):\n${r.output.slice(-3000)}\n${r.consoleLog.slice(-2000)}`);
      }
      collect(r.output, round, times, raw);
    } finally {
      for (const s of servers) await s.stop();
      for (const d of shares) rmSync(d, { recursive: true, force: true });
    }
  }
  const row = (s: (typeof kSteps)[number], ref: Exclude<Side, 'ours'>): Row => ({
    id: ref === 'virtiofsd' ? `writable.${s.id}` : `writable-wb.${s.id}`,
    group: ref === 'virtiofsd'
      ? 'writes inside a QEMU TCG guest (passthrough share vs virtiofsd, its defaults)'
      : 'writes inside a QEMU TCG guest, same mode (passthrough share vs virtiofsd -o writeback)',
    label: s.label, unit: 'ms',
    ours: { name: 'ours', values: times.get(s.id)?.ours ?? [] },
    ref: { name: ref === 'virtiofsd' ? 'virtiofsd' : 'virtiofsd -o writeback', values: times.get(s.id)?.[ref] ?? [] },
    target: { kind: 'ratio-max', value: 1.0 },
    ...(ref === 'virtiofsd-wb' ? { note: kSameModeNote } : s.id === 'seqwrite' ? { note: kModeNote } : {}),
  });
  return [...kSteps.map((s) => row(s, 'virtiofsd')), ...kSteps.map((s) => row(s, 'virtiofsd-wb'))];
}
