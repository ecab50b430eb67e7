// The frontend driver against our vhost-user-fs backend (nydus_vu_testd: VhostUserFsBackend with
// a test-only FUSE responder serving a copy of a host directory): the tree it sees equals the
// host's, READ bytes match, both VMM message sequences and guest reboots work, and every fault
// kind leaves the backend serving new connections.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';

import type { Backend, FaultReport, TreeEntry } from './driver-harness.js';
import {
  comparable, driverJson, faultKinds, hostTree, makeSampleTree, runDriver, startTestd, tempDir,
} from './driver-harness.js';

const work = tempDir('nydus-driver-testd-');
const source = join(work.path, 'src');
let backend: Backend;

before(async () => {
  makeSampleTree(source);
  backend = await startTestd(work.path, source, ['--synthetic', 'synthetic.bin:8M']);
});

after(async () => {
  await backend.stop();
  work.remove();
});

interface Tree {
  root: string;
  entries: TreeEntry[];
}

test('tree over virtio-fs equals the host directory', { timeout: 120_000 }, async () => {
  const tree = await driverJson<Tree>(backend.socket, ['tree']);
  const seen = comparable(tree.entries.filter((e) => e.path !== '/synthetic.bin'));
  assert.deepEqual(seen, comparable(hostTree(source)));
  const synthetic = tree.entries.find((e) => e.path === '/synthetic.bin');
  assert.equal(synthetic?.size, 8 << 20);
  assert.match(synthetic?.sha256 ?? '', /^[0-9a-f]{64}$/);
});

test('cat returns the exact file bytes, across READs of the negotiated maximum', { timeout: 60_000 }, async () => {
  for (const rel of ['usr/lib/big.bin', 'usr/lib/odd.bin', 'etc/conf.d/empty', 'usr/ro']) {
    const r = await runDriver(backend.socket, ['cat', `/${rel}`]);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(r.stdout, readFileSync(join(source, rel)), rel);
  }
  const missing = await runDriver(backend.socket, ['cat', '/no/such/file']);
  assert.equal(missing.status, 1);
  assert.match(missing.stderr, /No such file/);
  const link = await runDriver(backend.socket, ['cat', '/usr/hostname-link']);
  assert.equal(link.status, 1);
  assert.match(link.stderr, /symlink to \.\.\/etc\/hostname/);
});

interface Info {
  backend_features: string;
  backend_protocol_features: string;
  acked_protocol_features: string;
  queue_num: number;
  max_mem_slots: number;
  init: { major: number; minor: number; max_write: number; max_pages: number };
  max_read: number;
  getattr_root: string;
  statfs: string;
  getxattr_security_capability: string;
  destroy: string;
  trace: string[];
}

test('info: negotiation as QEMU 7.2 sees it, replies conform', async () => {
  const info = await driverJson<Info>(backend.socket, ['info']);
  assert.equal(info.backend_features, '0x170000000');
  assert.equal(info.backend_protocol_features, '0x8009');
  assert.equal(info.queue_num, 2);
  assert.equal(info.max_mem_slots, 32);
  assert.equal(info.init.major, 7);
  assert.equal(info.init.minor, 38);
  assert.equal(info.max_read, 1 << 20);
  assert.deepEqual(info.trace.slice(0, 7), [
    'GET_FEATURES', 'GET_PROTOCOL_FEATURES', 'SET_PROTOCOL_FEATURES 0x8009', 'GET_QUEUE_NUM',
    'GET_MAX_MEM_SLOTS', 'SET_OWNER', 'GET_FEATURES',
  ]);
  assert.ok(info.trace.includes('ADD_MEM_REG gpa=0xc0000 size=0xff40000'));
  assert.equal(info.getattr_root, 'Success');
  assert.equal(info.statfs, 'Success');
  assert.equal(info.getxattr_security_capability, 'No data available');
  assert.equal(info.destroy, 'Success');
});

test('cloud-hypervisor sequence and the SET_MEM_TABLE-only QEMU variant serve the same tree', { timeout: 120_000 }, async () => {
  const expected = comparable(hostTree(join(source, 'usr')));
  for (const flags of [['--flavor', 'ch'], ['--no-mem-slots'], ['--queue-size', '128']]) {
    const tree = await driverJson<Tree>(backend.socket, [...flags, 'tree', '/usr']);
    assert.deepEqual(comparable(tree.entries), expected, flags.join(' '));
  }
  const info = await driverJson<Info>(backend.socket, ['--flavor', 'ch', 'info']);
  assert.equal(info.trace[0], 'SET_OWNER');
  assert.equal(info.acked_protocol_features, '0x8009');
  assert.ok(info.trace.includes('SET_MEM_TABLE 1 regions'));
});

interface Cycles {
  cycles: { ok: boolean; bases: number[]; init_minor: number }[];
  memory_resent_after_first_start: number;
}

test('guest reboots on one connection: rings stop and restart, memory is not resent', async () => {
  const r = await driverJson<Cycles>(backend.socket, ['reboot-cycle', '--cycles', '3']);
  assert.equal(r.cycles.length, 3);
  for (const c of r.cycles) {
    assert.ok(c.ok);
    assert.deepEqual(c.bases, [0, 3]); // INIT, GETATTR, STATFS on the request queue; nothing on hiprio
  }
  assert.equal(r.memory_resent_after_first_start, 0);
  const ch = await driverJson<Cycles>(backend.socket, ['--flavor', 'ch', 'reboot-cycle', '--cycles', '2']);
  assert.ok(ch.cycles.every((c) => c.ok));
});

// How our backend answers each fault (reference §2.4 policy): chains with a reachable header and
// writable space get EIO, others complete empty, ring-protocol violations break only that queue,
// malformed vhost-user messages close only that connection.
const kExpected: Record<string, string> = {
  'bad-addr': 'reply-eio',
  'desc-loop': 'reply-eio',
  'nested-indirect': 'empty-completion',
  'indirect-bad-len': 'empty-completion',
  'next-out-of-range': 'empty-completion',
  'zero-length': 'reply-eio',
  'write-before-read': 'reply-eio',
  'avail-jump': 'queue-broken',
  'head-out-of-range': 'queue-broken',
  'truncated-fuse': 'reply-eio',
  'short-fuse-header': 'reply-eio',
  'unknown-opcode': 'reply-error',
  'no-reply-space': 'empty-completion',
  'oversize-msg': 'connection-closed',
  'bad-size-msg': 'connection-closed',
  'fd-on-plain-msg': 'connection-closed',
  'too-many-fds': 'connection-closed',
  'unknown-msg': 'refused',
  'half-message': 'disconnected-by-driver',
  'abrupt-disconnect': 'disconnected-by-driver',
  'bad-ring-addr': 'accepted',
};

test('every fault kind: the backend reacts as designed and keeps serving', { timeout: 300_000 }, async (t) => {
  const kinds = await faultKinds();
  assert.deepEqual([...kinds].sort(), Object.keys(kExpected).sort());
  for (const kind of kinds) {
    const r = await driverJson<FaultReport>(backend.socket, ['fault', kind]);
    t.diagnostic(`${kind}: ${r.reaction} same_connection_ok=${String(r.same_connection_ok)}`);
    assert.equal(r.reaction, kExpected[kind], kind);
    assert.ok(r.server_alive_after_fault, `${kind}: backend died`);
    assert.ok(r.fresh_connection_ok, `${kind}: no fresh connection`);
    const queueStillFine = r.reaction.startsWith('reply') || r.reaction === 'empty-completion' ||
      r.reaction === 'refused';
    assert.equal(r.same_connection_ok, queueStillFine, `${kind}: same connection`);
  }
  if (kExpected['unknown-opcode'] === 'reply-error') {
    const r = await driverJson<FaultReport>(backend.socket, ['fault', 'unknown-opcode']);
    assert.equal(r.reply_error, -38);
  }
});

interface Bench {
  ops: number;
  errors: number;
  mb_per_s: number;
  server_cpu_us_per_op?: number;
}

test('bench loops complete with correct replies (smoke, not a measurement)', { timeout: 60_000 }, async () => {
  const read = await driverJson<Bench>(backend.socket,
    ['bench', 'read', '--path', '/synthetic.bin', '--size', '64K', '--qd', '8', '--seconds', '0.3', '--random']);
  assert.ok(read.ops > 0);
  assert.equal(read.errors, 0);
  assert.ok(read.server_cpu_us_per_op !== undefined);
  const meta = await driverJson<Bench>(backend.socket,
    ['bench', 'meta', '--path', '/etc/hostname', '--op', 'lookup', '--qd', '4', '--seconds', '0.3']);
  assert.ok(meta.ops > 0);
  assert.equal(meta.errors, 0);
});

interface Stopped {
  stopped: boolean;
  connections: number;
  protocol_errors: number;
  bad_chains: number;
  broken_queues: number;
  stale_completions: number;
}

test('sequential frontends reconnect; the stop statistics account for every fault', { timeout: 60_000 }, async () => {
  for (let i = 0; i < 5; i++) await driverJson<Info>(backend.socket, ['info']);
  const out = await backend.stop();
  const stats = JSON.parse(out.trim().split('\n').pop() ?? '{}') as Stopped;
  assert.ok(stats.stopped);
  assert.ok(stats.connections >= 30, `connections ${stats.connections}`);
  assert.ok(stats.protocol_errors >= 5); // oversize, bad size, fd, too many fds, half message
  assert.ok(stats.bad_chains >= 7); // the seven malformed-chain kinds
  assert.ok(stats.broken_queues >= 2);
});
