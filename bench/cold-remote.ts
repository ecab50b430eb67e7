/**
 * Cold reads through the network backends on loopback, against the same cold reads through
 * localfs, measured in the same run and rotating who goes first every repetition:
 * - registry: Debian's docker-registry (anonymous, filesystem storage) holds each cold image's
 *   blob;
 * - http-proxy: nginx serves the blob directories (a fast static server: these rows show what
 *   our HTTP client layer itself costs, where the registry rows include docker-registry's own
 *   serving speed).
 * Ours reads every file once with an empty cache, a fresh daemon and cache per file (the same
 * driver runs as the localfs cold rows: 1 MiB READs, qd 1 on cold-a, qd 16 on cold-b). Target:
 * within 10% of localfs. The note gives the TCP connections the daemons opened for both files
 * (from their own logs at stop).
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';

import { freePort, pushBlob, startNginx, startRegistry, which } from '../test/helpers/remote-servers.js';
import type { ColdImage } from './lib/fixture.js';
import { kColdFiles } from './lib/fixture.js';
import { driverJson, progress } from './lib/proc.js';
import type { Row } from './lib/report.js';
import type { OursImage } from './lib/servers.js';
import { startOurs } from './lib/servers.js';
import { boundClient, kBoundCases, rangedGetMBps } from './lib/server-bound.js';
import type { DriverResult, RawRecord } from './warm.js';

const kRepo = 'bench/cold';

/** Why the registry rows cannot run here, or false. */
export function registrySkip(): string | false {
  if (!which('docker-registry')) return 'docker-registry not found (apt-get install docker-registry)';
  return which('nginx') ? false : 'nginx not found (apt-get install nginx)';
}

interface Side {
  name: 'localfs' | 'registry' | 'http-proxy';
  image: (img: ColdImage, cacheDir: string) => OursImage;
}

export async function measureColdRegistry(workDir: string, images: readonly ColdImage[], reps: number, raw: RawRecord[]): Promise<Row[]> {
  const reg = await startRegistry(join(workDir, 'registry'), join(workDir, 'registry-store'), { kind: 'none' });
  const port = await freePort();
  const locations = images.map((img) => `location /${img.compressor}/ { alias ${img.blobDir}/; }`).join('\n');
  const ng = await startNginx(join(workDir, 'nginx'), `server { listen 127.0.0.1:${port}; ${locations} location = /ping { return 200; } }`, { url: `http://127.0.0.1:${port}/ping` });
  const client = await boundClient();
  try {
    for (const img of images) {
      // nydus-image names each blob by its sha256, the digest the registry stores it under.
      for (const f of readdirSync(img.blobDir).filter((x) => /^[0-9a-f]{64}$/.test(x))) await pushBlob(reg.url, kRepo, f, readFileSync(join(img.blobDir, f)));
    }
    const sides: Side[] = [
      { name: 'localfs', image: (img, cacheDir) => ({ bootstrap: img.bootstrap, blobDir: img.blobDir, cacheDir }) },
      {
        name: 'registry',
        image: (img, cacheDir) => ({
          bootstrap: img.bootstrap,
          blobDir: img.blobDir,
          cacheDir,
          backend: { type: 'registry', config: { scheme: 'http', host: `127.0.0.1:${reg.port}`, repo: kRepo } },
        }),
      },
      {
        name: 'http-proxy',
        image: (img, cacheDir) => ({
          bootstrap: img.bootstrap,
          blobDir: img.blobDir,
          cacheDir,
          backend: { type: 'http-proxy', config: { addr: `http://127.0.0.1:${port}`, path: `/${img.compressor}` } },
        }),
      },
    ];
    // The servers' own speed, measured every repetition on the largest blob (INFO rows).
    const big = images
      .flatMap((img) => readdirSync(img.blobDir).filter((x) => /^[0-9a-f]{64}$/.test(x)).map((id) => ({ img, id, size: statSync(join(img.blobDir, id)).size })))
      .sort((a, b) => b.size - a.size)[0];
    const bound = new Map<string, number[]>();
    const measureBound = async (): Promise<void> => {
      if (!big) return;
      const urls = {
        registry: new URL(`${reg.url}/v2/${kRepo}/blobs/sha256:${big.id}`),
        'http-proxy': new URL(`http://127.0.0.1:${port}/${big.img.compressor}/${big.id}`),
      };
      for (const c of kBoundCases) {
        for (const [server, url] of Object.entries(urls)) {
          const v = await rangedGetMBps(client, url, big.size, c);
          bound.set(`${server}-${c.id}`, [...(bound.get(`${server}-${c.id}`) ?? []), v]);
          progress(`server bound ${server.padEnd(10)} ${c.label}: ${Math.round(v)} MB/s`);
        }
      }
    };
    const mbps = new Map<string, number[]>();
    const conns = new Map<string, number[]>();
    const push = (m: Map<string, number[]>, k: string, v: number): void => void m.set(k, [...(m.get(k) ?? []), v]);
    for (let rep = 0; rep < reps; rep++) {
      await measureBound();
      for (const img of images) {
        for (const side of [...sides.slice(rep % sides.length), ...sides.slice(0, rep % sides.length)]) {
          // A fresh daemon and cache per file: readahead past the end of cold-a would otherwise
          // warm the start of cold-b (both files share one blob) and flatter the qd16 row.
          let opened = 0;
          for (const [file, qd] of [[kColdFiles[0], 1], [kColdFiles[1], 16]] as const) {
            const cacheDir = mkdtempSync(join(workDir, `cold-${side.name}-${img.compressor}-`));
            const s = await startOurs(workDir, side.image(img, cacheDir));
            try {
              const r = await driverJson<DriverResult>(s.socket, ['bench', 'read', '--path', file, '--size', '1M', '--qd', String(qd), '--passes', '1']);
              const key = `${side.name}-${img.compressor}-qd${qd}`;
              push(mbps, key, r.mb_per_s ?? Number.NaN);
              raw.push({ phase: 'cold-registry', id: key, side: 'ours', rep, result: r });
              progress(`cold ${rep + 1}/${reps} ${side.name.padEnd(8)} ${img.compressor.padEnd(9)} qd${String(qd).padEnd(2)} ${Math.round(r.mb_per_s ?? 0)} MB/s`);
            } finally {
              await s.stop();
              rmSync(cacheDir, { recursive: true, force: true });
            }
            const m = /backend (?:registry|http-proxy): (\d+) connection\(s\) opened/.exec(s.log());
            opened += m ? Number(m[1]) : Number.NaN;
          }
          if (side.name !== 'localfs') push(conns, `${side.name}-${img.compressor}`, opened);
        }
      }
    }
    const rows: Row[] = [];
    for (const remote of ['registry', 'http-proxy'] as const) {
      for (const img of images) {
        for (const qd of [1, 16]) {
          const c = conns.get(`${remote}-${img.compressor}`) ?? [];
          rows.push({
            id: `cold-${remote === 'registry' ? 'registry' : 'http'}-${img.compressor}-qd${qd}.mbps`,
            group: remote === 'registry'
              ? 'cold reads through the registry (docker-registry on loopback, empty cache) vs the same through localfs'
              : 'cold reads through http-proxy (nginx on loopback, empty cache) vs the same through localfs',
            label: `${remote} ${img.compressor} qd${qd}`,
            unit: 'MB/s',
            ours: { name: remote, values: mbps.get(`${remote}-${img.compressor}-qd${qd}`) ?? [] },
            ref: { name: 'localfs', values: mbps.get(`localfs-${img.compressor}-qd${qd}`) ?? [] },
            target: { kind: 'ratio-min', value: 0.9 },
            note: `TCP connections per daemon (both files): ${c.map(String).join('/')}`,
          });
        }
      }
    }
    for (const remote of ['registry', 'http-proxy'] as const) {
      for (const c of kBoundCases) {
        rows.push({
          id: `cold-bound-${remote === 'registry' ? 'registry' : 'nginx'}-${c.id}.mbps`,
          group: 'what the servers serve on loopback (the bench process, same HTTP client; no cache, no decode)',
          label: `${remote === 'registry' ? 'docker-registry' : 'nginx'} ${c.label}`,
          unit: 'MB/s',
          ours: { name: remote === 'registry' ? 'docker-registry' : 'nginx', values: bound.get(`${remote}-${c.id}`) ?? [] },
        });
      }
    }
    return rows;
  } finally {
    await client.close();
    await ng.stop();
    await reg.stop();
  }
}
