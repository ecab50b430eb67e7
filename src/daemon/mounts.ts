/**
 * The mount table: which filesystem serves which path of the pseudo root, changed at run time by
 * the API (POST/PUT/DELETE /api/v1/mount) and at start by --bootstrap. Operations run one at a
 * time, in arrival order.
 *
 * Mount: validate, build the instance (mount-kinds.ts; a failure leaves nothing behind), then
 * attach it in one synchronous step: the pseudo directories are created, the router starts
 * sending the slot's nodes to it, and the native reply cache forgets the pseudo tree's answers.
 *
 * Umount keeps in-flight requests working and makes later ones fail:
 *   1. detach from the router: new requests naming the mount's nodes get ENOENT;
 *   2. native: forget the slot's and the pseudo tree's cached answers, drop every open handle
 *      reading the mount's blobs (their READs reach the router, which answers with an errno);
 *   3. FUSE mode: tell the kernel to drop the mountpoint's dentry (and all below it);
 *   4. wait (bounded) for the requests the mount was still working on;
 *   5. fail READs still parked on the slot, unregister the blob slots, close storage and image,
 *      and only then free the node-id slot and blob slots for reuse.
 */
import type { FuseSession } from '../fuse/index.js';
import { kErrno } from '../fuse/index.js';
import type { FuseFopStats } from '../native/index.js';
import { nativeAbi } from '../native/index.js';
import { canonicalMountpoint, kRootId, kSlotBits, kSlotSpan, mountpointComponents, PseudoTreeError, slotRange } from '../fs/index.js';
import type { PseudoDir, Vfs } from '../fs/index.js';
import { NotSupportedError } from '../util/errors.js';
import type { Logger } from '../util/logger.js';
import type { MountBuilder, MountContext, MountedFilesystem, MountSpec } from './mount-kinds.js';
import { kindOf, MountError } from './mount-kinds.js';
import { buildPassthrough } from './passthrough-mount.js';
import { fopDelta } from './metrics.js';
import { buildRafs } from './rafs-mount.js';
import { BlobSlots, MountSlots } from './slots.js';

export interface MountRecord {
  readonly mountpoint: string;
  readonly instance: MountedFilesystem;
  readonly mountedAt: Date;
  /** The slot's counters when the mount took it (the mount's own are the difference). */
  readonly baseline: FuseFopStats;
}

export interface MountTableOptions {
  vfs: Vfs;
  session: FuseSession;
  log: Logger;
  /** FUSE mode sends the kernel invalidations; virtio-fs has no channel for them. */
  mode: 'fuse' | 'virtiofs';
  imagePullAuth: string | undefined;
  backendHeaders?: Record<string, string> | undefined;
  createStorage?: MountContext['createStorage'];
  /** How long an umount waits for the mount's in-flight requests (default 10 s). */
  drainTimeoutMs?: number;
  /** Tests: replace how a kind is built. */
  builders?: Partial<Record<'rafs' | 'passthrough_fs', MountBuilder>>;
}

export class MountTable {
  private readonly _records = new Map<string, MountRecord>();
  private readonly _slots = new MountSlots(1, 255);
  private readonly _blobSlots = new BlobSlots(nativeAbi().limits.maxBlobSlots);
  private _queue: Promise<unknown> = Promise.resolve();
  /** Read counters of mounts already released (readTotals adds the live ones). */
  private readonly _retired = { readMisses: 0, jsReads: 0 };
  private readonly _builders: Record<'rafs' | 'passthrough_fs', MountBuilder>;
  private readonly _log: Logger;

  constructor(private readonly _o: MountTableOptions) {
    this._log = _o.log;
    this._builders = { rafs: buildRafs, passthrough_fs: buildPassthrough, ..._o.builders };
    _o.session.setFopSlots(kSlotBits, 0);
  }

  list(): MountRecord[] {
    return [...this._records.values()];
  }

  get size(): number {
    return this._records.size;
  }

  get(mountpoint: string): MountRecord | undefined {
    try {
      return this._records.get(canonicalMountpoint(mountpoint));
    } catch {
      return undefined;
    }
  }

  /** READs filled from the backend and READs served in JavaScript, over every mount so far. */
  readTotals(): { readMisses: number; jsReads: number } {
    const t = { ...this._retired };
    for (const r of this._records.values()) {
      const c = r.instance.readCounters?.();
      t.readMisses += c?.readMisses ?? 0;
      t.jsReads += c?.jsReads ?? 0;
    }
    return t;
  }

  private _retire(instance: MountedFilesystem): void {
    const c = instance.readCounters?.();
    this._retired.readMisses += c?.readMisses ?? 0;
    this._retired.jsReads += c?.jsReads ?? 0;
  }

  /** Operation counters of a mount (native, all threads) since it was attached. */
  fopStats(rec: MountRecord): FuseFopStats {
    return fopDelta(this._o.session.fopStats(rec.instance.slot), rec.baseline);
  }

  /** Runs `op` after every operation queued before it. */
  private _serial<T>(op: () => Promise<T>): Promise<T> {
    const run = this._queue.then(op, op);
    this._queue = run.catch(() => undefined);
    return run;
  }

  mount(spec: MountSpec, extra: Partial<MountContext> = {}): Promise<void> {
    return this._serial(async () => {
      const mp = this._validate(spec);
      if (this._records.has(mp)) throw new MountError('exists', `object or filesystem already exists: ${mp} is mounted`);
      this._checkNesting(mp);
      // A passthrough at "/" takes the pseudo tree's node range (passthrough-mount.ts): only
      // while that holds nothing but the root can no old pseudo node id meet one of its nodes.
      if (mp === '/' && kindOf(spec.fsType) === 'passthrough_fs' && this._o.vfs.tree.size > 1) {
        throw new MountError('invalid', 'invalid argument `a passthrough_fs at / needs an empty pseudo root (directories were created by earlier mounts)`');
      }
      const instance = await this._build({ ...spec, mountpoint: mp }, extra);
      this._attach(mp, instance);
    });
  }

  /** Swaps the image at `spec.mountpoint` (RAFS only, as upstream). */
  remount(spec: MountSpec): Promise<void> {
    return this._serial(async () => {
      const mp = this._validate(spec);
      const old = this._records.get(mp);
      if (!old) throw new MountError('not-found', `object or filesystem doesn't exist: nothing is mounted at ${mp}`);
      if (kindOf(spec.fsType) !== 'rafs' || old.instance.backendType !== 'Rafs') {
        throw new NotSupportedError('remounting a filesystem other than RAFS');
      }
      const instance = await this._build({ ...spec, mountpoint: mp }, {});
      // One synchronous swap: no request sees the path without an image.
      this._detach(old);
      this._attach(mp, instance);
      await this._release(old);
    });
  }

  umount(mountpoint: string): Promise<void> {
    return this._serial(async () => {
      let mp: string;
      try {
        mp = canonicalMountpoint(mountpoint);
      } catch (err) {
        throw new MountError('invalid', (err as Error).message);
      }
      const rec = this._records.get(mp);
      if (!rec) throw new MountError('not-found', `object or filesystem doesn't exist: nothing is mounted at ${mp}`);
      this._detach(rec);
      await this._release(rec);
      this._log.info(`umounted ${mp}`);
    });
  }

  /**
   * Daemon stop, after the FUSE session stopped (no request can arrive or be pending): closes
   * every instance without waiting for anything.
   */
  closeAll(): Promise<void> {
    return this._serial(async () => {
      const recs = [...this._records.values()].reverse();
      this._records.clear();
      for (const rec of recs) {
        this._o.vfs.detach(rec.instance.slot);
        this._retire(rec.instance);
        try {
          await rec.instance.close();
        } catch (err) {
          this._log.error(`closing the mount at ${rec.mountpoint}: ${(err as Error).message}`);
        }
      }
    });
  }

  private _validate(spec: MountSpec): string {
    const kind = kindOf(spec.fsType);
    if (!kind) {
      throw new MountError('invalid', `invalid argument \`only 'rafs' and 'passthrough_fs' are supported, but ${JSON.stringify(spec.fsType)} was specified\``);
    }
    if (typeof spec.source !== 'string' || spec.source === '') throw new MountError('invalid', 'invalid argument `source must name a bootstrap file`');
    for (const f of spec.prefetchFiles ?? []) {
      if (typeof f !== 'string' || !f.startsWith('/')) throw new MountError('invalid', `invalid prefetch file list: ${JSON.stringify(f)} is not an absolute path`);
    }
    try {
      return canonicalMountpoint(spec.mountpoint);
    } catch (err) {
      if (err instanceof PseudoTreeError) throw new MountError('invalid', `invalid argument \`${err.message}\``);
      throw err;
    }
  }

  /** Upstream does not support a mount inside another mount (and "/" hides every other). */
  private _checkNesting(mp: string): void {
    for (const other of this._records.keys()) {
      const inside = (a: string, b: string): boolean => b === '/' || a.startsWith(`${b}/`);
      if (inside(mp, other)) throw new MountError('invalid', `invalid argument \`${mp} is inside the mount at ${other}\``);
      if (inside(other, mp)) throw new MountError('invalid', `invalid argument \`the mount at ${other} is inside ${mp}\``);
    }
  }

  private async _build(spec: MountSpec, extra: Partial<MountContext>): Promise<MountedFilesystem> {
    const kind = kindOf(spec.fsType) ?? 'rafs';
    const slot = this._slots.take();
    if (slot === undefined) throw new MountError('full', `vfs maximum mountpoints reached: ${this._slots.inUse} mounts`);
    const ctx: MountContext = {
      session: this._o.session,
      blobSlots: this._blobSlots,
      log: this._log,
      imagePullAuth: this._o.imagePullAuth,
      backendHeaders: this._o.backendHeaders,
      ...(this._o.createStorage ? { createStorage: this._o.createStorage } : {}),
      ...extra,
    };
    try {
      return await this._builders[kind](spec, slot, ctx);
    } catch (err) {
      this._slots.give(slot);
      throw err;
    }
  }

  private _attach(mp: string, instance: MountedFilesystem): void {
    const { vfs, session } = this._o;
    const dir = vfs.tree.ensure(mountpointComponents(mp));
    this._setWritable(instance, dir.id === kRootId, true);
    vfs.attach(dir, instance);
    const rec: MountRecord = { mountpoint: mp, instance, mountedAt: new Date(), baseline: session.fopStats(instance.slot) };
    this._records.set(mp, rec);
    if (dir.id === kRootId) session.setFopSlots(kSlotBits, instance.slot);
    // Names in the pseudo tree now lead elsewhere (and new directories exist).
    session.invalidateNodes(0, kSlotSpan);
    this._notify(dir);
    this._log.info(`mounted ${instance.backendType} ${instance.source} at ${mp} (slot ${instance.slot})`);
  }

  /** A writable instance's node ids (and the FUSE root when it is mounted at "/"). */
  private _setWritable(instance: MountedFilesystem, atRoot: boolean, on: boolean): void {
    if (instance.writable !== true) return;
    const [lo, hi] = slotRange(instance.slot);
    this._o.session.setWritable(lo, hi, on);
    if (atRoot) this._o.session.setWritable(kRootId, kRootId + 1, on);
  }

  /** Umount steps 1-3: from now on no request reaches the instance or its blobs. */
  private _detach(rec: MountRecord): void {
    const { vfs, session } = this._o;
    const { slot } = rec.instance;
    const dir = vfs.tree.walk(mountpointComponents(rec.mountpoint));
    vfs.detach(slot);
    rec.instance.detach?.();
    this._records.delete(rec.mountpoint);
    if (dir?.id === kRootId) session.setFopSlots(kSlotBits, 0);
    this._setWritable(rec.instance, dir?.id === kRootId, false);
    const [lo, hi] = slotRange(slot);
    session.invalidateNodes(0, kSlotSpan);
    session.invalidateNodes(lo, hi, rec.instance.blobSlots);
    if (dir) this._notify(dir);
  }

  /** Umount steps 4-5: let running requests finish, then free everything. */
  private async _release(rec: MountRecord): Promise<void> {
    const { vfs, session } = this._o;
    const { slot } = rec.instance;
    const [lo, hi] = slotRange(slot);
    const timeout = this._o.drainTimeoutMs ?? 10_000;
    let timer: NodeJS.Timeout | undefined;
    const drained = await Promise.race([
      vfs.whenIdle(slot).then(() => true),
      new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), timeout))),
    ]);
    clearTimeout(timer);
    if (!drained) this._log.warn(`umount ${rec.mountpoint}: ${vfs.inflight(slot).length} request(s) still running after ${timeout} ms; failing them`);
    const failed = session.failParked(lo, hi, kErrno.EIO);
    if (failed > 0) this._log.warn(`umount ${rec.mountpoint}: ${failed} READ(s) still waiting for data failed with EIO`);
    for (const s of rec.instance.blobSlots) session.unregisterBlob(s);
    this._blobSlots.give(rec.instance.blobSlots);
    this._retire(rec.instance);
    try {
      await rec.instance.close();
    } catch (err) {
      this._log.error(`closing the mount at ${rec.mountpoint}: ${(err as Error).message}`);
    }
    this._slots.give(slot);
  }

  /** FUSE mode: the kernel drops its dentry for `dir` (and everything cached below it). */
  private _notify(dir: PseudoDir): void {
    if (this._o.mode !== 'fuse' || this._o.session.stopped) return;
    try {
      if (dir.parent) this._o.session.notifyInvalEntry(dir.parent.id, Buffer.from(dir.name));
      else this._o.session.notifyInvalInode(kRootId);
    } catch (err) {
      this._log.warn(`FUSE invalidation for ${this._o.vfs.tree.pathOf(dir)}: ${(err as Error).message}`);
    }
  }
}
