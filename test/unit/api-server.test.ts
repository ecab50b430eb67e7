/**
 * The HTTP API on --apisock, in process, against a real daemon (virtio-fs mode, no frontend
 * attached; images mounted and unmounted through the mount table): upstream's routes, status
 * codes, error bodies and JSON field names, Kata's exact calls (raw and %2F queries, a
 * Content-Type on GET), bad input that must leave nothing half-attached, metrics shapes, hot
 * reload, daemon state routes, and the socket rules (0600, stale replaced, live refused).
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';

import { nydusdParser } from '../../src/cli/nydusd-args.js';
import { parseNydusdArgsFast } from '../../src/cli/nydusd-fast-args.js';
import { resolveNydusdArgs } from '../../src/cli/nydusd-options.js';
import { startApiServer } from '../../src/daemon/api/index.js';
import { Daemon } from '../../src/daemon/index.js';
import type { DaemonOptions } from '../../src/daemon/index.js';
import type { MountedFilesystem } from '../../src/daemon/mount-kinds.js';
import type { MountTable } from '../../src/daemon/mounts.js';
import type { Vfs } from '../../src/fs/index.js';
import type { RegistryAuthUpdate } from '../../src/storage/index.js';
import { createLogger } from '../../src/util/logger.js';
import type { RootLogger } from '../../src/util/logger.js';
import type { TestImage } from '../helpers/api.js';
import { api, keepAliveAgent, makeImage, mountBody, rafsConfigText } from '../helpers/api.js';
import { testDaemonOptions } from '../helpers/daemon-options.js';

const work = mkdtempSync(join(tmpdir(), 'nydus-api-'));
after(() => rmSync(work, { recursive: true, force: true }));
let imgA: TestImage;
let imgB: TestImage;
before(async () => {
  imgA = await makeImage(join(work, 'a'), { 'hello.txt': 'hello from a\n', 'dir/big': Buffer.alloc(200_000, 7) });
  imgB = await makeImage(join(work, 'b'), { 'b.txt': 'bee\n', 'x/y/z': 'deep' });
});

let n = 0;
function options(over: Partial<DaemonOptions> = {}): DaemonOptions {
  const dir = join(work, `d${++n}`);
  mkdirSync(dir);
  return testDaemonOptions({ mode: 'virtiofs', socketPath: join(dir, 'vhost.sock'), apiSock: join(dir, 'api.sock'), id: 'test-id', ...over });
}

interface Running {
  d: Daemon;
  sock: string;
  log: RootLogger;
  lines: string[];
}

async function start(over: Partial<DaemonOptions> = {}): Promise<Running> {
  const lines: string[] = [];
  const log = createLogger({ level: 'info', stream: new Writable({ write: (c: Buffer, _e, cb) => (lines.push(c.toString()), cb()) }) });
  const o = options(over);
  const d = new Daemon(o, { log, applyRlimit: () => undefined, api: startApiServer, buildInfo: { package_ver: 'v9.9.9', git_commit: 'abc123', build_time: 't', profile: 'release', rustc: 'node' } });
  await d.start();
  return { d, sock: o.apiSock as string, log, lines };
}

/** A daemon plus a keep-alive caller that sends Content-Type on every request, as kata-rs does. */
async function startWithCaller(): Promise<Running & { vfs: Vfs; mounts: MountTable; agent: ReturnType<typeof keepAliveAgent>; call: (m: string, p: string, body?: string) => ReturnType<typeof api> }> {
  const r = await start();
  const vfs = r.d.service?.vfs;
  const mounts = r.d.service?.mounts;
  assert.ok(vfs && mounts);
  const agent = keepAliveAgent();
  const call = (m: string, p: string, body?: string): ReturnType<typeof api> =>
    api(r.sock, m, p, { agent, headers: { 'Content-Type': 'application/json' }, ...(body === undefined ? {} : { body }) });
  return { ...r, vfs, mounts, agent, call };
}


const cfg = (img: TestImage, extra: Record<string, unknown> = {}): string => rafsConfigText(img.blobDir, join(work, 'cache'), extra);
const json = (o: unknown): Record<string, unknown> => o as Record<string, unknown>;

test("Kata's and the snapshotter's command lines start an image-less daemon with the API", async () => {
  const lines = [
    ['virtiofs', '--log-level', 'info', '--apisock', '/run/a.sock', '--sock', '/run/v.sock'],
    ['virtiofs', '--hybrid-mode', '--log-level', 'info', '--apisock', '/run/a.sock', '--sock', '/run/v.sock'],
    ['fuse', '--thread-num', '4', '--mountpoint', '/mnt/x', '--apisock', '/run/a.sock', '--log-level', 'info'],
  ];
  for (const argv of lines) {
    const args = parseNydusdArgsFast(argv) ?? (await nydusdParser(argv).parseAsync());
    const { options } = resolveNydusdArgs(args, {});
    assert.equal(options.apiSock, '/run/a.sock', argv.join(' '));
    assert.equal(options.bootstrap, undefined);
    assert.equal(options.mode, argv[0]);
  }
});

describe('the HTTP API', () => {
  test('daemon info, transport rules, socket mode 0600, NoRoute and BadRequest', async () => {
    const { d, sock } = await start();
    try {
      assert.equal(statSync(sock).mode & 0o777, 0o600);
      const r = await api(sock, 'GET', '/api/v1/daemon', { headers: { 'Content-Type': 'application/json' } });
      assert.equal(r.status, 200);
      assert.equal(r.headers['server'], 'Nydus API');
      assert.equal(r.headers['content-type'], 'application/json');
      const info = json(r.json());
      assert.deepEqual(Object.keys(info), ['version', 'id', 'supervisor', 'state', 'backend_collection']);
      assert.deepEqual(info['version'], { package_ver: 'v9.9.9', git_commit: 'abc123', build_time: 't', profile: 'release', rustc: 'node' });
      assert.equal(info['id'], 'test-id');
      assert.equal(info['supervisor'], null);
      assert.equal(info['state'], 'RUNNING');
      assert.deepEqual(info['backend_collection'], {});
      assert.equal(json((await api(sock, 'GET', '/api/v2/daemon')).json())['backend_collection'], null);
      const nf = await api(sock, 'GET', '/api/v1/daemonx');
      assert.equal(nf.status, 404);
      assert.deepEqual(nf.json(), { code: 'UNDEFINED', message: 'NoRoute' });
      assert.equal((await api(sock, 'GET', '/api/v1/daemon/')).status, 404, 'no trailing-slash tolerance');
      assert.deepEqual((await api(sock, 'POST', '/api/v1/daemon')).json(), { code: 'UNDEFINED', message: 'BadRequest' });
      assert.equal((await api(sock, 'GET', '/api/v1/daemon', { body: '{}' })).status, 400, 'a body where none is taken');
      assert.equal((await api(sock, 'PUT', '/api/v1/daemon/start', { body: '' })).status, 400, 'Content-Length 0 is no body: Start is not valid in RUNNING');
      const ev = json((await api(sock, 'GET', '/api/v1/daemon/events')).json());
      assert.deepEqual(Object.keys(ev), ['max_errors', 'total_errors', 'max_size', 'total_size', 'errors']);
      assert.equal(ev['max_errors'], 500);
      assert.equal(ev['max_size'], 51200);
      assert.equal((await api(sock, 'PUT', '/api/v1/daemon', { body: 'x'.repeat(60_000) })).status, 400, 'payload over 51200 bytes');
    } finally {
      await d.stop('test');
    }
  });

  test("Kata's mount calls (raw and %2F queries), bad input leaving nothing behind, umount and remount", async () => {
    const { d, vfs, mounts, agent, call } = await startWithCaller();
    try {
      assert.equal((await call('POST', '/api/v1/mount?mountpoint=/rafs/c1/lowerdir', mountBody(imgA.bootstrap, cfg(imgA, { device: { id: '/snap-1', backend: { type: 'localfs', config: { dir: imgA.blobDir } }, cache: { type: 'blobcache', config: { work_dir: join(work, 'cache') } } } })))).status, 204);
      assert.equal((await call('POST', '/api/v1/mount?mountpoint=%2Frafs%2Fc2%2Flowerdir', mountBody(imgB.bootstrap, cfg(imgB)))).status, 204);
      const coll = json(json((await call('GET', '/api/v1/daemon')).json())['backend_collection']);
      assert.deepEqual(Object.keys(coll).sort(), ['/rafs/c1/lowerdir', '/rafs/c2/lowerdir']);
      const c1 = json(coll['/rafs/c1/lowerdir']);
      assert.equal(c1['backend_type'], 'Rafs');
      assert.equal(c1['mountpoint'], '/rafs/c1/lowerdir');
      assert.match(c1['mounted_time'] as string, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{9} \+00:00:00$/);
      assert.equal(json(c1['config'])['id'], '/snap-1');
      const treeSize = vfs.tree.size;

      const bad: [string, string, string | undefined, number, RegExp][] = [
        ['POST', '/api/v1/mount?mountpoint=/rafs/c1/lowerdir', mountBody(imgA.bootstrap, cfg(imgA)), 500, /^Mount\(MountFilesystem\(Other\("object or filesystem already exists/],
        ['POST', '/api/v1/mount?mountpoint=/n1', '{"source": "x", "config": ', 400, /^ParseBody\(Error\(/],
        ['POST', '/api/v1/mount?mountpoint=/n1', JSON.stringify({ source: imgA.bootstrap, fs_type: 'rafs' }), 400, /^ParseBody\(Error\("missing field `config`"\)\)$/],
        ['POST', '/api/v1/mount?mountpoint=/n1', JSON.stringify({ source: 1, config: '' }), 400, /^ParseBody\(Error\("invalid type for `source`/],
        ['POST', '/api/v1/mount', mountBody(imgA.bootstrap, cfg(imgA)), 400, /^QueryString\("'mountpoint' should be specified in query string"\)$/],
        ['POST', '/api/v1/mount?mountpoint=/n1', mountBody(imgA.bootstrap, cfg(imgA), 'ext4'), 500, /only 'rafs' and 'passthrough_fs' are supported, but \\"ext4\\" was specified/],
        ['POST', '/api/v1/mount?mountpoint=/n1', mountBody(imgA.bootstrap, cfg(imgA), ''), 500, /but \\"\\" was specified/],
        ['POST', '/api/v1/mount?mountpoint=n1/rel', mountBody(imgA.bootstrap, cfg(imgA)), 500, /must be an absolute path/],
        ['POST', '/api/v1/mount?mountpoint=/n1/../etc', mountBody(imgA.bootstrap, cfg(imgA)), 500, /must not contain \\"\.\.\\"/],
        ['POST', '/api/v1/mount?mountpoint=/n1', mountBody(join(work, 'missing.boot'), cfg(imgA)), 500, /source .*missing\.boot: no such file/],
        ['POST', '/api/v1/mount?mountpoint=/n1', mountBody(join(work, 'a', 'src', 'hello.txt'), cfg(imgA)), 500, /hello\.txt/],
        ['POST', '/api/v1/mount?mountpoint=/n1', mountBody(imgA.bootstrap, JSON.stringify({ device: { backend: { type: 'localfs', config: { dir: 7 } } } })), 500, /config of mount \/n1: device\.backend\.config\.dir: expected string/],
        ['POST', '/api/v1/mount?mountpoint=/n1', mountBody(imgA.bootstrap, '{"version": 2, "backend": {"type": "nope"}}'), 500, /backend\.type/],
        ['POST', '/api/v1/mount?mountpoint=/n1', mountBody(imgA.bootstrap, ''), 500, /config of mount \/n1: empty/],
        ['POST', '/api/v1/mount?mountpoint=/rafs/c1/lowerdir/inner', mountBody(imgA.bootstrap, cfg(imgA)), 500, /is inside the mount at \/rafs\/c1\/lowerdir/],
        ['POST', '/api/v1/mount?mountpoint=/', mountBody(imgA.bootstrap, cfg(imgA)), 500, /is inside \//],
        ['POST', '/api/v1/mount?mountpoint=/n1', JSON.stringify({ source: imgA.bootstrap, config: cfg(imgA), fs_type: 'rafs', prefetch_files: ['rel'] }), 500, /invalid prefetch file list/],
        ['DELETE', '/api/v1/mount?mountpoint=/nothing', undefined, 500, /^Mount\(MountFilesystem\(Other\("object or filesystem doesn't exist/],
        ['DELETE', '/api/v1/mount?mountpoint=/rafs/c1', undefined, 500, /doesn't exist/],
        ['GET', '/api/v1/mount?mountpoint=/n1', undefined, 400, /^BadRequest$/],
      ];
      for (const [m, p, body, status, re] of bad) {
        const r = await call(m, p, body);
        assert.equal(r.status, status, `${m} ${p}: ${r.text}`);
        const e = json(r.json());
        assert.equal(e['code'], 'UNDEFINED');
        assert.match(e['message'] as string, re, `${m} ${p}`);
      }
      assert.equal(vfs.tree.size, treeSize, 'failed mounts created no pseudo directories');
      assert.equal(mounts.size, 2);
      assert.equal(d.state, 'RUNNING');

      // The other mounts kept serving: their metrics answer.
      assert.equal((await call('GET', '/api/v1/metrics?id=%2Frafs%2Fc2%2Flowerdir')).status, 200);
      assert.equal((await call('DELETE', '/api/v1/mount?mountpoint=%2Frafs%2Fc1%2Flowerdir')).status, 204);
      assert.equal((await call('DELETE', '/api/v1/mount?mountpoint=/rafs/c1/lowerdir')).status, 500);
      assert.equal(vfs.tree.size, treeSize, 'the pseudo directories stay after umount (as upstream)');
      const before = json((await call('GET', '/api/v1/daemon/backend?mountpoint=/rafs/c2/lowerdir')).json());
      assert.equal(before['inodes_count'], 5);
      assert.equal((await call('PUT', '/api/v1/mount?mountpoint=/rafs/c2/lowerdir', mountBody(imgA.bootstrap, cfg(imgA)))).status, 204);
      const swapped = json((await call('GET', '/api/v1/daemon/backend?mountpoint=/rafs/c2/lowerdir')).json());
      assert.equal(swapped['inodes_count'], 4, 'PUT swapped the image in place');
      assert.equal((await call('PUT', '/api/v1/mount?mountpoint=/rafs/none', mountBody(imgA.bootstrap, cfg(imgA)))).status, 500);
      assert.equal((await call('GET', '/api/v1/daemon/backend')).status, 400);
      assert.equal((await call('GET', '/api/v1/daemon/backend?mountpoint=/none')).status, 500);
      // Mount at the root of a daemon with nothing else mounted, then back.
      assert.equal((await call('DELETE', '/api/v1/mount?mountpoint=/rafs/c2/lowerdir')).status, 204);
      assert.equal((await call('POST', '/api/v1/mount?mountpoint=/', mountBody(imgB.bootstrap, cfg(imgB)))).status, 204);
      assert.equal(vfs.rootSlot > 0, true);
      assert.equal((await call('DELETE', '/api/v1/mount?mountpoint=/')).status, 204);
      assert.equal(vfs.rootSlot, 0);
    } finally {
      agent.destroy();
      await d.stop('test');
    }
  });

  test("Kata's passthrough_fs share at /containers: mount, info, metrics, bad sources, umount", async () => {
    const { d, vfs, mounts, agent, call } = await startWithCaller();
    const shareDir = join(work, 'kata-share');
    mkdirSync(shareDir, { recursive: true });
    try {
      // Exactly Kata's body: config "" (upstream ignores it for passthrough_fs).
      const body = JSON.stringify({ fs_type: 'passthrough_fs', source: shareDir, config: '' });
      const ok = await call('POST', '/api/v1/mount?mountpoint=/containers', body);
      assert.equal(ok.status, 204, ok.text);
      const again = await call('POST', '/api/v1/mount?mountpoint=%2Fcontainers', body);
      assert.equal(again.status, 500);
      assert.match(json(again.json())['message'] as string, /already exists/);
      const treeSize = vfs.tree.size;
      for (const [src, re] of [
        [join(work, 'no-such-dir'), /passthrough_fs source .*no-such-dir/],
        [join(work, 'a', 'src', 'hello.txt'), /is not a directory/],
      ] as const) {
        const r = await call('POST', '/api/v1/mount?mountpoint=/other', JSON.stringify({ fs_type: 'passthroughfs', source: src, config: '' }));
        assert.equal(r.status, 500, r.text);
        assert.match(json(r.json())['message'] as string, re);
      }
      assert.equal(vfs.tree.size, treeSize, 'failed mounts created no pseudo directories');
      const info = json(json((await call('GET', '/api/v1/daemon')).json())['backend_collection']);
      const share = json(info['/containers']);
      assert.equal(share['backend_type'], 'PassthroughFs');
      assert.equal(share['mountpoint'], '/containers');
      assert.equal(share['config'], null);
      // Metrics routes answer (operation counters) or say there is no such counter; none crash.
      assert.equal((await call('GET', '/api/v1/metrics?id=/containers')).status, 200);
      for (const p of ['/api/v1/metrics/backend?id=/containers', '/api/v1/metrics/blobcache?id=/containers']) {
        const r = await call('GET', p);
        assert.ok(r.status === 404 || r.status === 500, `${p}: ${r.status}`);
        assert.match(json(r.json())['message'] as string, /NoCounter/);
      }
      assert.equal((await call('GET', '/metrics')).status, 200);
      assert.equal((await call('GET', '/api/v1/metrics/files?id=/containers')).status, 200);
      assert.equal((await call('GET', '/api/v1/daemon/backend?mountpoint=/containers')).status, 500);
      assert.equal((await call('PUT', '/api/v1/mount?mountpoint=/containers', body)).status, 501);
      assert.equal((await call('DELETE', '/api/v1/mount?mountpoint=%2Fcontainers')).status, 204);
      assert.equal(mounts.size, 0);
      // At "/" it would take the pseudo tree's node ids; /containers stays as a directory.
      const root = await call('POST', '/api/v1/mount?mountpoint=/', body);
      assert.equal(root.status, 500);
      assert.match(json(root.json())['message'] as string, /needs an empty pseudo root/);
      // Mount and umount again (slots are reused).
      assert.equal((await call('POST', '/api/v1/mount?mountpoint=/containers', body)).status, 204);
      assert.equal((await call('DELETE', '/api/v1/mount?mountpoint=/containers')).status, 204);
    } finally {
      agent.destroy();
      await d.stop('test');
    }
  });

  test('metrics: upstream field names and array lengths, NoCounter ids, in-flight, Prometheus text', async () => {
    const { d, sock } = await start();
    try {
      const none = await api(sock, 'GET', '/api/v1/metrics');
      assert.equal(none.status, 404);
      assert.equal(json(none.json())['message'], 'GlobalMetrics(Metrics(Stats(NoCounter)))');
      const devCfg = JSON.stringify({ device: { id: '/snap-9', backend: { type: 'localfs', config: { dir: imgA.blobDir } }, cache: { type: 'blobcache', config: { work_dir: join(work, 'cache9') } } } });
      assert.equal((await api(sock, 'POST', '/api/v1/mount?mountpoint=/m1', { body: mountBody(imgA.bootstrap, devCfg) })).status, 204);
      const fs = json((await api(sock, 'GET', '/api/v1/metrics')).json());
      assert.deepEqual(Object.keys(fs), [
        'files_account_enabled', 'access_pattern_enabled', 'record_latest_read_files_enabled', 'measure_latency', 'id', 'nr_opens', 'data_read',
        'block_count_read', 'fop_hits', 'fop_errors', 'fop_cumulative_latency_total', 'read_latency_dist',
      ]);
      assert.equal(fs['id'], '/m1');
      assert.equal((fs['fop_hits'] as number[]).length, 15);
      assert.equal((fs['fop_errors'] as number[]).length, 15);
      assert.equal((fs['fop_cumulative_latency_total'] as number[]).length, 15);
      assert.equal((fs['block_count_read'] as number[]).length, 8);
      assert.equal((fs['read_latency_dist'] as number[]).length, 8);
      assert.deepEqual((await api(sock, 'GET', '/api/v1/metrics/files?id=/m1')).json(), {});
      assert.deepEqual((await api(sock, 'GET', '/api/v1/metrics/files?latest=true')).json(), []);
      assert.deepEqual((await api(sock, 'GET', '/api/v1/metrics/pattern?id=/m1')).json(), []);
      const poison = await api(sock, 'GET', '/api/v1/metrics/pattern?id=poison');
      assert.equal(poison.status, 404);
      assert.match(poison.text, /Pattern\(Metrics\(Stats\(NoCounter\)\)\)/);
      const be = json((await api(sock, 'GET', '/api/v1/metrics/backend?id=/snap-9')).json());
      assert.deepEqual(Object.keys(be), [
        'backend_type', 'read_count', 'read_errors', 'read_amount_total', 'read_cumulative_latency_millis_total',
        'read_cumulative_latency_millis_dist', 'read_count_block_size_dist', 'read_latency_sizes_dist',
      ]);
      assert.equal(be['backend_type'], 'localfs');
      assert.equal((be['read_latency_sizes_dist'] as number[][]).length, 8);
      assert.ok((be['read_latency_sizes_dist'] as number[][]).every((r) => r.length === 8));
      assert.ok((be['read_count'] as number) >= 1, 'the blob meta was read at mount');
      const bc = json((await api(sock, 'GET', '/api/v1/metrics/blobcache?id=%2Fsnap-9')).json());
      for (const k of ['underlying_files', 'store_path', 'partial_hits', 'whole_hits', 'total', 'entries_count', 'prefetch_data_amount', 'prefetch_requests_count', 'prefetch_workers', 'prefetch_unmerged_chunks', 'prefetch_cumulative_time_millis', 'prefetch_begin_time_secs', 'prefetch_begin_time_millis', 'prefetch_end_time_secs', 'prefetch_end_time_millis', 'buffered_backend_size', 'data_all_ready']) {
        assert.ok(k in bc, k);
      }
      assert.equal(bc['store_path'], join(work, 'cache9'));
      assert.equal((await api(sock, 'GET', '/api/v1/metrics/backend?id=/nope')).status, 404);
      assert.equal((await api(sock, 'GET', '/api/v1/metrics/inflight')).status, 204);
      assert.equal((await api(sock, 'POST', '/api/v1/mount?mountpoint=/m2', { body: mountBody(imgB.bootstrap, cfg(imgB)) })).status, 204);
      assert.equal((await api(sock, 'GET', '/api/v1/metrics')).status, 404, 'no id with two mounts');
      assert.equal((await api(sock, 'GET', '/api/v1/metrics?id=/m2')).status, 200);
      const prom = await api(sock, 'GET', '/metrics');
      assert.equal(prom.status, 200);
      assert.match(prom.headers['content-type'] as string, /^text\/plain; version=0\.0\.4/);
      assert.match(prom.text, /^nydusd_state\{state="RUNNING"\} 1$/m);
      assert.match(prom.text, /^nydusd_mounts 2$/m);
      assert.match(prom.text, /^nydusd_fop_hits_total\{mountpoint="\/m2",fop="read"\} \d+$/m);
      assert.match(prom.text, /^nydusd_read_latency_seconds_bucket\{mountpoint="\/m1",le="\+Inf"\} \d+$/m);
      // Every family is announced once and its samples follow it together.
      const families = prom.text.split('\n').filter((l) => l.startsWith('# TYPE ')).map((l) => l.split(' ')[2]);
      assert.equal(new Set(families).size, families.length);
      let current = '';
      for (const l of prom.text.trim().split('\n')) {
        if (l.startsWith('# TYPE ')) current = l.split(' ')[2] as string;
        else if (!l.startsWith('#')) assert.ok(l.startsWith(current), `${l} outside its family ${current}`);
      }
    } finally {
      await d.stop('test');
    }
  });

  test('config hot reload: registry_auth validated, stored, handed to the mounts; other keys refused', async () => {
    const { d, sock } = await start();
    try {
      assert.equal((await api(sock, 'POST', '/api/v1/mount?mountpoint=/snap', { body: mountBody(imgA.bootstrap, cfg(imgA)) })).status, 204);
      // The mount's own reloadAuth (its StorageService's) is called; a localfs backend has no
      // credential to replace, so it answers false (test/integration/api-registry-auth.test.ts
      // shows a registry mount using the new one).
      const got: (string | undefined)[] = [];
      const results: boolean[] = [];
      const inst = d.service?.mounts?.get('/snap')?.instance as { -readonly [K in keyof MountedFilesystem]: MountedFilesystem[K] };
      const real = inst.reloadAuth;
      assert.ok(real, 'a RAFS mount can reload registry credentials');
      inst.reloadAuth = (u: RegistryAuthUpdate): boolean => {
        got.push(u.auth);
        const r = real(u);
        results.push(r);
        return r;
      };
      const auth = Buffer.from('user:secret').toString('base64');
      assert.equal((await api(sock, 'PUT', '/api/v1/config?id=/snap', { body: JSON.stringify({ registry_auth: auth }) })).status, 204);
      assert.deepEqual(got, [auth]);
      assert.deepEqual(results, [false]);
      assert.deepEqual((await api(sock, 'GET', '/api/v1/config?id=/snap')).json(), { registry_auth: auth });
      assert.deepEqual((await api(sock, 'GET', '/api/v1/config')).json(), { '/snap:registry_auth': auth });
      assert.equal((await api(sock, 'PUT', '/api/v1/config?id=/other', { body: JSON.stringify({ registry_auth: auth }) })).status, 204);
      assert.equal(got.length, 1, 'another id does not reach this mount');
      for (const [body, re] of [
        [{ registry_auth: 'not base64!' }, /registry_auth: not the base64 encoding of \\"username:password\\"/],
        [{ registry_auth: Buffer.from('nocolon').toString('base64') }, /registry_auth: not the base64 encoding/],
        [{ password: 'x' }, /unknown key \\"password\\"/],
        [{ proxy_url: 5 }, /proxy_url: expected a string/],
      ] as const) {
        const r = await api(sock, 'PUT', '/api/v1/config', { body: JSON.stringify(body) });
        assert.equal(r.status, 500);
        assert.match(json(r.json())['message'] as string, re);
      }
      assert.equal((await api(sock, 'PUT', '/api/v1/config', { body: '[1]' })).status, 400);
    } finally {
      await d.stop('test');
    }
  });

  test('log level at run time, start/exit, FUSE upgrade hooks and fscache blobs answer as upstream', async () => {
    const { d, sock, log, lines } = await start();
    try {
      assert.equal((await api(sock, 'PUT', '/api/v1/daemon', { body: '{"log_level":"DEBUG"}' })).status, 204);
      assert.equal(log.level, 'debug');
      const bad = await api(sock, 'PUT', '/api/v2/daemon', { body: '{"log_level":"loud"}' });
      assert.equal(bad.status, 500);
      assert.match(json(bad.json())['message'] as string, /^Configure\(ResponsePayloadType\(/);
      assert.equal((await api(sock, 'PUT', '/api/v1/daemon', { body: '{"level":"info"}' })).status, 400);
      assert.equal((await api(sock, 'PUT', '/api/v1/daemon', { body: '{"log_level":"off"}' })).status, 204);
      log.error('must not be written');
      assert.ok(!lines.join('').includes('must not be written'));
      assert.equal((await api(sock, 'PUT', '/api/v1/daemon', { body: '{"log_level":"info"}' })).status, 204);
      log.error('an error event');
      const ev = json((await api(sock, 'GET', '/api/v1/daemon/events')).json());
      assert.ok((ev['errors'] as string[]).some((e) => e.includes('an error event')));
      const st = await api(sock, 'PUT', '/api/v1/daemon/start');
      assert.equal(st.status, 400);
      assert.equal(json(st.json())['message'], 'Configure(DaemonAbnormal(UnexpectedEvent("Start")))');
      for (const p of ['/api/v1/daemon/fuse/sendfd', '/api/v1/daemon/fuse/takeover']) {
        const r = await api(sock, 'PUT', p);
        assert.equal(r.status, 501);
        assert.match(json(r.json())['message'] as string, /^Upgrade\(DaemonAbnormal\(Unsupported\(".*not supported yet"\)\)\)$/);
      }
      const entry = JSON.stringify({ type: 'bootstrap', id: 'b1', domain_id: 'd1', config_v2: { version: 2, id: 'b1', backend: { type: 'localfs', localfs: { dir: work } }, cache: { type: 'fscache', fscache: { work_dir: work } }, metadata_path: imgA.bootstrap } });
      const put = await api(sock, 'PUT', '/api/v2/blobs', { body: entry });
      assert.equal(put.status, 501, put.text);
      assert.match(put.text, /fscache/);
      assert.equal((await api(sock, 'PUT', '/api/v2/blobs', { body: '{"type":"bootstrap","id":"x"}' })).status, 400);
      assert.equal((await api(sock, 'DELETE', '/api/v2/blobs')).status, 400);
      assert.equal((await api(sock, 'DELETE', '/api/v2/blobs?domain_id=d1&blob_id=b1')).status, 501);
      assert.equal((await api(sock, 'DELETE', '/api/v2/blobs?blob_id=b1')).status, 501);
      assert.equal((await api(sock, 'GET', '/api/v2/blobs')).status, 400);
      assert.deepEqual((await api(sock, 'GET', '/api/v2/blobs?domain_id=d1')).json(), []);
      const reason = d.stopRequested.then((r) => r);
      assert.equal((await api(sock, 'PUT', '/api/v1/daemon/exit', { body: '' })).status, 204);
      assert.match(await reason, /exit requested through the API/);
    } finally {
      await d.stop('test');
    }
    assert.equal(d.state, 'STOPPED');
  });

  test('socket path: a stale socket is replaced, a live listener or another file is refused', async () => {
    const dir = join(work, 'sock');
    mkdirSync(dir);
    const live = join(dir, 'live.sock');
    const other = createServer().listen(live);
    await new Promise((r) => other.once('listening', r));
    try {
      await assert.rejects(start({ apiSock: live }), { code: 'ERR_USAGE', message: new RegExp(`--apisock ${live}: another process is listening on this socket`) });
    } finally {
      other.close();
    }
    const file = join(dir, 'file');
    writeFileSync(file, 'x');
    await assert.rejects(start({ apiSock: file }), { code: 'ERR_USAGE', message: /exists and is not a socket/ });
    // A socket file nobody listens on any more (a crashed daemon's).
    const stale = join(dir, 'stale.sock');
    const gone = createServer().listen(stale);
    await new Promise((r) => gone.once('listening', r));
    (gone as unknown as { _handle: { close(): void } })._handle.close();
    const { d, sock } = await start({ apiSock: stale });
    try {
      assert.equal((await api(sock, 'GET', '/api/v1/daemon')).status, 200);
    } finally {
      await d.stop('test');
    }
  });
});
