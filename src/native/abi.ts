/**
 * The numbers TypeScript shares with the native core: the slots of the numeric records that
 * cross the binding, the limits both sides enforce, the codes of upcall kinds and flags, and the
 * names of the statistics. They are defined once, in native/core/abi/js_abi.h; the addon reports
 * them (`abiInfo()`) and this module reads them once, at the first use.
 *
 * Only the names are spelled here (so the layouts are typed); every value comes from C++.
 * test/unit/native-abi.test.ts iterates both sides and fails when a name is missing on either,
 * or when a value TypeScript keeps for its API (FUSE opcodes, FOPEN flags) differs from C++.
 */
import { NydusError } from '../util/errors.js';
import { loadAddon } from './binding.js';

const kAttrFields = ['ino', 'size', 'blocks', 'atime', 'atimeNsec', 'mtime', 'mtimeNsec', 'ctime', 'ctimeNsec', 'mode', 'nlink', 'uid', 'gid', 'rdev', 'blksize', 'flags'] as const;
const kEntryFields = ['nodeid', 'generation', 'entryValid', 'attrValid', ...kAttrFields] as const;

/** Field names of every record, as the C++ lists name them. */
export const kRecordFields = {
  upcall: ['token', 'opcode', 'nodeid', 'uid', 'gid', 'pid', 'a0', 'a1', 'a2', 'a3', 'byteOffset', 'byteLength'],
  entry: kEntryFields,
  dirent: [...kEntryFields, 'off', 'nameOffset', 'nameLength', 'type'],
  statfs: ['blocks', 'bfree', 'bavail', 'files', 'ffree', 'bsize', 'namelen', 'frsize'],
  extent: ['fileOffset', 'length', 'blobSlot', 'chunkIndex', 'sourceOffset', 'sourceSize', 'flags'],
  fill: ['srcOffset', 'storedSize', 'fileOffset', 'size', 'compressed', 'index', 'hasDigest', 'compressedOffset'],
  layoutChunk: ['index', 'uncompressedOffset', 'compressedOffset', 'uncompressedSize', 'compressedSize', 'compressed'],
} as const;

export const kLimitNames = [
  'protocolMinor',
  'opcodeTableSize',
  'maxPages',
  'maxReplyPayload',
  'maxErrno',
  'direntHeader',
  'direntPlusHeader',
  'maxChunk',
  'maxBlobSlots',
  'maxExtents',
  'minUpcallRecords',
  'minUpcallBytes',
  'maxFuseThreads',
  'maxRequestQueues',
  'maxQueueSize',
  'maxInjectReply',
  'chunkMapHeaderSize',
  'fopKinds',
  'readSizeBuckets',
  'readLatencyBuckets',
  'maxFopSlots',
] as const;

export const kCodeNames = [
  'upcallReadMiss',
  'upcallForget',
  'upcallInit',
  'upcallDestroy',
  'upcallClosed',
  'destroyRequest',
  'destroyReset',
  'transportVirtio',
  'transportFuseDev',
  'noFh',
  'dispatchBatch',
  'dispatchLoopback',
  'sessionImmutable',
  'extentHole',
  'fsyncFdatasync',
  'fopenDirectIo',
  'fopenKeepCache',
  'fopenNonseekable',
  'fopenCacheDir',
  'fopenStream',
  'fopenNoflush',
] as const;

/**
 * The per-mount operation counters (NYDUS_ABI_FOP_*): single counters, and arrays with the limit
 * that is their length. Arrays over operations are indexed in kFopKindNames order.
 */
export const kFopCounterNames = ['dataRead'] as const;
export const kFopArrayLengths = {
  hits: 'fopKinds',
  errors: 'fopKinds',
  latencyUs: 'fopKinds',
  blockCountRead: 'readSizeBuckets',
  readLatencyDist: 'readLatencyBuckets',
} as const satisfies Record<string, LimitName>;

/** The operations the counters count, in counter order (upstream StatsFop). */
export const kFopKindNames = [
  'getattr',
  'readlink',
  'open',
  'release',
  'read',
  'statfs',
  'getxattr',
  'listxattr',
  'opendir',
  'lookup',
  'readdir',
  'readdirplus',
  'access',
  'forget',
  'batch_forget',
] as const;

/** Statistic names per group (a session's own, its transport's, a mount slot's counters). */
export const kStatNames = {
  session: [
    'requests',
    'nativeReplies',
    'upcalls',
    'handlerReplies',
    'errorsReturned',
    'badRequests',
    'garbageReplies',
    'staleReplies',
    'replyOverflows',
    'forgets',
    'fastReads',
    'fastReadBytes',
    'readMisses',
    'missRetries',
    'fillServed',
    'parkedNow',
    'cachedReplies',
    'nativeOpens',
    'pendingNow',
    'extentTables',
    'negotiatedMinor',
    'preadvCalls',
    'bytesFromCache',
    'bytesFromFill',
    'bytesZero',
  ],
  fusedev: ['requests', 'replies', 'bytesRead', 'bytesWritten', 'writeErrors', 'threads'],
  virtio: [
    'requests',
    'bytesIn',
    'bytesOut',
    'badChains',
    'brokenQueues',
    'connections',
    'messages',
    'protocolErrors',
    'refusedMessages',
    'staleCompletions',
    'notifications',
  ],
  fop: [...kFopCounterNames, ...(Object.keys(kFopArrayLengths) as FopArrayName[])],
} as const;

export type RecordName = keyof typeof kRecordFields;
export type LimitName = (typeof kLimitNames)[number];
export type CodeName = (typeof kCodeNames)[number];
export type StatGroup = keyof typeof kStatNames;
export type StatName<G extends StatGroup> = (typeof kStatNames)[G][number];
export type FopCounterName = (typeof kFopCounterNames)[number];
export type FopArrayName = keyof typeof kFopArrayLengths;
export type FopKindName = (typeof kFopKindNames)[number];

/** A record's slots by field name, plus `stride` (numbers per record). */
export type RecordLayout<R extends RecordName> = Readonly<Record<(typeof kRecordFields)[R][number], number>> & { readonly stride: number };

export interface NativeAbi {
  readonly napiVersion: number;
  readonly records: { readonly [R in RecordName]: RecordLayout<R> };
  readonly limits: Readonly<Record<LimitName, number>>;
  readonly codes: Readonly<Record<CodeName, number>>;
  /** Counter slot of each counted operation (kFopKindNames order, checked against C++). */
  readonly fopKinds: Readonly<Record<FopKindName, number>>;
}

/** What the addon's abiInfo() returns (checked by readAbi before use). */
export interface RawAbiInfo {
  napiVersion: number;
  records: Record<string, { stride: number; fields: Record<string, number> }>;
  limits: Record<string, number>;
  codes: Record<string, number>;
  stats: Record<string, string[]>;
  /** Lengths of the statistics that are arrays, by group and name. */
  statArrays: Record<string, Record<string, number>>;
  /** Names of the counted operations, in counter order, and their FUSE opcodes. */
  fopKinds: string[];
  fopOpcodes: number[];
  opcodes: Record<string, number>;
}

function missing(what: string): never {
  throw new NydusError('ERR_NATIVE_ABI', `the native addon does not define ${what}: it was built from other sources; rebuild it (npm run build:native)`);
}

function numberAt(o: Record<string, unknown> | undefined, key: string, what: string): number {
  const v = o?.[key];
  if (typeof v !== 'number' || !Number.isFinite(v)) missing(`${what} ${key}`);
  return v;
}

function pick<K extends string>(o: Record<string, number> | undefined, names: readonly K[], what: string): Readonly<Record<K, number>> {
  const out = {} as Record<K, number>;
  for (const n of names) out[n] = numberAt(o, n, what);
  return Object.freeze(out);
}

/** Checks an abiInfo() result against the names TypeScript needs and builds the typed view. */
export function readAbi(info: RawAbiInfo): NativeAbi {
  const records = {} as Record<RecordName, RecordLayout<RecordName>>;
  for (const name of Object.keys(kRecordFields) as RecordName[]) {
    const raw = info.records[name];
    if (raw === undefined) missing(`the ${name} record`);
    const fields: readonly string[] = kRecordFields[name];
    records[name] = Object.freeze({ ...pick(raw.fields, fields, `${name} field`), stride: numberAt(raw, 'stride', `${name} record`) }) as RecordLayout<RecordName>;
  }
  const limits = pick(info.limits, kLimitNames, 'limit');
  // The counter arrays TypeScript indexes: each as long as the limit that names its length.
  for (const [name, limit] of Object.entries(kFopArrayLengths) as [FopArrayName, LimitName][]) {
    if (numberAt(info.statArrays?.['fop'], name, 'counter array') !== limits[limit]) missing(`counter array ${name} of length ${limit}`);
  }
  const fopKinds = {} as Record<FopKindName, number>;
  for (const [i, name] of kFopKindNames.entries()) {
    if (info.fopKinds?.[i] !== name) missing(`counted operation ${name} at slot ${i}`);
    fopKinds[name] = i;
  }
  if (info.fopKinds.length !== limits.fopKinds) missing(`exactly ${kFopKindNames.length} counted operations`);
  return Object.freeze({
    napiVersion: numberAt(info as unknown as Record<string, unknown>, 'napiVersion', 'the'),
    records: Object.freeze(records),
    limits,
    codes: pick(info.codes, kCodeNames, 'code'),
    fopKinds: Object.freeze(fopKinds),
  });
}

let cached: NativeAbi | undefined;

/** The loaded addon's ABI (read and checked once). Throws ERR_NATIVE_ABI on a mismatch. */
export function nativeAbi(): NativeAbi {
  cached ??= readAbi(loadAddon().abiInfo());
  return cached;
}
