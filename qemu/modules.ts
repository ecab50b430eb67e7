/**
 * Kernel module dependency closure for the guest initramfs.
 *
 * Debian's kernel package ships no `modules.dep` (depmod writes it at install time, and the
 * machine may not even have kmod), so we read each module's own `.modinfo` ELF section — the
 * same `depends=` / `softdep=` strings depmod reads — and write a `modules.dep` for the modules we
 * include, so busybox `modprobe` works inside the guest too.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';

import { NydusError } from '../src/util/errors.js';

export interface ModuleInfo {
  name: string;
  /** Path relative to `lib/modules/<release>/`, e.g. `kernel/fs/fuse/fuse.ko`. */
  path: string;
  depends: string[];
}

function bad(file: string, what: string): never {
  throw new NydusError('ERR_GUEST_MODULE', `${file}: ${what}`);
}

/** The NUL-separated `key=value` strings of an ELF64 little-endian module's `.modinfo` section. */
export function readModinfo(file: string, buf: Buffer = readFileSync(file)): Map<string, string[]> {
  // ELF64 header: magic, class 2 (64-bit), data 1 (LE); e_shoff @0x28, e_shentsize @0x3a,
  // e_shnum @0x3c, e_shstrndx @0x3e. Section header: sh_name @0, sh_offset @0x18, sh_size @0x20.
  if (buf.length < 0x40 || buf.readUInt32BE(0) !== 0x7f454c46 || buf[4] !== 2 || buf[5] !== 1) {
    bad(file, 'not an ELF64 little-endian module (compressed modules are not supported)');
  }
  const shoff = Number(buf.readBigUInt64LE(0x28));
  const shentsize = buf.readUInt16LE(0x3a);
  const shnum = buf.readUInt16LE(0x3c);
  const shstrndx = buf.readUInt16LE(0x3e);
  if (shentsize < 0x28 || shstrndx >= shnum || shoff + shnum * shentsize > buf.length) {
    bad(file, 'section header table out of bounds');
  }
  const section = (i: number): { name: number; off: number; size: number } => {
    const h = shoff + i * shentsize;
    const off = Number(buf.readBigUInt64LE(h + 0x18));
    const size = Number(buf.readBigUInt64LE(h + 0x20));
    if (off + size > buf.length) bad(file, `section ${i} out of bounds`);
    return { name: buf.readUInt32LE(h), off, size };
  };
  const strtab = section(shstrndx);
  const out = new Map<string, string[]>();
  for (let i = 0; i < shnum; i++) {
    const s = section(i);
    if (s.name >= strtab.size) continue;
    const nameEnd = buf.indexOf(0, strtab.off + s.name);
    if (nameEnd < 0 || buf.toString('latin1', strtab.off + s.name, nameEnd) !== '.modinfo') continue;
    for (const kv of buf.toString('utf8', s.off, s.off + s.size).split('\0')) {
      const eq = kv.indexOf('=');
      if (eq <= 0) continue;
      const key = kv.slice(0, eq);
      out.set(key, [...(out.get(key) ?? []), kv.slice(eq + 1)]);
    }
    return out;
  }
  return bad(file, 'no .modinfo section');
}

/** Module name as the kernel spells it: `virtio-rng` and `virtio_rng` are the same module. */
export function moduleName(s: string): string {
  return s.replace(/-/g, '_');
}

function indexModules(modulesDir: string): Map<string, string> {
  const byName = new Map<string, string>();
  const walk = (dir: string): void => {
    for (const ent of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, ent.name);
      if (ent.isDirectory()) walk(p);
      else if (ent.name.endsWith('.ko')) byName.set(moduleName(ent.name.slice(0, -3)), relative(modulesDir, p));
    }
  };
  walk(join(modulesDir, 'kernel'));
  return byName;
}

function builtinModules(modulesDir: string): Set<string> {
  try {
    const text = readFileSync(join(modulesDir, 'modules.builtin'), 'utf8');
    return new Set(text.split('\n').filter(Boolean).map((l) => moduleName(l.replace(/^.*\//, '').replace(/\.ko$/, ''))));
  } catch {
    return new Set();
  }
}

/** Names in `softdep=pre: a b post: c` (either side: both must be present to load cleanly). */
function softdeps(values: readonly string[]): string[] {
  return values.flatMap((v) => v.split(/\s+/)).filter((w) => w !== '' && !w.endsWith(':')).map(moduleName);
}

/**
 * The modules in `wanted` plus everything they depend on, ordered so each module comes after its
 * dependencies; among independent modules the order of `wanted` is kept (it encodes load-order
 * requirements the dependency graph does not capture).
 */
export function moduleClosure(modulesDir: string, wanted: readonly string[]): ModuleInfo[] {
  const index = indexModules(modulesDir);
  const builtin = builtinModules(modulesDir);
  const info = new Map<string, ModuleInfo>();
  const order: ModuleInfo[] = [];
  const visiting = new Set<string>();
  const visit = (raw: string, requiredBy: string | undefined, optional: boolean): void => {
    const name = moduleName(raw);
    if (info.has(name) || builtin.has(name)) return;
    if (visiting.has(name)) throw new NydusError('ERR_GUEST_MODULE', `module dependency cycle at ${name}`);
    const path = index.get(name);
    if (!path) {
      if (optional) return;
      throw new NydusError('ERR_GUEST_MODULE',
        `kernel module ${name}${requiredBy ? ` (needed by ${requiredBy})` : ''} not found under ${modulesDir}`);
    }
    visiting.add(name);
    const mi = readModinfo(join(modulesDir, path));
    const depends = (mi.get('depends') ?? []).flatMap((d) => d.split(',')).filter(Boolean).map(moduleName);
    for (const d of depends) visit(d, name, false);
    for (const d of softdeps(mi.get('softdep') ?? [])) visit(d, name, true);
    visiting.delete(name);
    const m: ModuleInfo = { name, path, depends };
    info.set(name, m);
    order.push(m);
  };
  for (const w of wanted) visit(w, undefined, false);
  return order;
}

/**
 * `modules.dep` lines for the included modules, `mods` being in load order (as moduleClosure
 * returns them). Like depmod, each line lists every transitive dependency, last-to-load first:
 * modprobe loads that list from its end.
 */
export function modulesDep(mods: readonly ModuleInfo[]): string {
  const byName = new Map(mods.map((m) => [m.name, m]));
  const position = new Map(mods.map((m, i) => [m.name, i]));
  return mods.map((m) => {
    const all = new Set<string>();
    const add = (n: string): void => {
      for (const d of byName.get(n)?.depends ?? []) {
        if (byName.has(d) && !all.has(d)) {
          all.add(d);
          add(d);
        }
      }
    };
    add(m.name);
    const deps = [...all].sort((a, b) => (position.get(b) ?? 0) - (position.get(a) ?? 0)).map((d) => byName.get(d)?.path);
    return `${m.path}:${deps.length ? ` ${deps.join(' ')}` : ''}\n`;
  }).join('');
}
