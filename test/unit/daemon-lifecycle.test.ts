import assert from 'node:assert/strict';
import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';

import { Daemon, DaemonStateMachine, runDaemon } from '../../src/daemon/index.js';
import type { DaemonOptions, RunningService, ServeStep } from '../../src/daemon/index.js';
import { StorageService } from '../../src/storage/index.js';
import { nullLogger } from '../../src/util/logger.js';
import { testDaemonOptions } from '../helpers/daemon-options.js';

const root = mkdtempSync(join(tmpdir(), 'nydus-daemon-'));
after(() => rmSync(root, { recursive: true, force: true }));
const blobs = join(root, 'blobs');
const mnt = join(root, 'mnt');
mkdirSync(blobs);
mkdirSync(mnt);
const bootstrap = join(root, 'image.boot');
writeFileSync(bootstrap, Buffer.alloc(8192, 1));

function options(over: Partial<DaemonOptions> = {}, configText?: string): DaemonOptions {
  const text = configText ?? JSON.stringify({ device: { backend: { type: 'localfs', config: { dir: blobs } }, cache: { type: 'blobcache', config: { work_dir: join(root, 'cache') } } } });
  return testDaemonOptions({ mountpoint: mnt, bootstrap, fuseThreads: 4, ...over }, text);
}

interface FakeService extends RunningService {
  stopped: number;
  end(err?: Error): void;
}

function fakeService(events: string[], stopHangs = false): FakeService {
  let settle!: (err?: Error) => void;
  const done = new Promise<void>((resolve, reject) => {
    settle = (err) => (err ? reject(err) : resolve());
  });
  done.catch(() => undefined);
  const svc: FakeService = {
    done,
    stopped: 0,
    stop: () => {
      svc.stopped++;
      events.push('service.stop');
      return stopHangs ? new Promise<void>(() => undefined) : Promise.resolve();
    },
    end: (err) => settle(err),
  };
  return svc;
}

function deps(events: string[], serve?: ServeStep) {
  return {
    log: nullLogger(),
    applyRlimit: (): void => undefined,
    ...(serve ? { serve } : {}),
    createStorage: async (...args: Parameters<typeof StorageService.create>): Promise<StorageService> => {
      const s = await StorageService.create(...args);
      const close = s.close.bind(s);
      s.close = async (): Promise<void> => {
        events.push('storage.close');
        await close();
      };
      events.push('storage.create');
      return s;
    },
  };
}

test('state machine follows upstream transitions and refuses the rest', () => {
  const m = new DaemonStateMachine();
  assert.equal(m.state, 'INIT');
  assert.throws(() => m.fire('Start'), { code: 'ERR_DAEMON_STATE', message: 'daemon event Start is not valid in state INIT' });
  assert.equal(m.fire('Mount'), 'READY');
  assert.equal(m.fire('Start'), 'RUNNING');
  assert.throws(() => m.fire('Exit'), { code: 'ERR_DAEMON_STATE' });
  assert.equal(m.fire('Stop'), 'READY');
  assert.equal(m.fire('Start'), 'RUNNING');
  assert.equal(m.fire('Stop'), 'READY');
  assert.equal(m.fire('Umount'), 'STOPPED');
  assert.equal(m.can('Mount'), false);
  const t = new DaemonStateMachine();
  assert.equal(t.fire('Takeover'), 'READY');
  assert.equal(new DaemonStateMachine().fire('Stop'), 'STOPPED');
});

test('start reaches RUNNING with storage ready; stop unmounts before closing storage', async () => {
  const events: string[] = [];
  let svc: FakeService | undefined;
  const d = new Daemon(
    options(),
    deps(events, (ctx) => {
      assert.equal(ctx.storage?.settings.cache.kind, 'blobcache');
      events.push('serve');
      svc = fakeService(events);
      return Promise.resolve(svc);
    }),
  );
  await d.start();
  assert.equal(d.state, 'RUNNING');
  await Promise.all([d.stop('test'), d.stop('again')]);
  assert.equal(d.state, 'STOPPED');
  assert.deepEqual(events, ['storage.create', 'serve', 'service.stop', 'storage.close']);
  assert.equal(svc?.stopped, 1);
});

test('the default serve step opens the bootstrap: a non-image fails with ERR_RAFS_CORRUPT after every check passed', async () => {
  const events: string[] = [];
  const d = new Daemon(options(), deps(events));
  await assert.rejects(d.start(), { code: 'ERR_RAFS_CORRUPT' });
  assert.equal(d.state, 'STOPPED');
  assert.deepEqual(events, ['storage.create', 'storage.close']);
});

test('preparation failures: bootstrap, mountpoint, socket, unsupported backend and cache', async () => {
  const fileFd = openSync(bootstrap, 'r');
  after(() => closeSync(fileFd));
  const cases: [DaemonOptions, RegExp, string][] = [
    [options({ bootstrap: join(root, 'missing.boot') }), /^--bootstrap .*missing\.boot: no such file$/, 'ERR_USAGE'],
    [options({ bootstrap: root }), /--bootstrap .*: (not a regular file|cannot open \(EISDIR\))$/, 'ERR_USAGE'],
    [options({ mountpoint: join(root, 'nomnt') }), /^--mountpoint .*nomnt: no such directory$/, 'ERR_USAGE'],
    [options({ mountpoint: bootstrap }), /^--mountpoint .*: not a directory$/, 'ERR_USAGE'],
    [options({ mode: 'virtiofs', mountpoint: undefined, socketPath: join(root, 'nodir', 's.sock') }), /^--sock .*: cannot create a socket in .*nodir/, 'ERR_USAGE'],
    [options({ mode: 'virtiofs', mountpoint: undefined, socketPath: bootstrap }), /exists and is not a socket/, 'ERR_USAGE'],
    [options({ mode: 'virtiofs', mountpoint: undefined, listenFd: fileFd }), new RegExp(`^--fd ${fileFd}: not a socket$`), 'ERR_USAGE'],
    [options({ mode: 'virtiofs', mountpoint: undefined, listenFd: 99999 }), /^--fd 99999: not an open file descriptor \(EBADF\)$/, 'ERR_USAGE'],
    [
      options({}, '{"version": 2, "backend": {"type": "registry", "registry": {"host": "h", "repo": "r", "proxy": {"url": "http://127.0.0.1:9", "dragonfly_scheduler_endpoint": "http://127.0.0.1:9"}}}}'),
      /^backend\.registry\.proxy\.dragonfly_scheduler_endpoint \(Dragonfly SDK mode\) is not supported yet$/,
      'ERR_NOT_SUPPORTED',
    ],
    [options({}, `{"version": 2, "backend": {"type": "localdisk", "localdisk": {"device_path": "${bootstrap}", "disable_gpt": true}}}`), /^backend\.localdisk\.disable_gpt .*is not supported yet$/, 'ERR_NOT_SUPPORTED'],
    [options({}, '{"version": 2, "backend": {"type": "registry", "registry": {"host": "h", "repo": "Not/A:Repo"}}}'), /^backend\.registry\.repo "Not\/A:Repo": not a repository name/, 'ERR_CONFIG'],
    [options({}, `{"version": 2, "backend": {"type": "localfs", "localfs": {"dir": "${blobs}"}}, "cache": {"type": "fscache", "fscache": {"work_dir": "/tmp"}}}`), /^cache type fscache is not supported yet$/, 'ERR_NOT_SUPPORTED'],
    [options({}, `{"version": 2, "backend": {"type": "localfs", "localfs": {"dir": "${blobs}"}}, "cache": {"type": "blobcache", "compressed": true, "filecache": {"enable_encryption": true, "encryption_key": "${'01'.repeat(16)}${'02'.repeat(16)}"}}}`), /^cache\.compressed and cache\.filecache\.enable_encryption cannot be combined/, 'ERR_CONFIG'],
    [options({}, `{"version": 2, "backend": {"type": "localfs", "localfs": {"dir": "${join(root, 'nope')}"}}}`), /^backend\.localfs\.dir .*nope: no such directory$/, 'ERR_CONFIG'],
    [options({}, `{"version": 2, "backend": {"type": "localfs", "localfs": {"dir": "${blobs}"}}, "cache": {"type": "blobcache", "filecache": {"work_dir": "${bootstrap}/x"}}}`), /^cache\.filecache\.work_dir .*: cannot create the cache directory \(ENOTDIR\)$/, 'ERR_CONFIG'],
    [options({}, '{"version": 2}'), /^backend: a storage backend is required/, 'ERR_CONFIG'],
  ];
  for (const [o, re, code] of cases) {
    const events: string[] = [];
    const d = new Daemon(o, deps(events, () => Promise.reject(new Error('serve must not be reached'))));
    await assert.rejects(d.start(), (e: Error & { code?: string }) => {
      assert.match(e.message, re);
      assert.equal(e.code, code, e.message);
      return true;
    });
    assert.equal(d.state, 'STOPPED');
  }
});

test('runDaemon: a signal stops the daemon cleanly (exit 0)', async () => {
  const events: string[] = [];
  const svc = fakeService(events);
  const p = runDaemon(options(), deps(events, () => Promise.resolve(svc)), { signals: ['SIGUSR2'] });
  while (!events.includes('storage.create')) await new Promise((r) => setTimeout(r, 5));
  await new Promise((r) => setTimeout(r, 20));
  process.kill(process.pid, 'SIGUSR2');
  assert.equal(await p, 0);
  assert.deepEqual(events, ['storage.create', 'service.stop', 'storage.close']);
  assert.equal(process.listenerCount('SIGUSR2'), 0, 'signal handlers removed');
});

test('runDaemon: the service ending on its own stops with 0, failing with 1', async () => {
  for (const fail of [false, true]) {
    const events: string[] = [];
    const svc = fakeService(events);
    const p = runDaemon(options(), deps(events, () => Promise.resolve(svc)), { signals: [] });
    setTimeout(() => svc.end(fail ? new Error('transport broke') : undefined), 10);
    assert.equal(await p, fail ? 1 : 0);
    assert.deepEqual(events, ['storage.create', 'service.stop', 'storage.close']);
  }
});

test('runDaemon: a stop that does not finish in time fails with ERR_STOP_TIMEOUT', async () => {
  const events: string[] = [];
  const svc = fakeService(events, true);
  const p = runDaemon(options({ stopTimeoutMs: 50 }), deps(events, () => Promise.resolve(svc)), { signals: [] });
  setTimeout(() => svc.end(), 10);
  await assert.rejects(p, { code: 'ERR_STOP_TIMEOUT', message: 'stop did not finish within 50 ms' });
});

test('--rlimit-nofile: 0 leaves the limit alone; a value is applied; an unraisable hard limit degrades with a warning', async () => {
  const { applyRlimitNofile } = await import('../../src/daemon/index.js');
  const { getRlimitNofile } = await import('../../src/native/index.js');
  const { createLogger } = await import('../../src/util/logger.js');
  const { Writable } = await import('node:stream');
  const lines: string[] = [];
  const log = createLogger({ level: 'info', stream: new Writable({ write: (c: Buffer, _e, cb) => (lines.push(c.toString()), cb()) }) });
  const before = getRlimitNofile();
  applyRlimitNofile(0, log);
  assert.deepEqual(getRlimitNofile(), before);
  // This test file runs in its own process, so lowering its limits is harmless.
  const lower = Math.min(before.soft, 4096) - 1;
  applyRlimitNofile(lower, log);
  assert.deepEqual(getRlimitNofile(), { soft: lower, hard: lower });
  applyRlimitNofile(lower + 100, log);
  const after1 = getRlimitNofile();
  await new Promise((r) => setImmediate(r));
  if (after1.soft === lower + 100) {
    assert.equal(after1.hard, lower + 100, 'privileged: raised');
  } else {
    assert.deepEqual(after1, { soft: lower, hard: lower });
    assert.ok(lines.some((l) => /WARN .*cannot raise the hard limit to \d+ \(EPERM\); using \d+/.test(l)), lines.join(''));
  }
  await log.close();
});
