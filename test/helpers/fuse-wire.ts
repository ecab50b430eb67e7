/**
 * FUSE wire bytes for tests that drive a FuseSession through its loopback transport: request
 * builders (fuse_in_header + args, little-endian, linux/fuse.h 7.38 layouts) and reply parsers.
 * Production TypeScript never sees these layouts; tests use them to check what the kernel gets.
 */
export const kOp = {
  LOOKUP: 1, FORGET: 2, GETATTR: 3, SETATTR: 4, READLINK: 5, MKDIR: 9, OPEN: 14, READ: 15, WRITE: 16,
  STATFS: 17, RELEASE: 18, GETXATTR: 22, LISTXATTR: 23, FLUSH: 25, INIT: 26, OPENDIR: 27,
  READDIR: 28, RELEASEDIR: 29, ACCESS: 34, DESTROY: 38, BATCH_FORGET: 42, READDIRPLUS: 44, LSEEK: 46,
} as const;

let nextUnique = 1000;

export function request(opcode: number, nodeid: number, body: Buffer = Buffer.alloc(0), unique = nextUnique++): Buffer {
  const h = Buffer.alloc(40);
  h.writeUInt32LE(40 + body.length, 0);
  h.writeUInt32LE(opcode, 4);
  h.writeBigUInt64LE(BigInt(unique), 8);
  h.writeBigUInt64LE(BigInt(nodeid), 16);
  h.writeUInt32LE(0, 24); // uid
  h.writeUInt32LE(0, 28); // gid
  h.writeUInt32LE(4242, 32); // pid
  return Buffer.concat([h, body]);
}

export function initRequest(minor = 38): Buffer {
  const b = Buffer.alloc(64);
  b.writeUInt32LE(7, 0);
  b.writeUInt32LE(minor, 4);
  b.writeUInt32LE(0x20000, 8);
  b.writeUInt32LE(0x7bfffffb, 12);
  b.writeUInt32LE(0xb, 16);
  return request(kOp.INIT, 0, b);
}

export function nameBody(name: string, prefix: Buffer = Buffer.alloc(0)): Buffer {
  return Buffer.concat([prefix, Buffer.from(name), Buffer.alloc(1)]);
}

export function readIn(fh: number, offset: number, size: number): Buffer {
  const b = Buffer.alloc(40);
  b.writeBigUInt64LE(BigInt(fh), 0);
  b.writeBigUInt64LE(BigInt(offset), 8);
  b.writeUInt32LE(size, 16);
  return b;
}

export function openIn(flags = 0): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt32LE(flags, 0);
  return b;
}

export function getattrIn(fh?: number): Buffer {
  const b = Buffer.alloc(16);
  if (fh !== undefined) {
    b.writeUInt32LE(1, 0);
    b.writeBigUInt64LE(BigInt(fh), 8);
  }
  return b;
}

export function releaseIn(fh: number): Buffer {
  const b = Buffer.alloc(24);
  b.writeBigUInt64LE(BigInt(fh), 0);
  return b;
}

export function getxattrIn(size: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt32LE(size, 0);
  return b;
}

export function forgetIn(nlookup: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(nlookup), 0);
  return b;
}

export interface Reply {
  len: number;
  error: number;
  unique: number;
  payload: Buffer;
}

export function parseReply(b: Buffer): Reply {
  if (b.length < 16) return { len: b.length, error: 0, unique: 0, payload: Buffer.alloc(0) };
  return { len: b.readUInt32LE(0), error: b.readInt32LE(4), unique: Number(b.readBigUInt64LE(8)), payload: b.subarray(16) };
}

export interface WireAttr {
  ino: number;
  size: number;
  blocks: number;
  atime: number;
  mtime: number;
  ctime: number;
  mtimensec: number;
  mode: number;
  nlink: number;
  uid: number;
  gid: number;
  blksize: number;
}

export function parseAttr(p: Buffer, off: number): WireAttr {
  return {
    ino: Number(p.readBigUInt64LE(off)),
    size: Number(p.readBigUInt64LE(off + 8)),
    blocks: Number(p.readBigUInt64LE(off + 16)),
    atime: Number(p.readBigInt64LE(off + 24)),
    mtime: Number(p.readBigInt64LE(off + 32)),
    ctime: Number(p.readBigInt64LE(off + 40)),
    mtimensec: p.readUInt32LE(off + 52),
    mode: p.readUInt32LE(off + 60),
    nlink: p.readUInt32LE(off + 64),
    uid: p.readUInt32LE(off + 68),
    gid: p.readUInt32LE(off + 72),
    blksize: p.readUInt32LE(off + 80),
  };
}

export function parseEntry(p: Buffer, off = 0): { nodeid: number; generation: number; entryValid: number; entryValidNsec: number; attr: WireAttr } {
  return {
    nodeid: Number(p.readBigUInt64LE(off)),
    generation: Number(p.readBigUInt64LE(off + 8)),
    entryValid: Number(p.readBigUInt64LE(off + 16)),
    entryValidNsec: p.readUInt32LE(off + 32),
    attr: parseAttr(p, off + 40),
  };
}

export function parseDirents(p: Buffer, plus: boolean): { ino: number; off: number; type: number; name: string; nodeid?: number }[] {
  const out: { ino: number; off: number; type: number; name: string; nodeid?: number }[] = [];
  let pos = 0;
  while (pos < p.length) {
    const base = plus ? pos + 128 : pos;
    const namelen = p.readUInt32LE(base + 16);
    const rec = {
      ino: Number(p.readBigUInt64LE(base)),
      off: Number(p.readBigUInt64LE(base + 8)),
      type: p.readUInt32LE(base + 20),
      name: p.subarray(base + 24, base + 24 + namelen).toString(),
      ...(plus ? { nodeid: Number(p.readBigUInt64LE(pos)) } : {}),
    };
    out.push(rec);
    pos += ((plus ? 152 : 24) + namelen + 7) & ~7;
  }
  return out;
}
