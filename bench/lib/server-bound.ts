/**
 * What a blob server on loopback can serve, measured from the bench process with the same HTTP
 * client the daemon uses (undici through HttpClient): back-to-back ranged GETs of one blob at a
 * fixed size, `qd` in flight. The cold-registry rows compare against these to tell the server's
 * share of a gap from ours.
 */
import { HttpClient } from '../../src/storage/http/client.js';

export interface BoundCase {
  id: string;
  label: string;
  requestBytes: number;
  qd: number;
}

export const kBoundCases: readonly BoundCase[] = [
  { id: 'get1m-qd1', label: 'ranged GETs of 1 MiB, qd1', requestBytes: 1 << 20, qd: 1 },
  { id: 'get4m-qd1', label: 'ranged GETs of 4 MiB, qd1', requestBytes: 4 << 20, qd: 1 },
  { id: 'get1m-qd16', label: 'ranged GETs of 1 MiB, qd16', requestBytes: 1 << 20, qd: 16 },
];

/** MB/s (10^6) of ranged GETs over the first `maxBytes` of the blob at `url` (`size` bytes). */
export async function rangedGetMBps(client: HttpClient, url: URL, size: number, c: BoundCase, maxBytes = 48 << 20): Promise<number> {
  const n = Math.max(1, Math.floor(Math.min(size, maxBytes) / c.requestBytes));
  let next = 0;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: c.qd }, async () => {
    for (let i = next++; i < n; i = next++) {
      const off = i * c.requestBytes;
      const res = await client.request({ method: 'GET', url, headers: { range: `bytes=${off}-${off + c.requestBytes - 1}` }, maxBody: c.requestBytes });
      if (res.status !== 206 || res.body.length !== c.requestBytes) throw new Error(`GET ${url.pathname} bytes ${off}+${c.requestBytes}: HTTP ${res.status}, ${res.body.length} bytes`);
    }
  }));
  return (n * c.requestBytes) / ((performance.now() - t0) * 1000);
}

export function boundClient(): Promise<HttpClient> {
  return HttpClient.create({ timeoutMs: 30_000, connectTimeoutMs: 5_000 });
}
