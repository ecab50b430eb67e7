/**
 * The passthrough_fs kind of mount (Kata's /containers share, `--shared-dir`): a host directory
 * served read-write by the C++ PassthroughFs (native/core/passthrough) inside the FUSE session.
 * Every request on its nodes is answered natively on the transport thread; JavaScript only
 * answers the pseudo parent's LOOKUP of the mount point (the root's attributes, read natively)
 * and attaches/detaches it. Options are upstream's fixed ones (writeback, no_open, xattr): the
 * API's `config` is ignored for this type, as upstream does (Kata sends "").
 *
 * Node ids: a mount in slot s owns [s * 2^44 + 1, (s + 1) * 2^44), root s * 2^44 + 1, the id the
 * router gives a mount's root. A mount at "/" is the whole connection's only filesystem (a mount
 * at "/" hides the pseudo tree, and nothing may be mounted beside it): it owns [1, 2^44), so the
 * FUSE root node 1 is its root and needs no translation (a RENAME into the root names node 1),
 * and it may use the connection-wide zero-message OPEN.
 *
 * The native filesystem is attached when built (its nodes are unreachable until the mount
 * table attaches the mount point) and detached by the mount table's detach step; requests
 * already inside finish and the last of them frees it (fuse/native_mounts.h).
 */
import { statSync } from 'node:fs';
import type { FuseAttrReply, FuseErrno } from '../fuse/index.js';
import { fuseErrno, kErrno } from '../fuse/index.js';
import { kRootId, kSlotSpan } from '../fs/index.js';
import { NydusError } from '../util/errors.js';
import type { MountBuilder, MountedFilesystem } from './mount-kinds.js';
import { MountError } from './mount-kinds.js';

export const buildPassthrough: MountBuilder = (spec, slot, ctx) => {
  const source = spec.source;
  let st;
  try {
    st = statSync(source);
  } catch (err) {
    return Promise.reject(new MountError('failed', `passthrough_fs source ${source}: ${(err as Error).message}`, { cause: err }));
  }
  if (!st.isDirectory()) return Promise.reject(new MountError('invalid', `invalid argument \`passthrough_fs source ${source} is not a directory\``));
  const atRoot = spec.mountpoint === '/';
  const lo = atRoot ? kRootId : slot * kSlotSpan + kRootId;
  const hi = atRoot ? kSlotSpan : (slot + 1) * kSlotSpan;
  const { session, log } = ctx;
  try {
    session.attachPassthrough(source, lo, hi, slot, atRoot);
  } catch (err) {
    const msg = NydusError.is(err) || err instanceof Error ? err.message : String(err);
    return Promise.reject(new MountError('failed', `passthrough_fs ${source}: ${msg}`, { cause: err }));
  }
  let attached = true;
  const detach = (): void => {
    if (!attached) return;
    attached = false;
    session.detachPassthrough(lo);
  };
  const instance: MountedFilesystem = {
    slot,
    backendType: 'PassthroughFs',
    source,
    config: undefined,
    metricsId: spec.mountpoint,
    blobSlots: [],
    fileMetrics: { iostatsFiles: false, accessPattern: false, latestReadFiles: false },
    fs: {
      // Only the pseudo parent's LOOKUP of the mount point comes here (the router asks for the
      // root's attributes); every other request on these nodes is answered natively.
      getattr: (_ctx, nodeid): FuseAttrReply | FuseErrno => {
        if (nodeid !== kRootId || !attached) return fuseErrno(kErrno.ENOENT);
        try {
          const { attrTimeout, ...attr } = session.passthroughRoot(lo);
          return { attr, attrTimeout };
        } catch (err) {
          const e = (err as { errno?: number }).errno;
          log.warn(`passthrough_fs ${source}: root attributes: ${(err as Error).message}`);
          return fuseErrno(typeof e === 'number' && e > 0 ? e : kErrno.EIO);
        }
      },
    },
    detach,
    close(): Promise<void> {
      detach();
      return Promise.resolve();
    },
  };
  return Promise.resolve(instance);
};
