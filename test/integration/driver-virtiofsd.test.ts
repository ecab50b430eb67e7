// The frontend driver against QEMU 7.2's C virtiofsd: proof that the driver speaks the real
// protocol (negotiation, rings, FUSE) and a record of how the reference backend treats bad input.
// virtiofsd serves one connection and exits, so every driver run gets its own virtiofsd.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';

import type { FaultReport, TreeEntry } from './driver-harness.js';
import {
  comparable, driverJson, faultKinds, hostTree, makeSampleTree, runDriver, startVirtiofsd, tempDir,
  virtiofsdSkip,
} from './driver-harness.js';

const skip = virtiofsdSkip();
const work = tempDir('nydus-driver-vfsd-');
const source = join(work.path, 'src');

before(() => {
  makeSampleTree(source);
});

after(() => {
  work.remove();
});

async function withVirtiofsd<T>(fn: (socket: string) => Promise<T>): Promise<T> {
  const v = await startVirtiofsd(work.path, source);
  try {
    return await fn(v.socket);
  } finally {
    await v.stop();
  }
}

interface Info {
  backend_features: string;
  backend_protocol_features: string;
  init: { major: number; minor: number; flags: string; max_write: number };
  getxattr_security_capability: string;
  destroy: string;
  trace: string[];
}

test('info: the driver negotiates with virtiofsd as QEMU 7.2 does', { skip, timeout: 60_000 }, async () => {
  const info = await withVirtiofsd((s) => driverJson<Info>(s, ['info']));
  // The values observed between QEMU 7.2 and this virtiofsd (reference appendix).
  assert.equal(info.backend_features, '0x175000000');
  assert.equal(info.backend_protocol_features, '0x8c2b');
  assert.ok(info.trace.includes('SET_SLAVE_REQ_FD'));
  assert.equal(info.init.major, 7);
  assert.equal(info.init.minor, 36);
  assert.equal(info.init.flags, '0x44f039');
  assert.equal(info.init.max_write, 1 << 20);
  // virtiofsd runs with xattrs off by default: ENOSYS, as observed with a real guest.
  assert.equal(info.getxattr_security_capability, 'Function not implemented');
  assert.equal(info.destroy, 'Success');
});

test('tree and READ bytes through virtiofsd equal the host directory', { skip, timeout: 120_000 }, async () => {
  const tree = await withVirtiofsd((s) => driverJson<{ entries: TreeEntry[] }>(s, ['tree']));
  assert.deepEqual(comparable(tree.entries), comparable(hostTree(source)));
  const big = await withVirtiofsd((s) => runDriver(s, ['cat', '/usr/lib/big.bin']));
  assert.equal(big.status, 0, big.stderr);
  assert.deepEqual(big.stdout, readFileSync(join(source, 'usr/lib/big.bin')));
});

test('reboot cycles and the cloud-hypervisor sequence work against virtiofsd', { skip, timeout: 120_000 }, async () => {
  interface Cycles { cycles: { ok: boolean; bases: number[] }[]; memory_resent_after_first_start: number }
  const r = await withVirtiofsd((s) => driverJson<Cycles>(s, ['reboot-cycle', '--cycles', '3']));
  assert.ok(r.cycles.every((c) => c.ok && c.bases[1] === 3));
  assert.equal(r.memory_resent_after_first_start, 0);
  const ch = await withVirtiofsd((s) => driverJson<{ entries: TreeEntry[] }>(s, ['--flavor', 'ch', 'tree', '/etc']));
  assert.deepEqual(comparable(ch.entries), comparable(hostTree(join(source, 'etc'))));
});

// What C virtiofsd (libvhost-user, QEMU 7.2) does with each fault, as observed: libvhost-user's
// vu_panic makes virtiofsd exit(1) on any malformed chain or unexpected message, which in a VM
// hangs the guest (reference §1.5) -- the behaviour our backend must not copy. It does not check
// nested indirect tables, the FUSE header length, or vhost-user payload sizes and fds.
const kVirtiofsdExits = new Set([
  'bad-addr', 'desc-loop', 'indirect-bad-len', 'next-out-of-range', 'zero-length',
  'write-before-read', 'avail-jump', 'head-out-of-range', 'oversize-msg', 'unknown-msg', 'bad-ring-addr',
]);

test('faults: what virtiofsd does (it exits on malformed chains and messages)', { skip, timeout: 600_000 }, async (t) => {
  for (const kind of await faultKinds()) {
    const r = await withVirtiofsd((s) => driverJson<FaultReport>(s, ['fault', kind]));
    t.diagnostic(`${kind}: ${r.reaction}, alive after fault: ${String(r.server_alive_after_fault)}`);
    if (kVirtiofsdExits.has(kind)) {
      assert.equal(r.reaction, 'connection-closed', kind);
      assert.equal(r.server_alive_after_fault, false, kind);
    } else if (kind === 'unknown-opcode') {
      assert.equal(r.reaction, 'reply-error');
      assert.equal(r.reply_error, -38);
      assert.ok(r.same_connection_ok);
    } else if (kind === 'no-reply-space') {
      assert.equal(r.reaction, 'empty-completion');
    }
    // One connection per process: a fresh connection never works with C virtiofsd.
    assert.equal(r.fresh_connection_ok, false, kind);
  }
});
