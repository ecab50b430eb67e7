/**
 * A minimal writer for the cpio "newc" format (the one the Linux initramfs unpacker reads).
 *
 * The base initramfs is built once with `cpio -o -H newc`; this writer only makes the small
 * per-run archive (script, settings, extra files) that is appended after it, so nothing has to be
 * staged on disk or rebuilt for each guest run.
 */
import { NydusError } from '../src/util/errors.js';

export interface CpioEntry {
  /** Path inside the archive, without a leading slash. */
  name: string;
  /** 'dir' entries have no data. */
  type: 'file' | 'dir';
  mode: number;
  data?: Buffer;
}

const kMagic = '070701';
const kTrailer = 'TRAILER!!!';
const kTypeFile = 0o100000;
const kTypeDir = 0o040000;
// newc stores sizes as 8 hex digits.
const kMaxFileSize = 0xffffffff;

function hex8(n: number): string {
  return n.toString(16).padStart(8, '0');
}

function pad4(len: number): Buffer {
  return Buffer.alloc((4 - (len % 4)) % 4);
}

function header(ino: number, mode: number, nlink: number, fileSize: number, nameSize: number): string {
  // Fields: ino mode uid gid nlink mtime filesize devmajor devminor rdevmajor rdevminor namesize check.
  return kMagic + [ino, mode, 0, 0, nlink, 0, fileSize, 0, 0, 0, 0, nameSize, 0].map(hex8).join('');
}

function record(ino: number, name: string, mode: number, nlink: number, data: Buffer): Buffer[] {
  const nameBytes = Buffer.from(`${name}\0`, 'utf8');
  const head = Buffer.from(header(ino, mode, nlink, data.length, nameBytes.length), 'ascii');
  // The header (110 bytes) plus the name is padded to 4 bytes, then the data is padded to 4 bytes.
  return [head, nameBytes, pad4(head.length + nameBytes.length), data, pad4(data.length)];
}

/** Encodes `entries` (in order) plus the trailer. Owner is root, mtime 0. */
export function writeNewc(entries: readonly CpioEntry[]): Buffer {
  const parts: Buffer[] = [];
  let ino = 1;
  for (const ent of entries) {
    if (ent.name === '' || ent.name.startsWith('/') || ent.name.split('/').includes('..')) {
      throw new NydusError('ERR_GUEST_FILE', `invalid initramfs path: ${JSON.stringify(ent.name)}`);
    }
    const data = ent.type === 'file' ? (ent.data ?? Buffer.alloc(0)) : Buffer.alloc(0);
    if (data.length > kMaxFileSize) {
      throw new NydusError('ERR_GUEST_FILE', `initramfs file ${ent.name} is larger than 4 GiB`);
    }
    const type = ent.type === 'dir' ? kTypeDir : kTypeFile;
    parts.push(...record(ino++, ent.name, type | (ent.mode & 0o7777), ent.type === 'dir' ? 2 : 1, data));
  }
  parts.push(...record(0, kTrailer, 0, 1, Buffer.alloc(0)));
  return Buffer.concat(parts);
}

/**
 * Turns guest paths (`/etc/x` or `etc/x`) into archive entries, adding the parent directories:
 * the kernel's unpacker does not create missing parents. Directories that already exist in the
 * base archive are harmless to repeat (the unpacker ignores EEXIST).
 */
export function filesToEntries(files: Record<string, string | Buffer>, fileMode = 0o644): CpioEntry[] {
  const dirs = new Set<string>();
  const out: CpioEntry[] = [];
  for (const [rawPath, content] of Object.entries(files)) {
    const name = normalizeGuestPath(rawPath);
    const segs = name.split('/');
    for (let i = 1; i < segs.length; i++) {
      const dir = segs.slice(0, i).join('/');
      if (!dirs.has(dir)) {
        dirs.add(dir);
        out.push({ name: dir, type: 'dir', mode: 0o755 });
      }
    }
    out.push({ name, type: 'file', mode: fileMode, data: typeof content === 'string' ? Buffer.from(content) : content });
  }
  return out;
}

/** `/a//b/` -> `a/b`; rejects empty paths and `..` so nothing escapes the archive root. */
export function normalizeGuestPath(p: string): string {
  const segs = p.split('/').filter((s) => s !== '' && s !== '.');
  if (segs.length === 0 || segs.includes('..') || p.includes('\0')) {
    throw new NydusError('ERR_GUEST_FILE', `invalid guest file path: ${JSON.stringify(p)}`);
  }
  return segs.join('/');
}
