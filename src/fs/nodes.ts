/**
 * FUSE node ids for one RAFS image, without a per-inode table.
 *
 * A node id is a pure function of the inode's identity (`InodeAttr.ino`: the v6 nid of the
 * shared record, or the v5 i_ino shared by hardlinks): the root is 1 (FUSE_ROOT_ID) and every
 * other identity maps to identity + 2, so ids never collide with 0 (invalid) or 1. Because the
 * mapping is stateless, FORGET needs no bookkeeping, a second INIT (guest reboot) finds nothing
 * stale, and hardlinks share a node id by construction.
 *
 * Going back from a node id to an inode reference is free for v6 (the identity is the nid). v5
 * hardlinks share an identity but have distinct records, so the identity -> reference pairs are
 * remembered as entries are handed out (the kernel only ever names nodes we returned).
 */
import type { InodeRef, RafsImage } from '../rafs/index.js';

export const kRootNodeId = 1;

export class NodeMap {
  private readonly _rootIdentity: number;
  private readonly _rootRef: InodeRef;
  private readonly _identityIsRef: boolean;
  private readonly _refs = new Map<number, InodeRef>();

  constructor(image: RafsImage) {
    this._rootRef = image.super.rootRef;
    this._rootIdentity = image.getAttr(this._rootRef).ino;
    this._identityIsRef = image.super.version === 6;
  }

  nodeIdOf(identity: number, ref: InodeRef): number {
    if (identity === this._rootIdentity) return kRootNodeId;
    if (!this._identityIsRef && !this._refs.has(identity)) this._refs.set(identity, ref);
    return identity + 2;
  }

  /** The inode reference behind a node id, or undefined for ids never handed out. */
  refOf(nodeId: number): InodeRef | undefined {
    if (nodeId === kRootNodeId) return this._rootRef;
    if (nodeId < 2 || !Number.isSafeInteger(nodeId)) return undefined;
    const identity = nodeId - 2;
    return this._identityIsRef ? identity : this._refs.get(identity);
  }
}
