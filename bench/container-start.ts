/**
 * Container start over a registry behind a 200 Mbit/s link (issue 13): a Debian rootfs image
 * (debootstrap minbase, built with our nydus-image) in docker-registry; each start runs in a
 * network namespace of its own whose loopback `tc tbf` shapes to the link rate, with the
 * registry and nydusd inside (container-start-child.ts). The container start chroots into the
 * FUSE mount and runs dpkg-query, apt-get --version, perl and ls -l /usr/bin.
 *
 * Rows (ratios of medians against "download every blob through the same link, then start",
 * measured in the same run, the order of the variants rotating every repetition):
 *  - lazy from an empty cache: target <= 0.35x;
 *  - with the readahead log of a first start (the rest of its cache removed): target <= 0.2x.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';

import { binDir, projectRoot } from '../test/helpers/paths.js';
import { pushBlob, startRegistry, which } from '../test/helpers/remote-servers.js';
import { debianRootfs } from '../test/helpers/rootfs.js';
import type { ChildArgs, ChildResult, Variant } from './container-start-child.js';
import { exec, progress } from './lib/proc.js';
import type { Row } from './lib/report.js';
import type { RawRecord } from './warm.js';

const kRateMbit = 200;
const kRepo = 'bench/rootfs';
const kVariants: readonly Variant[] = ['download', 'lazy', 'readahead'];

/** Why the container-start rows cannot run here, or false. */
export function containerStartSkip(): string | false {
  if (process.getuid?.() !== 0) return 'needs root (network namespaces, tc, FUSE, chroot)';
  if (!existsSync('/dev/fuse')) return '/dev/fuse is missing';
  for (const [bin, pkg] of [['docker-registry', 'docker-registry'], ['tc', 'iproute2'], ['ip', 'iproute2'], ['unshare', 'util-linux'], ['curl', 'curl'], ['chroot', 'coreutils']] as const) {
    if (!which(bin)) return `${bin} not found (apt-get install ${pkg})`;
  }
  return false;
}

async function buildRootfsImage(work: string): Promise<{ bootstrap: string; blobDir: string; blobIds: string[]; rootfsBytes: number }> {
  const rootfs = debianRootfs();
  if ('unavailable' in rootfs) throw new Error(`no Debian rootfs: ${rootfs.unavailable}`);
  const blobDir = join(work, 'rootfs-image');
  mkdirSync(blobDir, { recursive: true });
  const bootstrap = join(blobDir, 'image.boot');
  progress(`container start: nydus-image create of the Debian rootfs ${rootfs.dir}`);
  const r = await exec(process.execPath, [join(binDir, 'nydus-image'), 'create', '--compressor', 'zstd', '-B', bootstrap, '-D', blobDir, rootfs.dir], 900_000);
  if (r.status !== 0) throw new Error(`nydus-image create failed: ${r.stderr.trim()}`);
  const du = await exec('du', ['-sb', rootfs.dir]);
  const blobIds = readdirSync(blobDir).filter((f) => /^[0-9a-f]{64}$/.test(f));
  return { bootstrap, blobDir, blobIds, rootfsBytes: Number(du.stdout.split('\t')[0]) };
}

async function runChild(a: ChildArgs): Promise<ChildResult> {
  const child = join(projectRoot, 'dist', 'bench', 'container-start-child.js');
  const r = await exec('unshare', ['--net', '--', process.execPath, child, JSON.stringify(a)], 900_000);
  if (r.status !== 0) throw new Error(`container start (${a.variant}) failed: ${r.stderr.trim().slice(-3000)}`);
  return JSON.parse(r.stdout.trim().split('\n').at(-1) ?? '{}') as ChildResult;
}

export async function measureContainerStart(workDir: string, reps: number, raw: RawRecord[]): Promise<Row[]> {
  const work = join(workDir, 'container-start');
  mkdirSync(work, { recursive: true });
  const img = await buildRootfsImage(work);
  const store = join(work, 'registry-store');
  const reg = await startRegistry(join(work, 'registry-push'), store, { kind: 'none' });
  let blobBytes = 0;
  try {
    for (const id of img.blobIds) {
      const data = readFileSync(join(img.blobDir, id));
      blobBytes += data.length;
      await pushBlob(reg.url, kRepo, id, data);
    }
  } finally {
    await reg.stop();
  }
  const results = new Map<Variant, ChildResult[]>(kVariants.map((v) => [v, []]));
  for (let rep = 0; rep < reps; rep++) {
    for (const variant of [...kVariants.slice(rep % kVariants.length), ...kVariants.slice(0, rep % kVariants.length)]) {
      const dir = join(work, `run-${rep}-${variant}`);
      mkdirSync(dir, { recursive: true });
      try {
        const res = await runChild({ variant, work: dir, bootstrap: img.bootstrap, blobIds: img.blobIds, registryStore: store, repo: kRepo, rateMbit: kRateMbit });
        results.get(variant)?.push(res);
        raw.push({ phase: 'container-start', id: variant, side: variant === 'download' ? 'ref' : 'ours', rep, result: res });
        progress(`container start ${rep + 1}/${reps} ${variant.padEnd(9)} ${Math.round(res.ms)} ms (${(res.bytes / 1048576).toFixed(1)} MiB in ${res.reads} request(s) over the link, ${res.misses} read misses)`);
        progress(`  timeline (ms): ${res.timeline.map(([e, t]) => `${e} ${Math.round(t)}`).join(', ')}`);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }
  }
  const ms = (v: Variant): number[] => (results.get(v) ?? []).map((r) => r.ms);
  const mib = (v: Variant): string => (results.get(v) ?? []).map((r) => (r.bytes / 1048576).toFixed(1)).join('/');
  const group = `container start over a registry behind a ${kRateMbit} Mbit/s link (tc tbf in a network namespace; chroot + dpkg-query, apt-get --version, perl, ls -l /usr/bin through FUSE)`;
  const ref = { name: 'download+start', values: ms('download') };
  const link = `image ${(blobBytes / 1048576).toFixed(1)} MiB compressed (rootfs ${(img.rootfsBytes / 1048576).toFixed(0)} MiB); download+start fetched ${mib('download')} MiB`;
  return [
    {
      id: 'container-start-lazy.ms',
      group,
      label: 'lazy, empty cache',
      unit: 'ms',
      ours: { name: 'lazy', values: ms('lazy') },
      ref,
      target: { kind: 'ratio-max', value: 0.35 },
      note: `${link}; lazy fetched ${mib('lazy')} MiB`,
    },
    {
      id: 'container-start-readahead.ms',
      group,
      label: 'readahead log of a first start',
      unit: 'ms',
      ours: { name: 'readahead', values: ms('readahead') },
      ref,
      target: { kind: 'ratio-max', value: 0.2 },
      note: `readahead fetched ${mib('readahead')} MiB, read misses left ${(results.get('readahead') ?? []).map((r) => r.misses).join('/')}`,
    },
  ];
}
