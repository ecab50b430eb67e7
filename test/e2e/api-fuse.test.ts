/**
 * The API on a FUSE daemon, as the seed document and nydus' own smoke tests use it:
 * `nydusd --apisock A --config C --mountpoint M` without a bootstrap, then images mounted with
 * curl (the seed's "Mount Bootstrap Via API" and "Multiple Pseudo Mounts" examples), nested
 * mountpoints stat-able after a remount, umount visible to `ls` (FUSE invalidation), metrics
 * counting what was read, and 300 mount/umount cycles while an idle raw connection (the
 * snapshotter's liveness probe) stays open, with fds and memory sampled. Needs root, /dev/fuse
 * and curl.
 */
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';

import type { RunningDaemon } from '../helpers/daemon.js';
import { startDaemon } from '../helpers/daemon.js';
import { binDir } from '../helpers/paths.js';
import type { TestImage } from '../helpers/api.js';
import { api, idleConnection, keepAliveAgent, makeImage, mountBody, rafsConfigText } from '../helpers/api.js';

const run = promisify(execFile);
function hasCurl(): boolean {
  try {
    execFileSync('curl', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
const skip = process.getuid?.() !== 0 ? 'needs root' : !existsSync('/dev/fuse') ? 'no /dev/fuse' : !hasCurl() ? 'no curl' : false;

function procStats(pid: number): { fds: number; rssKiB: number } {
  const fds = readdirSync(`/proc/${pid}/fd`).length;
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return { fds, rssKiB: Number(m?.[1] ?? 0) };
}

function sameTree(dir: string, img: TestImage): void {
  for (const [p, data] of Object.entries(img.files)) assert.deepEqual(readFileSync(join(dir, p)), data, `${dir}/${p}`);
}

describe('the API on a FUSE daemon started without a bootstrap', { skip }, () => {
  const work = mkdtempSync(join(tmpdir(), 'nydus-api-fuse-'));
  const mnt = join(work, 'mnt');
  const sock = join(work, 'api.sock');
  let d: RunningDaemon | undefined;
  let one: TestImage;
  let two: TestImage;
  let cfgOne = '';
  let cfgTwo = '';

  before(async () => {
    mkdirSync(mnt);
    one = await makeImage(join(work, 'one'), { 'a.txt': 'pseudo one\n', 'd/big.bin': Buffer.alloc(300_000, 3), 'd/e/deep': 'deep\n' });
    two = await makeImage(join(work, 'two'), { 'b.txt': 'pseudo two\n' });
    cfgOne = rafsConfigText(one.blobDir, join(work, 'cache'), { digest_validate: true });
    cfgTwo = rafsConfigText(two.blobDir, join(work, 'cache'));
    const cfgFile = join(work, 'config.json');
    writeFileSync(cfgFile, cfgOne);
    // A small heap makes V8 collect as it goes: memory then shows what the daemon keeps, and a
    // leak of a mount's worth per cycle would end the daemon long before 300 cycles.
    d = await startDaemon(['--apisock', sock, '--config', cfgFile, '--mountpoint', mnt, '--log-level', 'info'], { env: { NODE_OPTIONS: '--max-old-space-size=48' } });
  });
  after(async () => {
    const code = await d?.stop();
    assert.equal(code, 0, d?.log().slice(-3000));
    rmSync(work, { recursive: true, force: true });
  });

  async function curlMount(mountpoint: string, source: string, config: string): Promise<string> {
    const body = JSON.stringify({ source, fs_type: 'rafs', config });
    const { stdout } = await run('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '--unix-socket', sock, '-X', 'POST', `http://localhost/api/v1/mount?mountpoint=${mountpoint}`, '-H', 'Content-Type: application/json', '-d', body]);
    return stdout;
  }

  test('--version names the commit the API reports (the snapshotter compares them)', async () => {
    const { stdout } = await run(process.execPath, [join(binDir, 'nydusd'), '--version']);
    const commit = /Git Commit:\s*(.+)/.exec(stdout)?.[1]?.trim();
    const info = (await api(sock, 'GET', '/api/v1/daemon')).json() as { version: { git_commit: string } };
    assert.equal(commit, info.version.git_commit);
  });

  test('seed examples with curl: a mount at /sub, then pseudo_1 and pseudo_2 side by side', async () => {
    assert.deepEqual(readdirSync(mnt), [], 'an empty root before any mount');
    assert.equal(await curlMount('/sub', one.bootstrap, cfgOne), '204');
    sameTree(join(mnt, 'sub'), one);
    assert.equal(await curlMount('/pseudo_1', one.bootstrap, cfgOne), '204');
    assert.equal(await curlMount('/pseudo_2', two.bootstrap, cfgTwo), '204');
    assert.deepEqual(readdirSync(mnt).sort(), ['pseudo_1', 'pseudo_2', 'sub']);
    sameTree(join(mnt, 'pseudo_1'), one);
    sameTree(join(mnt, 'pseudo_2'), two);
    assert.deepEqual(readdirSync(join(mnt, 'pseudo_2')), ['b.txt']);
    const { stdout } = await run('curl', ['-s', '--unix-socket', sock, 'http://localhost/api/v1/metrics?id=/pseudo_2']);
    const m = JSON.parse(stdout) as { data_read: number; fop_hits: number[] };
    assert.equal(m.data_read, 'pseudo two\n'.length, 'one read of b.txt (the second came from the page cache)');
    assert.ok((m.fop_hits[4] ?? 0) >= 1);
    // Umount: the kernel drops what it cached under the mountpoint; the directory stays, empty.
    assert.equal((await api(sock, 'DELETE', '/api/v1/mount?mountpoint=/pseudo_1')).status, 204);
    assert.deepEqual(readdirSync(join(mnt, 'pseudo_1')), []);
    assert.throws(() => statSync(join(mnt, 'pseudo_1', 'a.txt')), /ENOENT/);
    sameTree(join(mnt, 'pseudo_2'), two);
    assert.equal((await api(sock, 'DELETE', '/api/v1/mount?mountpoint=/pseudo_2')).status, 204);
    assert.equal((await api(sock, 'DELETE', '/api/v1/mount?mountpoint=/sub')).status, 204);
  });

  test('a nested mountpoint /a/b/c is stat-able after umount and remount, without reading its parent first', async () => {
    const body = mountBody(one.bootstrap, cfgOne);
    assert.equal((await api(sock, 'POST', '/api/v1/mount?mountpoint=/a/b/c', { body })).status, 204);
    assert.ok(statSync(join(mnt, 'a/b/c')).isDirectory());
    sameTree(join(mnt, 'a/b/c'), one);
    assert.equal((await api(sock, 'DELETE', '/api/v1/mount?mountpoint=/a/b/c')).status, 204);
    assert.equal((await api(sock, 'POST', '/api/v1/mount?mountpoint=%2Fa%2Fb%2Fc', { body: mountBody(two.bootstrap, cfgTwo) })).status, 204);
    assert.ok(statSync(join(mnt, 'a/b/c/b.txt')).isFile(), 'the remounted image, not the old dentries');
    sameTree(join(mnt, 'a/b/c'), two);
    // PUT swaps the image in place.
    assert.equal((await api(sock, 'PUT', '/api/v1/mount?mountpoint=/a/b/c', { body })).status, 204);
    sameTree(join(mnt, 'a/b/c'), one);
    assert.equal((await api(sock, 'DELETE', '/api/v1/mount?mountpoint=/a/b/c')).status, 204);
  });

  test('/metrics/blobcache counts whole hits, partial hits and misses as O_DIRECT READs make them', async () => {
    // Six 128 KiB chunks of random bytes: with amplify_io 0 a miss fetches its own chunk only
    // (the smallest amplify window is 128 KiB, and no two incompressible chunks fit in it).
    // O_DIRECT makes each dd exactly one READ that the kernel neither serves nor widens; the
    // misses jump around so that no readahead stream starts before the READs counted.
    const k = 0x20000;
    const data = randomBytes(6 * k);
    const img = await makeImage(join(work, 'hits'), { 'p.bin': data }, { chunkSize: k });
    const cfg = rafsConfigText(img.blobDir, join(work, 'cache-hits'), { amplify_io: 0 });
    assert.equal(await curlMount('/hits', img.bootstrap, cfg), '204');
    const file = join(mnt, 'hits', 'p.bin');
    const counts = async () => {
      const r = await api(sock, 'GET', '/api/v1/metrics/blobcache?id=/hits');
      assert.equal(r.status, 200, r.text);
      const { total, whole_hits, partial_hits } = r.json() as { total: number; whole_hits: number; partial_hits: number };
      return { total, whole_hits, partial_hits };
    };
    const read = async (chunk: number, chunks: number) => {
      const args = [`if=${file}`, 'iflag=direct,skip_bytes', `bs=${chunks * k}`, `skip=${chunk * k}`, 'count=1', 'status=none'];
      const { stdout } = await run('dd', args, { encoding: 'buffer', maxBuffer: 1 << 20 });
      assert.deepEqual(stdout, data.subarray(chunk * k, (chunk + chunks) * k), `chunks ${chunk}..${chunk + chunks - 1}`);
    };
    try {
      assert.deepEqual(await counts(), { total: 0, whole_hits: 0, partial_hits: 0 });
      await read(5, 1); // a miss, nothing cached
      await read(1, 1); // a miss, nothing cached
      assert.deepEqual(await counts(), { total: 2, whole_hits: 0, partial_hits: 0 });
      await read(1, 2); // chunk 1 cached, chunk 2 not: a partial hit (and a miss)
      assert.deepEqual(await counts(), { total: 3, whole_hits: 0, partial_hits: 1 });
      await read(1, 2); // both cached by the READs above: a whole hit
      await read(5, 1);
      assert.deepEqual(await counts(), { total: 5, whole_hits: 2, partial_hits: 1 });
    } finally {
      assert.equal((await api(sock, 'DELETE', '/api/v1/mount?mountpoint=/hits')).status, 204);
    }
  });

  test('300 mount/umount cycles with an idle connection held open: every call 204, no fd or memory growth', { timeout: 300_000 }, async (t) => {
    const pid = d?.proc.pid as number;
    const idle = await idleConnection(sock);
    const agent = keepAliveAgent();
    const body = mountBody(one.bootstrap, cfgOne);
    let warm = { fds: 0, rssKiB: 0 };
    try {
      for (let i = 0; i < 300; i++) {
        const mp = `/mount-${i}`;
        const m = await api(sock, 'POST', `/api/v1/mount?mountpoint=${mp}`, { body, agent });
        assert.equal(m.status, 204, `cycle ${i}: ${m.text}`);
        assert.equal(readFileSync(join(mnt, mp, 'd/e/deep'), 'utf8'), 'deep\n');
        const u = await api(sock, 'DELETE', `/api/v1/mount?mountpoint=${mp}`, { agent });
        assert.equal(u.status, 204, `cycle ${i}: ${u.text}`);
        if (i === 99) warm = procStats(pid);
      }
      const end = procStats(pid);
      t.diagnostic(`after 100 cycles: ${warm.fds} fds, ${warm.rssKiB} KiB RSS; after 300: ${end.fds} fds, ${end.rssKiB} KiB RSS`);
      assert.ok(end.fds <= warm.fds + 2, `fds ${warm.fds} -> ${end.fds}`);
      // Loose on purpose: RSS moves with the collector; this catches what a cycle would leak in
      // bulk (blob buffers, chunk maps, images), while fds must not grow at all.
      assert.ok(end.rssKiB - warm.rssKiB < 24 * 1024, `RSS ${warm.rssKiB} -> ${end.rssKiB} KiB`);
      assert.equal(idle.closed(), false, 'the idle connection is still open');
      const info = await api(sock, 'GET', '/api/v1/daemon', { agent });
      assert.equal((info.json() as { state: string }).state, 'RUNNING');
    } finally {
      agent.destroy();
      idle.socket.destroy();
    }
  });
});
