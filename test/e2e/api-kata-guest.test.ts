/**
 * Kata Containers' use of nydusd, played exactly (reference/clients.md §1): the daemon started
 * as `nydusd virtiofs --log-level info --apisock A --sock S` (no config, no bootstrap), readiness
 * polled on GET /api/v1/daemon (kata-rs sends Content-Type on every request), the sandbox share
 * mounted at /containers (passthrough_fs, beside the images on the same connection), then each
 * container image at /rafs/<cid>/lowerdir — kata-go with a raw query, kata-rs with %2F — while a
 * QEMU guest mounts the share (tag kataShared) and reads both images. One is DELETEd while the
 * guest runs: the guest sees it go and still reads the other; then the other goes too and the
 * daemon stops on SIGTERM, as Kata stops it.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';

import { guestAvailable, runGuest } from '../../qemu/guest.js';
import type { RunningDaemon } from '../helpers/daemon.js';
import { startDaemon } from '../helpers/daemon.js';
import { api, keepAliveAgent, makeImage, mountBody } from '../helpers/api.js';
import { pseudoRandom } from '../helpers/mem-fuse-fs.js';

const kSkip = process.getuid?.() !== 0 ? 'needs root' : guestAvailable();
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

const kGuestScript = `
set -e
S=/run/kata-containers/shared
mkdir -p $S
mount -t virtiofs kataShared $S
ls $S/rafs
sha256sum $S/rafs/c1/lowerdir/app/one.bin $S/rafs/c2/lowerdir/app/two.bin
echo READ-BOTH
# The host DELETEs c1 once it saw these reads; its files then fail with an errno.
i=0
while cat $S/rafs/c1/lowerdir/app/one.bin > /dev/null 2>&1; do
  i=$((i+1)); if [ $i -gt 900 ]; then echo "c1 never went away"; exit 3; fi
  sleep 0.2
done
echo C1-GONE
ls $S/rafs/c1/lowerdir | wc -l
echo 3 > /proc/sys/vm/drop_caches
sha256sum $S/rafs/c2/lowerdir/app/two.bin
echo STILL-READS-C2
`;

test('Kata: readiness, passthrough share, two container images, DELETE one while the guest reads the other', { skip: kSkip, timeout: 300_000 }, async (t) => {
  const work = mkdtempSync(join(tmpdir(), 'nydus-kata-'));
  after(() => rmSync(work, { recursive: true, force: true }));
  const one = pseudoRandom(700_000, 11);
  const two = pseudoRandom(900_000, 12);
  const c1 = await makeImage(join(work, 'c1'), { 'app/one.bin': one, 'etc/name': 'c1\n' });
  const c2 = await makeImage(join(work, 'c2'), { 'app/two.bin': two, 'etc/name': 'c2\n' });
  const apisock = join(work, 'nydusd-api.sock');
  const vsock = join(work, 'vhost-fs.sock');
  let d: RunningDaemon | undefined;
  try {
    d = await startDaemon(['virtiofs', '--log-level', 'info', '--apisock', apisock, '--sock', vsock]);
    const daemon = d;
    // kata-go: 20 attempts 20 ms apart, HTTP status not checked; kata-rs: Content-Type on GET.
    const states: string[] = [];
    for (let i = 0; i < 20 && states.at(-1) !== 'RUNNING'; i++) {
      try {
        const r = await api(apisock, 'GET', '/api/v1/daemon', { headers: { 'Content-Type': 'application/json' } });
        assert.equal(r.status, 200);
        const info = r.json() as { state: string; version: Record<string, unknown> };
        for (const k of ['package_ver', 'git_commit', 'build_time', 'profile', 'rustc']) assert.equal(typeof info.version[k], 'string', k);
        states.push(info.state);
      } catch {
        await new Promise((r) => setTimeout(r, 20));
      }
    }
    assert.deepEqual(states, ['RUNNING'], 'RUNNING as soon as the API socket answers');
    const agent = keepAliveAgent();
    const post = (q: string, body: string): ReturnType<typeof api> => api(apisock, 'POST', `/api/v1/mount?mountpoint=${q}`, { body, agent, headers: { 'Content-Type': 'application/json' } });
    const del = (q: string): ReturnType<typeof api> => api(apisock, 'DELETE', `/api/v1/mount?mountpoint=${q}`, { agent, headers: { 'Content-Type': 'application/json' } });
    const share = await post('/containers', JSON.stringify({ fs_type: 'passthrough_fs', source: work, config: '' }));
    assert.equal(share.status, 204, share.text);
    // What nydus-snapshotter writes into Kata's extraoption (FuseDaemonConfig, v1, device.id).
    const cfg = (img: typeof c1, id: string): string =>
      JSON.stringify({
        device: { id, backend: { type: 'localfs', config: { dir: img.blobDir } }, cache: { type: 'blobcache', config: { work_dir: join(work, 'cache') } } },
        mode: 'direct',
        digest_validate: false,
        iostats_files: false,
        enable_xattr: true,
        fs_prefetch: { enable: true, threads_count: 8, merging_size: 1048576, prefetch_all: true },
      });
    assert.equal((await post('/rafs/c1/lowerdir', mountBody(c1.bootstrap, cfg(c1, '/snap-1')))).status, 204);
    assert.equal((await post('%2Frafs%2Fc2%2Flowerdir', mountBody(c2.bootstrap, cfg(c2, '/snap-2')))).status, 204);

    const guest = runGuest({ script: kGuestScript, virtiofs: [{ socket: vsock, tag: 'kataShared' }], timeoutMs: 240_000 });
    // The guest read both images when their metrics say so; then container c1 is removed.
    const dataRead = async (id: string): Promise<number> => {
      const r = await api(apisock, 'GET', `/api/v1/metrics?id=${encodeURIComponent(id)}`, { agent });
      return r.status === 200 ? (r.json() as { data_read: number }).data_read : -1;
    };
    let seen = false;
    for (let i = 0; i < 2400 && !seen; i++) {
      seen = (await dataRead('/rafs/c1/lowerdir')) >= one.length && (await dataRead('/rafs/c2/lowerdir')) >= two.length;
      if (!seen) await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(seen, `the guest did not read both images:\n${daemon.log().slice(-3000)}`);
    const blobcache = (await api(apisock, 'GET', '/api/v1/metrics/blobcache?id=%2Fsnap-2', { agent })).json() as { total: number };
    assert.ok(blobcache.total > 0, 'READs went through the blob cache of c2');
    assert.equal((await del('/rafs/c1/lowerdir')).status, 204);

    const r = await guest;
    const out = r.output;
    assert.equal(r.exitCode, 0, `exit ${r.exitCode}\n--- output ---\n${out}\n--- console ---\n${r.consoleLog.slice(-3000)}\n--- daemon ---\n${daemon.log().slice(-4000)}`);
    assert.ok(out.includes(`${sha(one)}  /run/kata-containers/shared/rafs/c1/lowerdir/app/one.bin`), out);
    assert.ok(out.includes(`${sha(two)}  /run/kata-containers/shared/rafs/c2/lowerdir/app/two.bin`), out);
    assert.match(out, /C1-GONE\s+0\s/, 'after DELETE the mountpoint is an empty pseudo directory');
    assert.match(out, new RegExp(`STILL-READS-C2`));
    assert.equal(out.split(sha(two)).length - 1, 2, 'c2 read twice, the second after c1 was removed');
    assert.equal((await del('%2Frafs%2Fc2%2Flowerdir')).status, 204);
    assert.equal((await del('/rafs/c2/lowerdir')).status, 500, 'a second DELETE: doesn\'t exist');
    agent.destroy();
    const t0 = performance.now();
    assert.equal(await daemon.stop(5000), 0, daemon.log().slice(-3000));
    t.diagnostic(`SIGTERM to exit: ${(performance.now() - t0).toFixed(0)} ms (Kata sends SIGKILL after 5000 ms)`);
    d = undefined;
  } finally {
    await d?.stop();
  }
});
