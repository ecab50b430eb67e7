/** Hand-made tar archives for tests: ustar headers with valid checksums and PAX records. */

export interface HeaderOptions {
  type?: string;
  size?: number;
  mode?: number;
  /** Raw 8-byte uid field (e.g. base-256); default octal 0. */
  uidField?: Buffer;
  uid?: number;
  gid?: number;
  mtime?: number;
  linkname?: string;
  devmajor?: number;
  devminor?: number;
}

export function tarHeader(name: Buffer | string, o: HeaderOptions = {}): Buffer {
  const h = Buffer.alloc(512);
  Buffer.from(name).copy(h, 0);
  const oct = (v: number, off: number, len: number): void => {
    h.write(v.toString(8).padStart(len - 1, '0'), off, 'latin1');
  };
  oct(o.mode ?? 0o644, 100, 8);
  if (o.uidField) o.uidField.copy(h, 108);
  else oct(o.uid ?? 0, 108, 8);
  oct(o.gid ?? 0, 116, 8);
  oct(o.size ?? 0, 124, 12);
  oct(o.mtime ?? 0, 136, 12);
  h.write(o.type ?? '0', 156, 'latin1');
  if (o.linkname) h.write(o.linkname, 157, 'latin1');
  h.write('ustar\x0000', 257, 'latin1');
  oct(o.devmajor ?? 0, 329, 8);
  oct(o.devminor ?? 0, 337, 8);
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'latin1');
  return h;
}

export function tarPad(data: Buffer): Buffer {
  return Buffer.concat([data, Buffer.alloc((512 - (data.length % 512)) % 512)]);
}

export function paxRecord(key: string, value: Buffer | string): Buffer {
  const body = Buffer.concat([Buffer.from(` ${key}=`), Buffer.from(value), Buffer.from('\n')]);
  let len = body.length + 1;
  while (String(len).length + body.length !== len) len = String(len).length + body.length;
  return Buffer.concat([Buffer.from(String(len)), body]);
}

/** One archive member: optional PAX records, header, data. */
export function tarEntry(name: string, o: HeaderOptions & { data?: Buffer | string; pax?: [string, Buffer | string][] } = {}): Buffer {
  const parts: Buffer[] = [];
  if (o.pax && o.pax.length > 0) {
    const pax = Buffer.concat(o.pax.map(([k, v]) => paxRecord(k, v)));
    parts.push(tarHeader('PaxHeaders/x', { type: 'x', size: pax.length }), tarPad(pax));
  }
  const data = o.data === undefined ? Buffer.alloc(0) : Buffer.from(o.data);
  parts.push(tarHeader(name, { ...o, size: o.size ?? data.length }), tarPad(data));
  return Buffer.concat(parts);
}

export function tarArchive(...entries: Buffer[]): Buffer {
  return Buffer.concat([...entries, Buffer.alloc(1024)]);
}
