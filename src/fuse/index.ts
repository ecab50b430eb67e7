/**
 * FUSE layer: serves a filesystem handler (`FuseFilesystem`, types.ts) over one FUSE connection
 * — a /dev/fuse mount, a vhost-user virtio-fs socket, or an in-memory loopback for tests.
 *
 * The native session (native/core/fuse, through src/native) decodes every request and answers
 * what needs no filesystem knowledge; this layer receives the rest in batches, calls the handler
 * and encodes its answers (reply.ts) into the numeric records the native side validates. The
 * READ fast path is configured from here too: extent tables (extents.ts) and blob registrations.
 *
 * Files: session.ts (FuseSession: lifecycle, dispatch, answers), types.ts (the handler interface
 * and FUSE constants), reply.ts (record encoding), extents.ts (extent tables), errno.ts (errno
 * table and error mapping).
 *
 * Neighbours: src/native below (the addon and its ABI); src/fs implements the handler for RAFS
 * images; src/daemon creates the session and owns process-wide policy (signals, logging).
 */
export { FuseSession } from './session.js';
export type { FuseBlob, FuseCloseInfo, FuseLogger, FuseMountOptions, FuseSessionOptions, FuseSessionStats, FuseVirtioOptions } from './session.js';
export { FuseErrno, kFopen, kFuseOp } from './types.js';
export type {
  FuseAttr,
  FuseAttrReply,
  FuseDirEntry,
  FuseDirEntryPlus,
  FuseEntry,
  FuseFilesystem,
  FuseForget,
  FuseInitInfo,
  FuseCreateReply,
  FuseOpenReply,
  FuseSetattr,
  FuseTime,
  FuseReadMiss,
  FuseRequestContext,
  FuseResult,
  FuseStatfs,
} from './types.js';
export { errnoOf, fuseErrno, kErrno } from './errno.js';
export { FuseExtentTable } from './extents.js';
export type { FuseExtent } from './extents.js';
export { fuseDirentSize } from './reply.js';
