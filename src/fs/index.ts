/**
 * Filesystem layer: FUSE semantics over one RAFS image (rafs-fs.ts). It answers the requests the
 * native session does not answer itself — LOOKUP, GETATTR, READDIR(PLUS), READLINK, xattrs,
 * STATFS, OPEN with the extent table of cache-backed files, READ misses and lseek — with the
 * kernel-visible attribute rules of upstream nydusd (attr.ts) and stateless node ids (nodes.ts).
 * It is transport-agnostic: the same object serves /dev/fuse and vhost-user.
 *
 * Neighbours: daemon/ (serve-rafs.ts) builds a RafsFilesystem over an opened image and its
 * storage and hands it to a FUSE session (fuse/); rafs/ answers every metadata question
 * (RafsImage); storage/ fetches chunk data into the blob cache; fuse/ provides the handler
 * interface, the errno table and extent tables; util/ the logger and st_mode bits.
 */
export { defaultAttrPolicy, toFuseAttr, type AttrPolicy } from './attr.js';
export { RafsFilesystem, type RafsFsOptions } from './rafs-fs.js';
