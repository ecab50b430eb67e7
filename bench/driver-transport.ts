/**
 * Transport benchmark: the frontend driver (playing QEMU 7.2 + a Linux guest) reads a 64 MiB
 * file through
 *   - our vhost-user backend with the test FUSE responder (chains handled inline),
 *   - QEMU's C virtiofsd (cache=auto, page cache warm),
 * at 4 KiB and 1 MiB READs, queue depth 1 and 16. Prints ops/s, MB/s, mean latency and backend
 * CPU per request, and the ratios to virtiofsd measured in the same run.
 *
 *   node dist/bench/driver-transport.js [--seconds 5] [--json]
 *
 * The test responder answers READ from memory; virtiofsd preads from the page cache: both are a
 * copy into guest memory, so the comparison is about the transport and request path.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import type { Backend } from '../test/integration/driver-harness.js';
import { driverJson, startTestd, startVirtiofsd, tempDir, virtiofsdSkip } from '../test/integration/driver-harness.js';

interface BenchResult {
  ops_per_s: number;
  mb_per_s: number;
  latency_us: { avg: number; p50: number; p99: number };
  server_cpu_us_per_op?: number;
  driver_cpu_us_per_op: number;
  errors: number;
}

const argv = process.argv.slice(2);
const seconds = Number(argv[argv.indexOf('--seconds') + 1] ?? '5') || 5;
const asJson = argv.includes('--json');

const work = tempDir('nydus-bench-transport-');
const src = join(work.path, 'src');
mkdirSync(src);
writeFileSync(join(src, 'data.bin'), randomBytes(64 << 20));

const kCases = [
  { size: '4K', qd: 1 }, { size: '4K', qd: 16 }, { size: '1M', qd: 1 }, { size: '1M', qd: 16 },
];

async function measure(start: () => Promise<Backend>, size: string, qd: number): Promise<BenchResult> {
  const b = await start();
  try {
    return await driverJson<BenchResult>(b.socket,
      ['bench', 'read', '--path', '/data.bin', '--size', size, '--qd', String(qd), '--seconds', String(seconds)]);
  } finally {
    await b.stop();
  }
}

const backends: { name: string; start: () => Promise<Backend> }[] = [
  { name: 'nydus inline', start: () => startTestd(work.path, src) },
];
if (virtiofsdSkip() === false) backends.push({ name: 'virtiofsd', start: () => startVirtiofsd(work.path, src) });

const rows: { backend: string; size: string; qd: number; r: BenchResult }[] = [];
try {
  for (const c of kCases) {
    for (const b of backends) rows.push({ backend: b.name, size: c.size, qd: c.qd, r: await measure(b.start, c.size, c.qd) });
  }
} finally {
  work.remove();
}

if (asJson) {
  process.stdout.write(`${JSON.stringify(rows)}\n`);
} else {
  const fmt = (n: number | undefined, d = 1): string => (n === undefined ? '-' : n.toFixed(d));
  process.stdout.write('backend        read  qd      ops/s     MB/s  lat avg us  srv CPU us/op  drv CPU us/op  vs virtiofsd\n');
  for (const row of rows) {
    const ref = rows.find((x) => x.backend === 'virtiofsd' && x.size === row.size && x.qd === row.qd);
    const ratio = ref ? `${(row.r.ops_per_s / ref.r.ops_per_s).toFixed(2)}x` : '-';
    process.stdout.write(`${row.backend.padEnd(14)} ${row.size.padStart(4)} ${String(row.qd).padStart(3)} ` +
      `${fmt(row.r.ops_per_s, 0).padStart(10)} ${fmt(row.r.mb_per_s).padStart(8)} ${fmt(row.r.latency_us.avg).padStart(11)} ` +
      `${fmt(row.r.server_cpu_us_per_op, 2).padStart(14)} ${fmt(row.r.driver_cpu_us_per_op, 2).padStart(14)} ` +
      `${ratio.padStart(12)}${row.r.errors > 0 ? `  (${row.r.errors} errors)` : ''}\n`);
  }
}
