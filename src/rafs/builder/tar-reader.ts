/**
 * A streaming tar reader that keeps names, link targets and PAX values as raw bytes (file names
 * need not be UTF-8 and xattr values are binary, which string-based readers mangle). Handles
 * ustar, GNU (long names 'L'/'K', base-256 numbers) and PAX ('x' local, 'g' global) headers;
 * zero blocks are skipped so concatenated archives read as one. Every length is bounded.
 */
import { BuildError } from './types.js';

const kBlock = 512;
const kMaxLongHeader = 1 << 20;

export type TarEntryType = 'file' | 'link' | 'symlink' | 'chr' | 'blk' | 'dir' | 'fifo';

export interface TarEntry {
  path: Buffer;
  type: TarEntryType;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtimeSec: number;
  mtimeNsec: number;
  linkname: Buffer;
  devmajor: number;
  devminor: number;
  /** PAX records of this entry (global ones merged in), raw values. */
  pax: Map<string, Buffer>;
  /** Byte offset of the entry's header in the (uncompressed) stream, for messages. */
  offset: number;
}

/** Pull-based exact reads over an async byte stream. */
class ByteSource {
  private readonly _it: AsyncIterator<Buffer>;
  private _buf: Buffer = Buffer.alloc(0);
  private _eof = false;
  pos = 0;

  constructor(stream: AsyncIterable<Buffer>) {
    this._it = stream[Symbol.asyncIterator]();
  }

  /** Up to `n` bytes; fewer only at end of stream. */
  async read(n: number): Promise<Buffer> {
    if (this._buf.length < n && !this._eof) {
      const parts = [this._buf];
      let have = this._buf.length;
      while (have < n) {
        const r = await this._it.next();
        if (r.done) {
          this._eof = true;
          break;
        }
        parts.push(r.value);
        have += r.value.length;
      }
      this._buf = Buffer.concat(parts, have);
    }
    const out = this._buf.subarray(0, Math.min(n, this._buf.length));
    this._buf = this._buf.subarray(out.length);
    this.pos += out.length;
    return out;
  }

  async readExact(n: number, what: string): Promise<Buffer> {
    const b = await this.read(n);
    if (b.length !== n) throw new BuildError(`tar: unexpected end of archive while reading ${what}`);
    return b;
  }
}

function cstr(b: Buffer): Buffer {
  const nul = b.indexOf(0);
  return nul < 0 ? b : b.subarray(0, nul);
}

/** Octal (space/NUL padded) or GNU base-256 (high bit set) numeric field. */
export function parseNumber(field: Buffer, what: string, offset: number): number {
  if (field.length > 0 && (field[0]! & 0x80) !== 0) {
    const negative = (field[0]! & 0x40) !== 0;
    let v = BigInt(field[0]! & 0x3f);
    for (let i = 1; i < field.length; i++) v = (v << 8n) | BigInt(field[i]!);
    if (negative) v -= 1n << BigInt(field.length * 8 - 2);
    if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < -BigInt(Number.MAX_SAFE_INTEGER)) {
      throw new BuildError(`tar: ${what} at offset ${offset} is out of range`);
    }
    return Number(v);
  }
  const s = field.toString('latin1').replace(/[\0 ]+$/, '').replace(/^[ \0]+/, '');
  if (s === '') return 0;
  if (!/^[0-7]+$/.test(s)) throw new BuildError(`tar: invalid ${what} ${JSON.stringify(s)} at offset ${offset}`);
  const v = parseInt(s, 8);
  if (!Number.isSafeInteger(v)) throw new BuildError(`tar: ${what} at offset ${offset} is out of range`);
  return v;
}

function checksumOk(h: Buffer): boolean {
  const stored = parseInt(h.subarray(148, 156).toString('latin1').replace(/[\0 ]+$/, '').trim() || 'x', 8);
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < kBlock; i++) {
    const b = i >= 148 && i < 156 ? 0x20 : h[i]!;
    unsigned += b;
    signed += b >= 0x80 ? b - 0x100 : b;
  }
  return stored === unsigned || stored === signed;
}

/** PAX extended header records: "<len> <key>=<value>\n", value kept as bytes. */
export function parsePax(data: Buffer, offset: number): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  let pos = 0;
  while (pos < data.length) {
    if (data[pos] === 0) break;
    const sp = data.indexOf(0x20, pos);
    if (sp < 0 || sp - pos > 20) throw new BuildError(`tar: malformed PAX record at offset ${offset + pos}`);
    const len = Number(data.subarray(pos, sp).toString('latin1'));
    if (!Number.isInteger(len) || len <= sp - pos + 1 || pos + len > data.length || data[pos + len - 1] !== 0x0a) {
      throw new BuildError(`tar: malformed PAX record at offset ${offset + pos}`);
    }
    const rec = data.subarray(sp + 1, pos + len - 1);
    const eq = rec.indexOf(0x3d);
    if (eq <= 0) throw new BuildError(`tar: malformed PAX record at offset ${offset + pos}`);
    out.set(rec.subarray(0, eq).toString('utf8'), Buffer.from(rec.subarray(eq + 1)));
    pos += len;
  }
  return out;
}

function parsePaxTime(v: Buffer, offset: number): { sec: number; nsec: number } {
  const m = /^(-?)(\d+)(?:\.(\d+))?$/.exec(v.toString('latin1'));
  if (!m) throw new BuildError(`tar: invalid PAX mtime at offset ${offset}`);
  let sec = Number(m[2]);
  let nsec = m[3] ? Number((m[3] + '000000000').slice(0, 9)) : 0;
  if (m[1]) {
    sec = -sec;
    if (nsec > 0) {
      sec -= 1;
      nsec = 1_000_000_000 - nsec;
    }
  }
  if (!Number.isSafeInteger(sec)) throw new BuildError(`tar: PAX mtime out of range at offset ${offset}`);
  return { sec, nsec };
}

function paxNumber(v: Buffer, what: string, offset: number): number {
  const s = v.toString('latin1');
  if (!/^\d+$/.test(s) || !Number.isSafeInteger(Number(s))) throw new BuildError(`tar: invalid PAX ${what} at offset ${offset}`);
  return Number(s);
}

export class TarReader {
  private readonly _src: ByteSource;
  private _remaining = 0;
  private _padding = 0;
  private _global = new Map<string, Buffer>();

  constructor(stream: AsyncIterable<Buffer>) {
    this._src = new ByteSource(stream);
  }

  /** The next entry, or null at the end. Unread data of the previous entry is skipped. */
  async next(): Promise<TarEntry | null> {
    await this.skipData();
    let longName: Buffer | undefined;
    let longLink: Buffer | undefined;
    let pax: Map<string, Buffer> | undefined;
    for (;;) {
      const offset = this._src.pos;
      const h = await this._src.read(kBlock);
      if (h.length === 0) return null;
      if (h.length < kBlock) throw new BuildError(`tar: truncated header at offset ${offset}`);
      if (h.every((b) => b === 0)) continue;
      if (!checksumOk(h)) throw new BuildError(`tar: header checksum mismatch at offset ${offset} (not a tar archive, or corrupt)`);
      const flag = String.fromCharCode(h[156]!);
      const size = parseNumber(h.subarray(124, 136), 'size', offset);
      if (flag === 'L' || flag === 'K' || flag === 'x' || flag === 'g') {
        if (size > kMaxLongHeader) throw new BuildError(`tar: extended header of ${size} bytes at offset ${offset} is too large`);
        const data = await this._src.readExact(size, 'an extended header');
        await this._src.readExact((kBlock - (size % kBlock)) % kBlock, 'padding');
        if (flag === 'L') longName = cstr(data);
        else if (flag === 'K') longLink = cstr(data);
        else if (flag === 'x') pax = parsePax(data, offset);
        else for (const [k, v] of parsePax(data, offset)) this._global.set(k, v);
        continue;
      }
      const ustar = h.subarray(257, 263).toString('latin1') === 'ustar\0';
      let path = cstr(h.subarray(0, 100));
      if (ustar && h[345] !== 0) path = Buffer.concat([cstr(h.subarray(345, 500)), Buffer.from('/'), path]);
      const merged = new Map([...this._global, ...(pax ?? [])]);
      const entry: TarEntry = {
        path: merged.get('path') ?? longName ?? path,
        type: 'file',
        mode: parseNumber(h.subarray(100, 108), 'mode', offset) & 0o7777,
        uid: parseNumber(h.subarray(108, 116), 'uid', offset),
        gid: parseNumber(h.subarray(116, 124), 'gid', offset),
        size,
        mtimeSec: parseNumber(h.subarray(136, 148), 'mtime', offset),
        mtimeNsec: 0,
        linkname: merged.get('linkpath') ?? longLink ?? cstr(h.subarray(157, 257)),
        devmajor: parseNumber(h.subarray(329, 337), 'devmajor', offset),
        devminor: parseNumber(h.subarray(337, 345), 'devminor', offset),
        pax: merged,
        offset,
      };
      const sizeOverride = merged.get('size');
      if (sizeOverride) entry.size = paxNumber(sizeOverride, 'size', offset);
      const uid = merged.get('uid');
      if (uid) entry.uid = paxNumber(uid, 'uid', offset);
      const gid = merged.get('gid');
      if (gid) entry.gid = paxNumber(gid, 'gid', offset);
      const mtime = merged.get('mtime');
      if (mtime) ({ sec: entry.mtimeSec, nsec: entry.mtimeNsec } = parsePaxTime(mtime, offset));
      entry.type = this._type(flag, entry);
      if (entry.size < 0) throw new BuildError(`tar: negative size at offset ${offset}`);
      // Regular members (and old-style directories marked only by a trailing slash, and GNU
      // dumpdirs) are followed by `size` bytes; a hardlink's size field must be ignored.
      const dataSize = flag === '0' || flag === '\0' || flag === '7' || flag === 'D' ? entry.size : 0;
      if (entry.type !== 'file') entry.size = 0;
      this._remaining = dataSize;
      this._padding = (kBlock - (dataSize % kBlock)) % kBlock;
      return entry;
    }
  }

  private _type(flag: string, e: TarEntry): TarEntryType {
    switch (flag) {
      case '0':
      case '\0':
        // Pre-POSIX archives mark directories only by a trailing slash.
        return e.path.length > 0 && e.path[e.path.length - 1] === 0x2f ? 'dir' : 'file';
      case '7':
        return 'file';
      case '1':
        return 'link';
      case '2':
        return 'symlink';
      case '3':
        return 'chr';
      case '4':
        return 'blk';
      case '5':
      case 'D':
        return 'dir';
      case '6':
        return 'fifo';
      case 'S':
        throw new BuildError(`tar: GNU sparse entry ${e.path.toString('latin1')} is not supported yet`);
      default:
        throw new BuildError(`tar: unsupported entry type ${JSON.stringify(flag)} for ${e.path.toString('latin1')} at offset ${e.offset}`);
    }
  }

  /** Reads up to `n` bytes of the current entry's data (exactly n unless the entry ends). */
  async readData(n: number): Promise<Buffer> {
    const want = Math.min(n, this._remaining);
    const b = await this._src.readExact(want, 'file data');
    this._remaining -= want;
    if (this._remaining === 0 && this._padding > 0) {
      await this._src.readExact(this._padding, 'padding');
      this._padding = 0;
    }
    return b;
  }

  async skipData(): Promise<void> {
    while (this._remaining > 0) await this.readData(Math.min(this._remaining, 1 << 20));
    if (this._padding > 0) {
      // The final padding of the last entry may be missing in sloppy archives; tolerate EOF here.
      await this._src.read(this._padding);
      this._padding = 0;
    }
  }
}
