/**
 * Independent checks of RAFS v6 output with EROFS tools: export to one raw disk, then either
 * `fsck.erofs --extract` (erofs-utils; it needs each blob device as a separate file, sliced out
 * of the disk at its mapped_blkaddr) or a read-only loop mount by the host kernel (root only).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, readSync, writeSync } from 'node:fs';
import { join } from 'node:path';

import { exportBlockImage } from '../../src/rafs/export/block.js';
import { V6Peek } from './v6-peek.js';

export interface ExportedDisk {
  disk: string;
  /** One file per blob device, for fsck.erofs --device (erofs-utils has no flat-disk mode). */
  devices: string[];
}

export function exportDisk(bootstrap: string, blobDir: string, outDir: string): ExportedDisk {
  const disk = join(outDir, 'disk.img');
  exportBlockImage({ bootstrap, blobDir, output: disk, verity: false });
  const peek = new V6Peek(readFileSync(bootstrap));
  const devices: string[] = [];
  const fd = openSync(disk, 'r');
  try {
    for (let i = 0; i < peek.extraDevices; i++) {
      const { blocks, mappedBlkaddr } = peek.device(i);
      const buf = Buffer.alloc(blocks * 4096);
      let got = 0;
      while (got < buf.length) got += readSync(fd, buf, got, buf.length - got, mappedBlkaddr * 4096 + got);
      const path = join(outDir, `device-${i}.img`);
      const out = openSync(path, 'w');
      writeSync(out, buf);
      closeSync(out);
      devices.push(path);
    }
  } finally {
    closeSync(fd);
  }
  return { disk, devices };
}

export function fsckAvailable(): string | false {
  return spawnSync('fsck.erofs', ['-V']).status === 0 ? false : 'fsck.erofs (erofs-utils) is not installed';
}

/** Runs fsck.erofs (full data check) and extracts the tree into `into`; throws with its output. */
export function fsckExtract(d: ExportedDisk, into: string): void {
  const args = [...d.devices.map((p) => `--device=${p}`), `--extract=${into}`, d.disk];
  const r = spawnSync('fsck.erofs', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`fsck.erofs ${args.join(' ')} failed (${r.status}): ${r.stdout}${r.stderr}`);
}

/** Why loop mounts cannot run here, or false when they can (root, erofs in /proc/filesystems). */
export function loopMountSkip(): string | false {
  if (process.getuid?.() !== 0) return 'loop mounts need root';
  try {
    if (!/\berofs\b/.test(readFileSync('/proc/filesystems', 'utf8'))) return 'the host kernel has no erofs';
  } catch {
    return 'no /proc/filesystems';
  }
  return false;
}

/** Mounts `disk` read-only through a loop device, runs `fn`, always unmounts. */
export async function withLoopMount<T>(disk: string, mnt: string, fn: (dir: string) => Promise<T> | T): Promise<T> {
  mkdirSync(mnt, { recursive: true });
  execFileSync('mount', ['-t', 'erofs', '-o', 'loop,ro', disk, mnt], { stdio: ['ignore', 'ignore', 'pipe'] });
  try {
    return await fn(mnt);
  } finally {
    execFileSync('umount', [mnt]);
  }
}
