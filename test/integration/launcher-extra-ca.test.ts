/**
 * bin/nydusd's launcher (bash lines that exec Node) as users and Kata run it: started as the
 * file itself with NODE_EXTRA_CA_CERTS naming the only CA of an HTTPS blob server, the daemon
 * (http-proxy backend over https) still trusts that CA, although Node never parsed the file at
 * start: the launcher deferred it and the HTTP client read it at the first TLS connection. The
 * daemon is the process spawned (exec, no shell left behind), stops on SIGTERM with status 0,
 * and a missing extra-CA file gives a warning like Node's and the verification error (the daemon
 * stops at start with status 1, as for any backend it cannot reach), never a crash. `node
 * bin/nydusd` (no launcher) serves the same.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readlinkSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { unixSocketListening } from '../../qemu/virtiofsd.js';
import { createImage, defaultBuildOptions } from '../../src/rafs/builder/index.js';
import { binEnv, startDaemon } from '../helpers/daemon.js';
import { binDir } from '../helpers/paths.js';
import { makeCerts } from '../helpers/remote-servers.js';
import type { TlsBlobServer } from '../helpers/tls-blob-server.js';
import { startTlsBlobServer } from '../helpers/tls-blob-server.js';
import { runDriver } from './driver-harness.js';

const kSkip = spawnSync('openssl', ['version']).status === 0 ? false : 'openssl is not installed';
const kVerifyFailed = /self-signed|unable to verify|UNABLE_TO_VERIFY|SELF_SIGNED/i;

/** The environment a process was exec'd with (/proc/PID/environ). */
function execEnv(pid: number): Map<string, string> {
  const pairs = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').filter(Boolean);
  return new Map(pairs.map((p) => [p.slice(0, p.indexOf('=')), p.slice(p.indexOf('=') + 1)]));
}

describe('bin/nydusd defers NODE_EXTRA_CA_CERTS and still trusts it', { skip: kSkip, timeout: 180_000 }, () => {
  const work = mkdtempSync(join(tmpdir(), 'nydusd-launcher-'));
  const src = join(work, 'src');
  const blobDir = join(work, 'blobs');
  const boot = join(work, 'image.boot');
  const text = 'served over https, trusted through NODE_EXTRA_CA_CERTS\n'.repeat(100);
  let certs: ReturnType<typeof makeCerts>;
  let server: TlsBlobServer;
  let n = 0;

  before(async () => {
    mkdirSync(src);
    writeFileSync(join(src, 'hello.txt'), text);
    mkdirSync(blobDir);
    await createImage({ ...defaultBuildOptions(src), blobDir, bootstrapPath: boot });
    certs = makeCerts(join(work, 'certs'));
    server = await startTlsBlobServer(blobDir, { cert: certs.serverPem, key: certs.serverKey });
  });
  after(async () => {
    await server.stop();
    rmSync(work, { recursive: true, force: true });
  });

  /** A v2 configuration: the https server as an http-proxy backend, a fresh cache in `dir`. */
  function config(dir: string): unknown {
    return {
      version: 2,
      backend: { type: 'http-proxy', 'http-proxy': { addr: server.origin, path: '/blobs', timeout: 5, connect_timeout: 5 } },
      cache: { type: 'blobcache', filecache: { work_dir: join(dir, 'cache') } },
    };
  }

  /**
   * Serves the image from the https server with `env` and reads hello.txt through one driver
   * session; returns the read's result, the daemon's log and what its process was exec'd with.
   */
  async function serve(env: NodeJS.ProcessEnv, viaNode = false): Promise<{ status: number | null; out: string; err: string; log: string; environ: Map<string, string>; exe: string }> {
    const dir = join(work, `run-${n++}`);
    mkdirSync(dir);
    const cfg = join(dir, 'config.json');
    writeFileSync(cfg, JSON.stringify(config(dir)));
    const sock = join(dir, 'vhost.sock');
    const d = await startDaemon(['virtiofs', '--config', cfg, '--bootstrap', boot, '--sock', sock], { env, viaNode });
    let r: Awaited<ReturnType<typeof runDriver>>;
    const pid = d.proc.pid!;
    const environ = execEnv(pid);
    const exe = readlinkSync(`/proc/${pid}/exe`);
    try {
      for (let i = 0; i < 500 && !unixSocketListening(sock); i++) await new Promise((res) => setTimeout(res, 10));
      r = await runDriver(sock, ['cat', '/hello.txt'], 60_000);
    } finally {
      // SIGTERM to the pid we spawned: the daemon itself (exec), which stops cleanly.
      assert.equal(await d.stop(), 0, d.log());
    }
    return { status: r.status, out: r.stdout.toString(), err: r.stderr, log: d.log(), environ, exe };
  }

  test('the launcher execs Node without NODE_EXTRA_CA_CERTS, and the daemon trusts its CA at the first TLS connection', async () => {
    const r = await serve({ NODE_EXTRA_CA_CERTS: certs.caPem, 'NYDUS_HEADER_X-Launcher-Test': 'kept' });
    assert.equal(r.status, 0, `${r.err}\n${r.log}`);
    assert.equal(r.out, text);
    // A variable whose name is no shell identifier (a header with dashes) reaches Node: dash
    // would drop it, bash -p keeps it.
    assert.equal(r.environ.get('NYDUS_HEADER_X-Launcher-Test'), 'kept');
    // What Node was exec'd with: the file handed over, not in the variable Node parses at start.
    assert.equal(r.environ.get('NODE_EXTRA_CA_CERTS'), undefined);
    assert.equal(r.environ.get('NYDUS_DEFERRED_EXTRA_CA_CERTS'), certs.caPem);
    // The spawned pid is Node itself: no shell stays between the caller and the daemon.
    assert.equal(r.exe, realpathSync(process.execPath));
    assert.doesNotMatch(r.log, /NODE_EXTRA_CA_CERTS|WARN/, r.log);
  });

  /**
   * Starts the daemon on a backend it cannot trust: it must stop at start with status 1 and say
   * why. Asynchronously: the https server lives on this event loop.
   */
  async function refusedStart(env: NodeJS.ProcessEnv): Promise<{ status: number | null; log: string }> {
    const dir = join(work, `run-${n++}`);
    mkdirSync(dir);
    const cfg = join(dir, 'config.json');
    writeFileSync(cfg, JSON.stringify(config(dir)));
    const child = spawn(join(binDir, 'nydusd'), ['virtiofs', '--config', cfg, '--bootstrap', boot, '--sock', join(dir, 'vhost.sock')], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: binEnv(env),
    });
    let log = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (log += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (log += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    const status = await new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
    clearTimeout(timer);
    return { status, log };
  }

  test('without NODE_EXTRA_CA_CERTS the same server is refused: the daemon stops at start and says why (the test can fail)', async () => {
    const before = server.requests();
    const r = await refusedStart({ NODE_EXTRA_CA_CERTS: undefined });
    assert.equal(r.status, 1, r.log);
    assert.match(r.log, kVerifyFailed);
    assert.equal(server.requests(), before, 'a request got past the TLS handshake');
  });

  test('a missing NODE_EXTRA_CA_CERTS file: a warning like Node\'s, then the verification error, status 1, no crash', async () => {
    const missing = join(work, 'no-such-ca.pem');
    const r = await refusedStart({ NODE_EXTRA_CA_CERTS: missing });
    assert.equal(r.status, 1, r.log);
    assert.ok(r.log.includes(`NODE_EXTRA_CA_CERTS ${missing}: cannot read (ENOENT); the file is ignored`), r.log);
    assert.match(r.log, kVerifyFailed);
  });

  test('`node bin/nydusd` (no launcher: Node parses the file itself) serves the same', async () => {
    const r = await serve({ NODE_EXTRA_CA_CERTS: certs.caPem }, true);
    assert.equal(r.status, 0, `${r.err}\n${r.log}`);
    assert.equal(r.out, text);
    assert.equal(r.environ.get('NODE_EXTRA_CA_CERTS'), certs.caPem);
  });

  test('the launcher passes arguments, standard streams and exit statuses through', () => {
    const bin = join(binDir, 'nydusd');
    const direct = spawnSync(bin, ['--version'], { encoding: 'utf8', env: binEnv() });
    const viaNode = spawnSync(process.execPath, [bin, '--version'], { encoding: 'utf8' });
    assert.equal(direct.status, 0, direct.stderr);
    assert.equal(direct.stdout, viaNode.stdout);
    const bad = spawnSync(bin, ['virtiofs', '--no-such-flag', 'with space'], { encoding: 'utf8', env: binEnv() });
    const badViaNode = spawnSync(process.execPath, [bin, 'virtiofs', '--no-such-flag', 'with space'], { encoding: 'utf8' });
    assert.notEqual(bad.status, 0);
    assert.equal(bad.status, badViaNode.status);
    assert.equal(bad.stderr, badViaNode.stderr);
    const image = spawnSync(join(binDir, 'nydus-image'), ['--version'], { encoding: 'utf8', env: binEnv({ NODE_EXTRA_CA_CERTS: certs.caPem }) });
    assert.equal(image.status, 0, image.stderr);
    assert.match(image.stdout, /\S/);
  });
});
