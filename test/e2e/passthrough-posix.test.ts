/**
 * Our POSIX behaviour suite (qemu/tools/posixsuite.c, ~170 cases: lookups, O_EXCL/O_TRUNC/
 * O_APPEND, mkdir/rmdir/unlink errnos, renames incl. RENAME_NOREPLACE/EXCHANGE/WHITEOUT, links,
 * mknod, truncate, fallocate, SEEK_DATA/HOLE, copy_file_range, chmod/chown/utimes incl.
 * UTIME_NOW and kill-suid as a non-root caller, xattrs incl. ACLs and security.*, readdir,
 * statfs, fsync/fsyncdir/syncfs, fcntl and flock locks) runs in a QEMU guest once on our
 * passthrough share (Kata's way: `nydusd virtiofs` + API mount) and once on QEMU's virtiofsd,
 * one boot each. Every case must give Linux's answer on ours (the suite carries Linux's answers;
 * it passes unchanged on the host's ext4 and tmpfs). Where virtiofsd answers differently, the
 * case must be in kKnownDifferences with the reason.
 *
 * The same boot also
 *  - tries to escape (symlinks pointing out, `..` chains, renames across the root) while a host
 *    thread keeps swapping the directory the guest creates in for a symlink to a directory
 *    outside the share: nothing outside may change;
 *  - fills a second share that lives on an 8 MiB tmpfs: the writer gets ENOSPC (at write, or at
 *    fsync where the writeback cache absorbed the writes), never EIO; the other file on it stays
 *    intact and the daemon keeps serving (the guest writes and reads again after freeing space).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';

import { guestAvailable, runGuest } from '../../qemu/guest.js';
import type { GuestResult, VirtiofsShare } from '../../qemu/guest.js';
import { toolBinary } from '../../qemu/tools.js';
import { startVirtiofsd, virtiofsdAvailable } from '../../qemu/virtiofsd.js';
import type { Virtiofsd } from '../../qemu/virtiofsd.js';
import type { RunningDaemon } from '../helpers/daemon.js';
import { startDaemon } from '../helpers/daemon.js';
import { api, mountShare } from '../helpers/api.js';

const kSkip = process.getuid?.() !== 0 ? 'needs root' : guestAvailable() || virtiofsdAvailable();

/**
 * Cases where QEMU 7.2's C virtiofsd (`-o cache=auto -o xattr`, else its defaults) answers differently from
 * ours, and why. Ours runs with upstream nydusd's passthrough_fs options (writeback, no_open,
 * xattr). Every difference seen must be listed here; the reason is the note the issue asks for.
 */
const kKnownDifferences: Record<string, string> = {
  // Linux requires CAP_SYS_ADMIN for trusted.* and (without an LSM taking over) security.*.
  // virtiofsd drops CAP_SYS_ADMIN at start (it keeps only the file capabilities it needs), so a
  // root guest gets EPERM; our daemon keeps the capabilities it was started with, so root in the
  // guest may set them, as root on the host may.
  setxattr_trusted_as_root: 'virtiofsd runs without CAP_SYS_ADMIN: trusted.* is EPERM there',
  setxattr_security: 'virtiofsd runs without CAP_SYS_ADMIN: security.* is EPERM there',
  getxattr_security: 'follows from setxattr_security (nothing was set on virtiofsd: ENODATA)',
};

interface SuiteLine {
  got: string;
  want: string;
  ok: boolean;
}

function parseSuite(output: string): Map<string, SuiteLine> {
  const m = new Map<string, SuiteLine>();
  for (const line of output.split('\n')) {
    const f = line.replace(/\r$/, '').split('\t');
    if (f[0] !== 'PS' || f.length !== 5) continue;
    m.set(f[1] ?? '', { got: f[2] ?? '', want: f[3] ?? '', ok: f[4] === 'ok' });
  }
  return m;
}

const script = (w: string, small: string, mountSmall: boolean): string => `
set -e
mkdir -p /s /t
mount -t virtiofs share /s
${mountSmall ? 'mount -t virtiofs small /t' : ''}
chmod +x /posixsuite
/posixsuite run ${w}
/posixsuite escape ${w} 200
echo keep-me > ${small}/keep
/posixsuite fill ${small}/fill 32
echo "KEEP $(cat ${small}/keep)"
rm ${small}/fill
echo after > ${small}/after
echo "AFTER $(cat ${small}/after)"
sync
echo SUITE-DONE
`;

/** Swaps SHARE/race/d for a symlink to `outside` and back, every millisecond, until stopped. */
function startRacer(share: string, outside: string): () => number {
  const d = join(share, 'race', 'd');
  const real = join(share, 'race', 'd.real');
  mkdirSync(d, { recursive: true });
  let swaps = 0;
  const timer = setInterval(() => {
    try {
      renameSync(d, real);
      symlinkSync(outside, d);
      swaps++;
      setTimeout(() => {
        try {
          unlinkSync(d);
          renameSync(real, d);
        } catch {
          // the guest may have raced in; the next round retries
        }
      }, 1);
    } catch {
      // d missing (mid-swap): skip this round
    }
  }, 2);
  return () => {
    clearInterval(timer);
    return swaps;
  };
}

interface Run {
  result: GuestResult;
  swaps: number;
}

async function runSide(share: string, outside: string, shares: VirtiofsShare[], w: string, smallDir: string,
  log: () => string): Promise<Run> {
  const stop = startRacer(share, outside);
  const result = await runGuest({
    script: script(w, smallDir, shares.length > 1),
    virtiofs: shares,
    files: { '/posixsuite': readFileSync(toolBinary('posixsuite')) },
    timeoutMs: 240_000,
  }).finally(() => stop());
  const swaps = stop();
  assert.equal(result.exitCode, 0, `exit ${result.exitCode}\n--- output ---\n${result.output.slice(-6000)}\n--- console ---\n${result.consoleLog.slice(-3000)}\n--- server ---\n${log().slice(-3000)}`);
  assert.match(result.output, /SUITE-DONE/);
  return { result, swaps };
}

test('POSIX suite, escape attempts and ENOSPC on our passthrough share and on virtiofsd', { skip: kSkip, timeout: 600_000 }, async (t) => {
  const work = mkdtempSync(join(tmpdir(), 'nydus-pt-posix-'));
  const mounted: string[] = [];
  after(() => {
    for (const m of mounted) {
      try {
        execFileSync('umount', [m]);
      } catch {
        // already gone
      }
    }
    rmSync(work, { recursive: true, force: true });
  });
  const outside = join(work, 'outside');
  mkdirSync(outside);
  writeFileSync(join(outside, 'secret'), 'not yours\n');
  const dirs = Object.fromEntries(['ours', 'ref', 'ours-small', 'ref-small'].map((n) => [n, join(work, n)]));
  for (const d of Object.values(dirs)) mkdirSync(d);
  for (const n of ['ours-small', 'ref-small']) {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=8m', 'tmpfs', dirs[n] ?? '']);
    mounted.push(dirs[n] ?? '');
  }

  // Ours: one daemon, two API mounts (the share and the small tmpfs one), one guest.
  const apisock = join(work, 'api.sock');
  const vsock = join(work, 'vhost.sock');
  let d: RunningDaemon | undefined;
  let ours: Run;
  try {
    d = await startDaemon(['virtiofs', '--log-level', 'info', '--apisock', apisock, '--sock', vsock]);
    for (const [mp, src] of [['/containers', dirs['ours']], ['/small', dirs['ours-small']]]) {
      const m = await mountShare(apisock, mp ?? '', src ?? '');
      assert.equal(m.status, 204, m.text);
    }
    const daemon = d;
    ours = await runSide(dirs['ours'] ?? '', outside, [{ socket: vsock, tag: 'share' }],
      '/s/containers', '/s/small', () => daemon.log());
    // The daemon still answers its API after the guest filled a share.
    const info = await api(apisock, 'GET', '/api/v1/daemon');
    assert.equal(info.status, 200, info.text);
  } finally {
    if (d) {
      const code = await d.stop();
      assert.equal(code, 0, d.log().slice(-3000));
    }
  }
  t.diagnostic(`ours: guest ran ${ours.result.durationMs} ms, ${ours.swaps} host symlink swaps`);

  let v1: Virtiofsd | undefined;
  let v2: Virtiofsd | undefined;
  let ref: Run;
  try {
    v1 = await startVirtiofsd({ source: dirs['ref'] ?? '', socketPath: join(work, 'v1.sock'), cache: 'auto', extraArgs: ['-o', 'xattr'] });
    v2 = await startVirtiofsd({ source: dirs['ref-small'] ?? '', socketPath: join(work, 'v2.sock'), cache: 'auto', extraArgs: ['-o', 'xattr'] });
    const a = v1;
    ref = await runSide(dirs['ref'] ?? '', outside,
      [{ socket: v1.socket, tag: 'share' }, { socket: v2.socket, tag: 'small' }], '/s', '/t', () => a.log());
  } finally {
    await v1?.stop();
    await v2?.stop();
  }
  t.diagnostic(`virtiofsd: guest ran ${ref.result.durationMs} ms, ${ref.swaps} host symlink swaps`);

  // 1. The suite: every case gives Linux's answer on ours.
  const o = parseSuite(ours.result.output);
  const r = parseSuite(ref.result.output);
  assert.ok(o.size >= 150, `only ${o.size} suite cases ran on ours:\n${ours.result.output.slice(-4000)}`);
  const failed = [...o].filter(([, l]) => !l.ok).map(([n, l]) => `${n}: got ${l.got}, Linux gives ${l.want}`);
  assert.deepEqual(failed, [], 'cases where our share does not answer as Linux does');
  assert.match(ours.result.output, new RegExp(`PS-END ${o.size} 0`));
  // Where virtiofsd differs, the difference is known and explained.
  const diffs: string[] = [];
  for (const [n, l] of o) {
    const other = r.get(n);
    if (other?.got === l.got) continue;
    const line = `${n}: ours ${l.got}, virtiofsd ${other?.got ?? '(not run)'}`;
    diffs.push(n);
    if (kKnownDifferences[n]) t.diagnostic(`${line} — ${kKnownDifferences[n]}`);
  }
  assert.deepEqual(diffs.filter((n) => !kKnownDifferences[n]), [], 'unexplained differences from virtiofsd');
  for (const n of Object.keys(kKnownDifferences)) {
    if (!diffs.includes(n)) t.diagnostic(`${n}: listed as a known difference but both answered the same this run`);
  }

  // 2. Escapes: the directory outside both shares is exactly as it was.
  assert.deepEqual(readdirSync(outside), ['secret']);
  assert.equal(readFileSync(join(outside, 'secret'), 'utf8'), 'not yours\n');
  for (const run of [ours, ref]) {
    assert.match(run.result.output, /ESC-DONE/);
    assert.match(run.result.output, /ESC rename_up_past_root EXDEV/);
    // Symlinks pointing out resolve in the guest's namespace (no /host-outside there), never on the host.
    assert.match(run.result.output, /ESC abs_create ENOENT/);
    assert.match(run.result.output, /ESC rel_create ENOENT/);
    assert.match(run.result.output, /ESC race_creates \d+\/200/);
    assert.ok(run.swaps > 0, 'the host racer swapped at least once');
  }

  // 3. ENOSPC: the writer sees ENOSPC (at write or at fsync), never EIO; the rest survives.
  for (const [name, run, small] of [['ours', ours, dirs['ours-small']], ['virtiofsd', ref, dirs['ref-small']]] as const) {
    const fill = /FILL write=(\S+) bytes=(\d+) fsync=(\S+) close=(\S+)/.exec(run.result.output);
    assert.ok(fill, `${name}: no FILL line`);
    t.diagnostic(`${name}: ${fill[0]}`);
    assert.ok(fill[1] === 'ENOSPC' || fill[3] === 'ENOSPC', `${name}: the writer must see ENOSPC: ${fill[0]}`);
    assert.ok(![fill[1], fill[3], fill[4]].includes('EIO'), `${name}: EIO instead of ENOSPC: ${fill[0]}`);
    assert.match(run.result.output, /KEEP keep-me/);
    assert.match(run.result.output, /AFTER after/);
    assert.equal(readFileSync(join(small ?? '', 'keep'), 'utf8'), 'keep-me\n');
    assert.equal(readFileSync(join(small ?? '', 'after'), 'utf8'), 'after\n');
  }
});
