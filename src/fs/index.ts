/**
 * Filesystem layer: FUSE semantics over RAFS images (rafs-fs.ts), and the daemon's pseudo root
 * that serves many of them at once (vfs.ts: the router; pseudo-tree.ts: upstream's pseudo
 * directories; node-space.ts: a 2^44 node-id slot per mounted filesystem). RafsFilesystem answers
 * the requests the native session does not answer itself — LOOKUP, GETATTR, READDIR(PLUS),
 * READLINK, xattrs, STATFS, OPEN with the extent table of cache-backed files, READ misses and
 * lseek — with the kernel-visible attribute rules of upstream nydusd (attr.ts) and stateless node
 * ids (nodes.ts). OverlayFilesystem (overlay-fs.ts, overlay-upper.ts) shows a host upper directory
 * over a RafsFilesystem with overlayfs semantics (config `overlay`, read-only). Everything is
 * transport-agnostic: the same objects serve /dev/fuse and vhost-user.
 *
 * Neighbours: daemon/ (serve-vfs.ts, rafs-mount.ts) builds a Vfs, attaches RafsFilesystems at
 * its directories and hands the Vfs to a FUSE session (fuse/); rafs/ answers every metadata
 * question (RafsImage); storage/ fetches chunk data into the blob cache; fuse/ provides the
 * handler interface, the errno table and extent tables; util/ the logger and st_mode bits.
 */
export { defaultAttrPolicy, toFuseAttr, type AttrPolicy } from './attr.js';
export { RafsFilesystem, type RafsFsOptions } from './rafs-fs.js';
export { Vfs, type InflightRequest, type VfsMount } from './vfs.js';
export { PseudoTree, PseudoTreeError, canonicalMountpoint, mountpointComponents, type PseudoDir } from './pseudo-tree.js';
export { globalId, innerOf, kMaxMounts, kRootId, kSlotBits, kSlotSpan, slotOf, slotRange } from './node-space.js';
export { OverlayFilesystem, kUpperBase, type OverlayFsOptions } from './overlay-fs.js';
export { WritableOverlay, type WritableOverlayOptions } from './overlay-writable.js';
