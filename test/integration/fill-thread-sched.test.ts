/**
 * The scheduling policy of the cache-fill threads (native/core/common/thread_sched.h): each
 * nydus-fill thread asks the kernel for the long bulk slice, so the woken event loop preempts it;
 * policy and nice stay the process's (no starvation, no stranded locks), and the event loop's own
 * thread is left as it was. Read back from /proc, as the kernel applies it.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';

import { CompressAlgo, DigestAlgo, fill, openChunkMap } from '../../src/native/index.js';
import { threadsNamed } from '../helpers/proc-threads.js';
import { buildBlob } from '../helpers/storage-fixtures.js';

/** thread_sched.h kBulkSliceNs. */
const kBulkSliceNs = 4_000_000;

const tmpRoot = mkdtempSync(join(tmpdir(), 'nydus-fill-sched-'));
after(() => rmSync(tmpRoot, { recursive: true, force: true }));

interface Sched {
  policy: number;
  nice: number;
  sliceNs: number | undefined;
}

/** A thread's policy and nice (/proc stat fields 41 and 19) and slice (/proc sched, Linux 6.6+). */
function threadSched(tid: string): Sched {
  const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
  // Fields after the parenthesised command name, which may itself hold spaces.
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const slice = /^se\.slice\s*:\s*(\d+)$/m.exec(readFileSync(`/proc/self/task/${tid}/sched`, 'utf8'));
  return { policy: Number(f[38]), nice: Number(f[16]), sliceNs: slice ? Number(slice[1]) : undefined };
}

/** sched_attr.sched_runtime for SCHED_OTHER threads arrived in Linux 6.12. */
function kernelHasCustomSlices(): boolean {
  const [major = 0, minor = 0] = readFileSync('/proc/sys/kernel/osrelease', 'utf8').split('.').map((x) => Number.parseInt(x, 10));
  return major * 1000 + minor >= 6012;
}

test('fill threads run with the long bulk slice and the process policy and nice; the event loop thread is unchanged', { skip: !existsSync('/proc/self/sched') && 'needs /proc/<pid>/sched' }, async () => {
  const loop = String(process.pid);
  const before = threadSched(loop);
  // A fill makes sure the pool's threads exist (they start on first use).
  const sb = buildBlob({ sizes: [1 << 20, 1 << 20], compressor: 'zstd' });
  const dir = join(tmpRoot, 'fill');
  mkdirSync(dir);
  const map = openChunkMap(join(dir, 'blob.data.chunk_map'), sb.info.chunkCount);
  const fh = await open(join(dir, 'blob.data'), 'w+');
  try {
    const chunks = sb.chunks.map((c) => ({
      srcOffset: c.compressedOffset, storedSize: c.compressedSize, fileOffset: c.uncompressedOffset,
      size: c.uncompressedSize, compressed: c.compressed, index: c.chunkIndex, digest: c.digest, compressedOffset: c.compressedOffset,
    }));
    const out = await fill({ algo: CompressAlgo.Zstd, digester: DigestAlgo.Blake3, validate: true, src: sb.blob, chunks, fd: fh.fd, map, allowSpill: false });
    assert.equal(out.storeError, 0);
  } finally {
    await fh.close();
    map.close();
  }
  const tids = threadsNamed('nydus-fill');
  assert.ok(tids.length >= 2, `fill threads: ${tids.join(', ')}`);
  for (const t of tids) {
    const s = threadSched(t);
    assert.equal(s.policy, before.policy, `thread ${t} policy`);
    assert.equal(s.nice, before.nice, `thread ${t} nice`);
    // Kernels before 6.12 have no custom slices: the thread runs as before, nothing to check.
    if (kernelHasCustomSlices()) assert.equal(s.sliceNs, kBulkSliceNs, `thread ${t} slice`);
  }
  if (kernelHasCustomSlices()) assert.notEqual(before.sliceNs, kBulkSliceNs);
  assert.deepEqual(threadSched(loop), before, 'the event loop thread keeps its scheduling');
});
