/**
 * The ABI between TypeScript and the native core (native/core/abi/js_abi.h <-> src/native/abi.ts):
 * every record field, limit, code and statistic name, compared key by key in both directions,
 * the values TypeScript uses compared with the addon's, and the kernel constants TypeScript keeps
 * for its API (FUSE opcodes, FOPEN flags) compared with the ones the core was compiled with.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';

import { kBuckets, kFopNames, kFops } from '../../src/daemon/metrics.js';
import { FuseSession, fuseDirentSize, kFopen, kFuseOp } from '../../src/fuse/index.js';
import { readAbi } from '../../src/native/abi.js';
import type { RawAbiInfo } from '../../src/native/abi.js';
import { loadAddon } from '../../src/native/binding.js';
import { kCodeNames, kFopArrayLengths, kFopCounterNames, kFopKindNames, kLimitNames, kRecordFields, kStatNames, nativeAbi } from '../../src/native/index.js';
import * as W from '../helpers/fuse-wire.js';

const raw = (): RawAbiInfo => loadAddon().abiInfo();
const sorted = (xs: Iterable<string>): string[] => [...xs].sort();

test('every record has the same fields on both sides, densely packed, at the same slots', () => {
  const info = raw();
  const abi = nativeAbi();
  assert.deepEqual(sorted(Object.keys(info.records)), sorted(Object.keys(kRecordFields)));
  for (const [name, fields] of Object.entries(kRecordFields)) {
    const c = info.records[name];
    assert.ok(c, name);
    assert.deepEqual(sorted(Object.keys(c.fields)), sorted(fields), `${name} fields`);
    // Positional records: the slots are exactly 0 .. stride-1.
    assert.deepEqual(
      Object.values(c.fields).sort((a, b) => a - b),
      Array.from({ length: c.stride }, (_, i) => i),
      `${name} slots`,
    );
    const ts = abi.records[name as keyof typeof kRecordFields] as unknown as Record<string, number>;
    assert.equal(ts['stride'], c.stride, `${name} stride`);
    for (const f of fields) assert.equal(ts[f], c.fields[f], `${name}.${f}`);
  }
  // A dirent record starts with an entry record (the encoders write one into the other).
  for (const f of kRecordFields.entry) assert.equal(abi.records.dirent[f], abi.records.entry[f], `dirent.${f}`);
});

test('every limit and code has the same name and value on both sides', () => {
  const info = raw();
  const abi = nativeAbi();
  assert.deepEqual(sorted(Object.keys(info.limits)), sorted(kLimitNames));
  assert.deepEqual(sorted(Object.keys(info.codes)), sorted(kCodeNames));
  for (const k of kLimitNames) assert.equal(abi.limits[k], info.limits[k], k);
  for (const k of kCodeNames) assert.equal(abi.codes[k], info.codes[k], k);
  // Facts both sides rely on (kernel wire sizes, upstream's formats): fixed, not derived.
  assert.equal(info.limits['maxErrno'], 511);
  assert.equal(info.limits['direntHeader'], 24);
  assert.equal(info.limits['direntPlusHeader'], 152);
  assert.equal(info.limits['chunkMapHeaderSize'], 4096);
  assert.equal(info.limits['maxReplyPayload'], (info.limits['maxPages'] ?? 0) * 4096);
  // Upcall kinds sit above every opcode (and CUSE_INIT, 4096).
  for (const k of ['upcallReadMiss', 'upcallForget', 'upcallInit', 'upcallDestroy', 'upcallClosed'] as const) {
    assert.ok(abi.codes[k] > 4096 && abi.codes[k] > abi.limits.opcodeTableSize, k);
  }
});

test('the FUSE opcodes and FOPEN flags TypeScript exports are the kernel ABI the core uses', () => {
  const info = raw();
  for (const [name, op] of Object.entries(kFuseOp)) assert.equal(info.opcodes[name], op, `FUSE_${name}`);
  const codes = nativeAbi().codes;
  assert.deepEqual(kFopen, {
    DIRECT_IO: codes.fopenDirectIo,
    KEEP_CACHE: codes.fopenKeepCache,
    NONSEEKABLE: codes.fopenNonseekable,
    CACHE_DIR: codes.fopenCacheDir,
    STREAM: codes.fopenStream,
    NOFLUSH: codes.fopenNoflush,
  });
  assert.equal(fuseDirentSize(5, false), 32);
  assert.equal(fuseDirentSize(5, true), 160);
});

test('statistics: the names match, and a live session reports exactly them', async () => {
  const info = raw();
  assert.deepEqual(sorted(Object.keys(info.stats)), sorted(Object.keys(kStatNames)));
  for (const [group, names] of Object.entries(kStatNames)) {
    assert.deepEqual(sorted(info.stats[group] ?? []), sorted(names), `${group} stats`);
  }
  const dir = await mkdtemp(join(tmpdir(), 'nydus-abi-'));
  const s = new FuseSession({}, { logger: { error: () => undefined, warn: () => undefined } });
  try {
    s.attachVirtio({ socketPath: join(dir, 'vu.sock') });
    const st = s.stats();
    assert.deepEqual(sorted(Object.keys(st)), sorted([...kStatNames.session, 'initialized', 'ops', 'transport', 'jsBatches', 'jsRecords']));
    for (const k of kStatNames.session) assert.equal(typeof st[k], 'number', k);
    assert.equal(st.transport?.kind, 'virtio');
    assert.deepEqual(sorted(Object.keys(st.transport ?? {})), sorted([...kStatNames.virtio, 'kind', 'connected']));
  } finally {
    s.stop();
    await rm(dir, { recursive: true, force: true });
  }
});

test('per-mount operation counters: the same names, array lengths and operation order on both sides', async () => {
  const info = raw();
  const abi = nativeAbi();
  // Upstream's FsIoStats shapes, which clients index: fixed, not derived.
  assert.equal(info.limits['fopKinds'], 15);
  assert.equal(info.limits['readSizeBuckets'], 8);
  assert.equal(info.limits['readLatencyBuckets'], 8);
  assert.equal(info.limits['maxFopSlots'], 256);
  assert.equal(kFops, abi.limits.fopKinds);
  assert.equal(kBuckets, abi.limits.readSizeBuckets);
  assert.equal(kBuckets, abi.limits.readLatencyBuckets);
  assert.deepEqual(info.fopKinds, [...kFopKindNames]);
  assert.deepEqual(kFopNames, kFopKindNames);
  for (const [i, name] of kFopKindNames.entries()) assert.equal(abi.fopKinds[name], i, name);
  // Each counted operation is the FUSE opcode of its name (batch_forget: BATCH_FORGET).
  assert.equal(info.fopOpcodes.length, kFopKindNames.length);
  for (const [i, name] of kFopKindNames.entries()) assert.equal(info.fopOpcodes[i], info.opcodes[name.toUpperCase()], `FUSE_${name.toUpperCase()}`);
  assert.deepEqual(sorted(Object.keys(info.statArrays['fop'] ?? {})), sorted(Object.keys(kFopArrayLengths)));
  for (const [name, limit] of Object.entries(kFopArrayLengths)) assert.equal(info.statArrays['fop']?.[name], abi.limits[limit], name);
  assert.deepEqual(sorted(kStatNames.fop), sorted([...kFopCounterNames, ...Object.keys(kFopArrayLengths)]));

  // A live session reports exactly these, and counts a LOOKUP where the table says.
  const s = new FuseSession(
    { lookup: () => ({ nodeid: 0, entryTimeout: 1 }) },
    { logger: { error: () => undefined, warn: () => undefined }, immutable: true },
  );
  try {
    s.attachLoopback();
    assert.equal(W.parseReply(await s.inject(W.initRequest(), 80)).error, 0);
    for (let i = 0; i < 3; i++) await s.inject(W.request(kFuseOp.LOOKUP, 1, W.nameBody('x')), 256);
    const st = s.fopStats(0);
    assert.deepEqual(sorted(Object.keys(st)), sorted(kStatNames.fop));
    for (const k of kFopCounterNames) assert.equal(typeof st[k], 'number', k);
    for (const [k, limit] of Object.entries(kFopArrayLengths) as [keyof typeof kFopArrayLengths, keyof typeof abi.limits][]) {
      assert.equal(st[k].length, abi.limits[limit], k);
    }
    // One by the handler, two from the reply cache: all three are LOOKUP hits of slot 0.
    assert.equal(st.hits[abi.fopKinds.lookup], 3);
    assert.equal(st.hits.reduce((a, b) => a + b, 0), 3);
    assert.throws(() => s.fopStats(abi.limits.maxFopSlots), { code: 'ERR_INVALID_ARG' });
  } finally {
    s.stop();
  }
});

test('an addon that lacks a name TypeScript needs is refused with ERR_NATIVE_ABI', () => {
  const info = raw();
  assert.doesNotThrow(() => readAbi(info));
  const noField = structuredClone(info);
  delete noField.records['upcall']?.fields['nodeid'];
  assert.throws(() => readAbi(noField), { code: 'ERR_NATIVE_ABI', message: /upcall field nodeid/ });
  const noLimit = structuredClone(info);
  delete noLimit.limits['maxBlobSlots'];
  assert.throws(() => readAbi(noLimit), { code: 'ERR_NATIVE_ABI', message: /limit maxBlobSlots/ });
  const noRecord = structuredClone(info);
  delete noRecord.records['fill'];
  assert.throws(() => readAbi(noRecord), { code: 'ERR_NATIVE_ABI', message: /fill record/ });
  const shortArray = structuredClone(info);
  (shortArray.statArrays['fop'] as Record<string, number>)['readLatencyDist'] = 7;
  assert.throws(() => readAbi(shortArray), { code: 'ERR_NATIVE_ABI', message: /counter array readLatencyDist/ });
  const swapped = structuredClone(info);
  [swapped.fopKinds[0], swapped.fopKinds[1]] = [swapped.fopKinds[1] as string, swapped.fopKinds[0] as string];
  assert.throws(() => readAbi(swapped), { code: 'ERR_NATIVE_ABI', message: /counted operation getattr at slot 0/ });
});
