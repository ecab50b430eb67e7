/**
 * The directories of the pseudo root: what a daemon started without an image shows, and the
 * paths API mounts hang from (upstream fuse-backend-rs PseudoFs). A mount at /a/b/c creates the
 * missing directories; they stay after the umount (as upstream: remounting reuses them, and a
 * guest holding one keeps a valid directory). Ids count up from 2 (1 is the root) and are never
 * reused, so a stale id can only ever name the directory it named.
 */
import { kRootId, kSlotSpan } from './node-space.js';

export interface PseudoDir {
  readonly id: number;
  readonly name: string;
  readonly parent: PseudoDir | undefined;
  readonly children: Map<string, PseudoDir>;
  /** Seconds since the epoch (upstream: creation time for atime, mtime and ctime). */
  readonly createdSec: number;
}

export class PseudoTreeError extends Error {}

/** Splits an absolute mountpoint into components; throws for relative paths and "..". */
export function mountpointComponents(path: string): string[] {
  if (typeof path !== 'string' || !path.startsWith('/')) {
    throw new PseudoTreeError(`mountpoint ${JSON.stringify(path)} must be an absolute path`);
  }
  if (path.includes('\0')) throw new PseudoTreeError('mountpoint must not contain NUL');
  const parts: string[] = [];
  for (const p of path.split('/')) {
    if (p === '' || p === '.') continue;
    if (p === '..') throw new PseudoTreeError(`mountpoint ${JSON.stringify(path)} must not contain ".."`);
    if (Buffer.byteLength(p) > 255) throw new PseudoTreeError(`mountpoint component ${JSON.stringify(p.slice(0, 32))}... is longer than 255 bytes`);
    parts.push(p);
  }
  return parts;
}

/** The canonical spelling of a mountpoint ("/a/b", "/" for the root). */
export function canonicalMountpoint(path: string): string {
  return `/${mountpointComponents(path).join('/')}`;
}

export class PseudoTree {
  private readonly _byId = new Map<number, PseudoDir>();
  private _nextId = kRootId + 1;
  readonly root: PseudoDir;

  constructor() {
    this.root = this._make(kRootId, '', undefined);
  }

  private _make(id: number, name: string, parent: PseudoDir | undefined): PseudoDir {
    const d: PseudoDir = { id, name, parent, children: new Map(), createdSec: Math.floor(Date.now() / 1000) };
    this._byId.set(id, d);
    parent?.children.set(name, d);
    return d;
  }

  get size(): number {
    return this._byId.size;
  }

  get(id: number): PseudoDir | undefined {
    return this._byId.get(id);
  }

  /** The directory at `parts`, or undefined (nothing is created). */
  walk(parts: readonly string[]): PseudoDir | undefined {
    let d: PseudoDir | undefined = this.root;
    for (const p of parts) {
      d = d.children.get(p);
      if (!d) return undefined;
    }
    return d;
  }

  /** The directory at `parts`, creating what is missing. */
  ensure(parts: readonly string[]): PseudoDir {
    let d = this.root;
    for (const p of parts) {
      let c = d.children.get(p);
      if (!c) {
        if (this._nextId >= kSlotSpan) throw new PseudoTreeError('too many pseudo directories');
        c = this._make(this._nextId++, p, d);
      }
      d = c;
    }
    return d;
  }

  pathOf(d: PseudoDir): string {
    const parts: string[] = [];
    for (let c: PseudoDir | undefined = d; c && c.parent; c = c.parent) parts.unshift(c.name);
    return `/${parts.join('/')}`;
  }
}
