/**
 * The nydusd command line as a user runs it (bin/nydusd in a child process): flags, exit
 * statuses (0 clean stop, 2 usage/config/not supported, 1 runtime failure), the one-line reason
 * on stderr, logging options, signals.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, test } from 'node:test';

import { binDir, projectRoot } from '../helpers/paths.js';

const root = mkdtempSync(join(tmpdir(), 'nydusd-cli-'));
after(() => rmSync(root, { recursive: true, force: true }));
const blobs = join(root, 'blobs');
const mnt = join(root, 'mnt');
mkdirSync(blobs);
mkdirSync(mnt);
const boot = join(root, 'image.boot');
writeFileSync(boot, Buffer.alloc(4096, 1));

function nydusd(args: string[], env: NodeJS.ProcessEnv = {}): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [join(binDir, 'nydusd'), ...args], {
    encoding: 'utf8',
    env: { ...process.env, ...env },
    timeout: 30_000,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** The last stderr line: the reason runMain prints. */
function reason(stderr: string): string {
  return stderr.trim().split('\n').at(-1) ?? '';
}

function writeConfig(name: string, text: string): string {
  const p = join(root, name);
  writeFileSync(p, text);
  return p;
}

const fuse = ['--bootstrap', boot, '--mountpoint', mnt];

test('--print-capabilities prints the vhost-user backend type and exits 0', () => {
  for (const args of [['--print-capabilities'], ['--print-capabilities', '--socket-path', '/nonexistent/s.sock']]) {
    const r = nydusd(args);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, '{"type":"fs"}\n');
    assert.deepEqual(JSON.parse(r.stdout), { type: 'fs' });
  }
});

test('-V prints the version', () => {
  const r = nydusd(['-V']);
  assert.equal(r.status, 0);
  assert.match(r.stdout, /^nydusd/);
});

test('--writable without an overlay section (or a bootstrap) is a usage error naming what is missing', () => {
  const r = nydusd(['--writable', ...fuse, '-D', blobs]);
  assert.equal(r.status, 2, r.stderr);
  assert.match(reason(r.stderr), /--writable needs overlay\.upper_dir and overlay\.work_dir in the configuration$/);
});

test('flags of features not built yet exit 2 with "not supported yet", never ignored', () => {
  const cases: [string[], RegExp][] = [
    [['--upgrade', ...fuse, '-D', blobs], /--upgrade \(live upgrade\) is not supported yet$/],
    [['--dedup-db', join(root, 'd.db'), ...fuse, '-D', blobs], /--dedup-db \(chunk dedup\) is not supported yet$/],
    [['--failover-policy', 'flush', ...fuse, '-D', blobs], /--failover-policy flush \(failover needs a supervisor\) is not supported yet$/],
    [['singleton', '--fscache', root], /^nydusd: nydusd singleton is not supported yet$/],
    [['nbd', '/dev/nbd0', '-D', blobs], /nydusd nbd is not supported yet$/],
    [['uffd', '--sock', join(root, 'u.sock')], /nydusd uffd is not supported yet$/],
  ];
  for (const [args, re] of cases) {
    const r = nydusd(args);
    assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(reason(r.stderr), re, args.join(' '));
  }
});

test('usage errors exit 2 with one line naming the problem', () => {
  const cases: [string[], RegExp][] = [
    [['--bogus'], /^nydusd: unknown option --bogus; see --help$/],
    [['-m', 'sub', '--mountpoint', mnt, '--bootstrap', boot, '-D', blobs], /--virtual-mountpoint sub: must be an absolute path without "\.\."/],
    [['frobnicate'], /unknown command "frobnicate"/],
    [['--bootstrap', boot, '-D', blobs], /--mountpoint \(FUSE\) or --sock \(virtio-fs\) is required/],
    [['--mountpoint', mnt, '--sock', join(root, 's'), '--bootstrap', boot, '-D', blobs], /--mountpoint and --sock are mutually exclusive/],
    [['fuse', '--sock', join(root, 's'), '--bootstrap', boot, '-D', blobs], /--sock\/--fd are not valid with fuse/],
    [['virtiofs', ...fuse, '-D', blobs], /--mountpoint is not valid with virtiofs/],
    [['virtiofs', '--bootstrap', boot, '-D', blobs], /virtiofs needs --sock/],
    [['--sock', join(root, 's'), '--fd', '3', '--bootstrap', boot, '-D', blobs], /--sock and --fd are mutually exclusive/],
    [['--fuse-threads', '0', ...fuse, '-D', blobs], /--fuse-threads: expected an integer in 1\.\.1024/],
    [['--thread-num', '1025', ...fuse, '-D', blobs], /--fuse-threads: expected an integer in 1\.\.1024/],
    [['--thread-num', 'many', ...fuse, '-D', blobs], /--fuse-threads: expected an integer/],
    [['--log-level', 'loud', ...fuse, '-D', blobs], /^nydusd: Invalid values: Argument: log-level, Given: "loud", Choices: /],
    [['--config', join(root, 'c.json'), '--localfs-dir', blobs, ...fuse], /Arguments (config and localfs-dir|localfs-dir and config) are mutually exclusive/],
    [['--id', 'x', ...fuse, '-D', blobs], /^nydusd: Implications failed: id -> supervisor$/],
    [['--shared-dir', root, ...fuse, '-D', blobs], /(bootstrap and shared-dir|shared-dir and bootstrap|--shared-dir and --bootstrap) (are )?mutually exclusive/],
    [[...fuse], /^nydusd: both --config and --localfs-dir are missing$/],
    [['--rlimit-nofile', '-1', ...fuse, '-D', blobs], /--rlimit-nofile: expected an integer/],
    [['--prefetch-files', join(root, 'no-list'), ...fuse, '-D', blobs], /^nydusd: --prefetch-files .*no-list: cannot read \(ENOENT\)$/],
    [['--prefetch-files', writeConfig('rel-list', '/etc\n\n  usr/bin  \n'), ...fuse, '-D', blobs], /^nydusd: --prefetch-files .*rel-list: "usr\/bin" is not an absolute path$/],
    [['--prefetch-files', writeConfig('ok-list', '/etc\n'), '--mountpoint', mnt, '-D', blobs], /^nydusd: Implications failed: prefetch-files -> bootstrap$/],
  ];
  for (const [args, re] of cases) {
    const r = nydusd(args);
    assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr.trim(), re, args.join(' '));
  }
  // Checked before anything is mounted: the API socket's directory.
  const r = nydusd(['--apisock', join(root, 'nodir', 'api.sock'), '--mountpoint', mnt]);
  assert.equal(r.status, 2, r.stderr);
  assert.match(reason(r.stderr), /^nydusd: --apisock .*nodir\/api\.sock: cannot create a socket in .*nodir \(ENOENT\)$/);
});

test('configuration errors exit 2 and name the file and key', () => {
  const bad = writeConfig('bad.json', JSON.stringify({ device: { backend: { type: 'localfss', config: {} } } }));
  let r = nydusd(['--config', bad, ...fuse]);
  assert.equal(r.status, 2);
  assert.equal(reason(r.stderr), `nydusd: ${bad}: device.backend.type: expected one of localfs, localdisk, oss, s3, registry, http-proxy`);
  r = nydusd(['--config', join(root, 'missing.json'), ...fuse]);
  assert.equal(r.status, 2);
  assert.match(reason(r.stderr), /missing\.json: cannot read the configuration file \(ENOENT\)$/);
  const work = writeConfig('work.json', JSON.stringify({ device: { backend: { type: 'localfs', config: { dir: blobs } }, cache: { type: 'blobcache', config: { work_dir: `${boot}/cache` } } } }));
  r = nydusd(['--config', work, ...fuse]);
  assert.equal(r.status, 2);
  assert.match(reason(r.stderr), /^nydusd: device\.cache\.config\.work_dir .*: cannot create the cache directory \(ENOTDIR\)$/);
  const sdk = { host: 'h', repo: 'r', proxy: { url: 'http://127.0.0.1:9', dragonfly_scheduler_endpoint: 'http://127.0.0.1:9' } };
  r = nydusd(['--config', writeConfig('reg.json', JSON.stringify({ device: { backend: { type: 'registry', config: sdk } } })), ...fuse]);
  assert.equal(r.status, 2);
  assert.equal(reason(r.stderr), 'nydusd: device.backend.config.proxy.dragonfly_scheduler_endpoint (Dragonfly SDK mode) is not supported yet');
  r = nydusd(['--config', writeConfig('reg3.json', JSON.stringify({ device: { backend: { type: 'registry', config: { host: 'h', repo: 'r', auth: 'not-base64!' } } } })), ...fuse]);
  assert.equal(r.status, 2);
  assert.equal(reason(r.stderr), 'nydusd: device.backend.config.auth: not the base64 encoding of "username:password"');
  r = nydusd(['--bootstrap', join(root, 'none.boot'), '--mountpoint', mnt, '-D', blobs]);
  assert.equal(r.status, 2);
  assert.match(reason(r.stderr), /^nydusd: --bootstrap .*none\.boot: no such file$/);
});

test('every check passes up to opening the image, in every mode spelling; a non-image bootstrap exits 1 naming the file', () => {
  for (const args of [
    [...fuse, '-D', blobs],
    ['fuse', ...fuse, '-D', blobs],
    ['--sock', join(root, 'vhost.sock'), '--bootstrap', boot, '-D', blobs],
    ['virtiofs', '--socket-path', join(root, 'vhost.sock'), '--bootstrap', boot, '-D', blobs],
  ]) {
    const r = nydusd(['--rlimit-nofile', '0', ...args]);
    assert.equal(r.status, 1, r.stderr);
    assert.match(reason(r.stderr), new RegExp(`^nydusd: ${boot}: bootstrap at offset 0: not a RAFS bootstrap \\(no v5 magic at 0, no EROFS magic at 1024\\)`));
    assert.match(r.stderr, /INFO {2}\[nydusd\] storage ready: backend localfs, cache blobcache in /);
    assert.match(r.stderr, new RegExp(`starting: ${args.includes('--mountpoint') ? 'fuse' : 'virtiofs'}`));
  }
});

test('logs: warnings for unknown keys, JSON lines with --log-format json, secrets never printed', () => {
  const secret = 'c2VjcmV0OnBhc3N3b3Jk';
  const cfg = writeConfig('reg2.json', JSON.stringify({ device: { backend: { type: 'registry', config: { host: 'h', repo: 'r', auth: 'old', typo_key: 1 } } } }));
  const r = nydusd(['--config', cfg, ...fuse, '--log-level', 'trace', '--log-format', 'json'], { IMAGE_PULL_AUTH: secret });
  // The registry backend starts (IMAGE_PULL_AUTH replaced the bad `auth`); the image does not open.
  assert.equal(r.status, 1, r.stderr);
  const lines = r.stderr.trim().split('\n');
  const records = lines.slice(0, -1).map((l) => JSON.parse(l) as { level: string; msg: string });
  assert.ok(records.some((x) => x.level === 'warn' && x.msg === `${cfg}: unknown key device.backend.config.typo_key ignored`));
  assert.ok(records.some((x) => x.level === 'debug' && x.msg.startsWith('configuration: ') && x.msg.includes('"auth":"<redacted>"')));
  assert.doesNotMatch(r.stderr, new RegExp(secret));
  assert.doesNotMatch(r.stderr, /"old"/);
});

test('--log-file takes the log as text lines (JSON with --log-format json); stderr keeps only the reason', () => {
  const file = join(root, 'nydusd-log');
  const r = nydusd([...fuse, '-D', blobs, '--log-file', file, '--rlimit-nofile', '0']);
  assert.equal(r.status, 1);
  assert.equal(r.stderr.split('\n').length, 2, r.stderr);
  assert.match(r.stderr, /^nydusd: .*image\.boot: bootstrap at offset 0: not a RAFS bootstrap/);
  const lines = readFileSync(`${file}.log`, 'utf8').trim().split('\n');
  for (const l of lines) assert.match(l, /^\[[\d\-T:.]+Z\] (ERROR|WARN |INFO |DEBUG|TRACE) \[[\w:]+\] /, l);
  assert.ok(lines.some((l) => / INFO {2}\[nydusd\] storage ready/.test(l)));
  assert.match(lines.at(-1) ?? '', /^\S+ ERROR \[nydusd\] .*not a RAFS bootstrap/);

  const jsonFile = join(root, 'nydusd-json-log');
  const j = nydusd([...fuse, '-D', blobs, '--log-file', jsonFile, '--log-format', 'json', '--rlimit-nofile', '0']);
  assert.equal(j.status, 1);
  const recs = readFileSync(`${jsonFile}.log`, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { level: string; msg: string });
  assert.ok(recs.some((x) => x.msg.startsWith('storage ready')));
  assert.match(recs.at(-1)?.msg ?? '', /not a RAFS bootstrap/);
  assert.equal(recs.at(-1)?.level, 'error');
});

const child = join(projectRoot, 'dist', 'test', 'unit', 'cli-serve-child.js');

function startServing(extra: string[], mode: string): Promise<{ status: number | null; stderr: string }> & { ready: Promise<void>; kill: (s: NodeJS.Signals) => void } {
  const p = spawn(process.execPath, [child, ...fuse, '-D', blobs, '--rlimit-nofile', '0', ...extra], {
    env: { ...process.env, NYDUSD_TEST_SERVE: mode },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  let markReady!: () => void;
  const ready = new Promise<void>((r) => (markReady = r));
  createInterface({ input: p.stderr }).on('line', (l) => {
    stderr += `${l}\n`;
    if (/ready in [\d.]+ ms \(state RUNNING\)/.test(l)) markReady();
  });
  const done = new Promise<{ status: number | null; stderr: string }>((resolve) => p.on('exit', (status) => resolve({ status, stderr })));
  return Object.assign(done, { ready, kill: (s: NodeJS.Signals) => p.kill(s) });
}

for (const sig of ['SIGTERM', 'SIGINT'] as const) {
  test(`${sig} stops a serving daemon cleanly: service stopped, storage closed, exit 0`, { timeout: 30_000 }, async () => {
    const run = startServing([], 'ok');
    await run.ready;
    run.kill(sig);
    const { status, stderr } = await run;
    assert.equal(status, 0, stderr);
    assert.match(stderr, new RegExp(`stopping: received ${sig}`));
    assert.match(stderr, /test service stopped[\s\S]*storage closed/);
    assert.match(stderr, /stopped \(state STOPPED\)/);
  });
}

test('runtime failures exit 1 with the reason as the last line', { timeout: 30_000 }, async () => {
  const atStart = await startServing([], 'fail');
  assert.equal(atStart.status, 1);
  assert.equal(reason(atStart.stderr), 'nydusd: cannot open /dev/fuse: simulated');
  const later = await startServing([], 'die');
  assert.equal(later.status, 1);
  assert.match(later.stderr, /the service failed: transport lost: simulated/);
});
