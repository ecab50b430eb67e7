/**
 * The node table of the writable overlay (overlay-writable.ts): merged-tree objects by id, by
 * (parent, name) and by host inode, with the kernel's lookup counts.
 *
 * A node is in the table ("bound") from the reply that makes the kernel count a lookup of it
 * (LOOKUP, MKNOD/MKDIR/SYMLINK/LINK/CREATE, a READDIRPLUS record) until FORGET takes its count
 * back to zero, and for as long as a bound node names it as a parent (paths are built through
 * parents). Nodes the overlay needs only within one request (an existence check, the records of
 * a listing not sent yet) are never bound. So the table holds what the kernel holds: a `find`
 * over a big tree, or create/unlink in a loop, does not grow it for good once the kernel lets
 * go (memory pressure, drop_caches, unlink). Ids are functions of the two layers
 * (overlay-writable.ts), so a node forgotten and found again comes back under the same id. The
 * root is always bound and never counted.
 *
 * A name removed (unlink, rmdir, rename over it) leaves its node an orphan while the kernel
 * still counts it (an open file): known by id only, its last parent held, its host inode no
 * longer claimed, so a new object with the same inode number gets another id meanwhile.
 */
import { fuseErrno, kErrno } from '../fuse/index.js';
import { kRootId } from './node-space.js';
import { UpperDir } from './overlay-upper.js';

export interface WNode {
  readonly id: number;
  parent: number;
  name: Buffer;
  readonly dir: boolean;
  /** Directories: the lower directory merged below (undefined when opaque or upper-only).
   * Other nodes: the lower object, used until the node is copied up. */
  lower: number | undefined;
  /** Present in the upper layer. */
  upper: boolean;
  /** Upper non-directories: the host inode (dev:ino). */
  key?: string | undefined;
  /** Upper files with several names: the other (parent, name) pairs known. */
  alt?: [number, Buffer][] | undefined;
  /** Lookups the kernel holds (bound nodes only). */
  refs: number;
  /** (parent, name) pairs of bound nodes that name this directory as their parent. */
  kids: number;
  /** Its last name is gone; reachable by id only until the kernel forgets it. */
  orphan?: boolean;
}

export const nameKey = (parent: number, name: Buffer): string => `${parent}/${name.toString('latin1')}`;

/** A node not in any table yet (what a lookup of the layers finds). */
export function newNode(id: number, parent: number, name: Buffer, dir: boolean, lower: number | undefined, upper: boolean, key?: string): WNode {
  return { id, parent, name, dir, lower, upper, key, refs: 0, kids: 0 };
}

/**
 * Whether two nodes with one id stand for the same object (two lookups raced, or two names of
 * a listing): one host inode (hard links), or else one name of the same lower object (names of
 * one lower inode stay separate nodes, as they copy up apart).
 */
function sameObject(a: WNode, b: WNode): boolean {
  if (a.orphan || a.dir !== b.dir || a.key !== b.key) return false;
  if (a.key !== undefined) return true;
  return a.lower === b.lower && a.upper === b.upper && a.parent === b.parent && a.name.equals(b.name);
}

export class NodeTable {
  readonly root: WNode;
  private readonly _nodes = new Map<number, WNode>();
  private readonly _byName = new Map<string, number>();
  private readonly _byKey = new Map<string, number>();

  /** `freshBase`: where ids for collisions of the id rule start counting. */
  constructor(
    lowerRoot: number,
    private _nextId: number,
  ) {
    this.root = newNode(kRootId, kRootId, Buffer.alloc(0), true, lowerRoot, true);
    this._nodes.set(kRootId, this.root);
  }

  /** Bound nodes (the root included). */
  get size(): number {
    return this._nodes.size;
  }

  get(id: number): WNode | undefined {
    return this._nodes.get(id);
  }

  byName(dir: number, name: Buffer): WNode | undefined {
    return this._nodes.get(this._byName.get(nameKey(dir, name)) ?? -1);
  }

  byKey(key: string): WNode | undefined {
    return this._nodes.get(this._byKey.get(key) ?? -1);
  }

  isBound(n: WNode): boolean {
    return this._nodes.get(n.id) === n;
  }

  /** `preferred` unless a bound node has it, else a fresh id. */
  freshId(preferred: number): number {
    return this._nodes.has(preferred) ? this._nextId++ : preferred;
  }

  /** The path of `n` below the upper root, through its parents ("" for the root). */
  rel(n: WNode): Buffer {
    const parts: Buffer[] = [];
    for (let cur = n; cur.id !== kRootId; ) {
      parts.push(cur.name);
      const p = this._nodes.get(cur.parent);
      if (!p) throw fuseErrno(kErrno.ESTALE);
      cur = p;
    }
    let rel: Buffer = Buffer.alloc(0);
    for (let i = parts.length - 1; i >= 0; i--) rel = UpperDir.child(rel, parts[i] as Buffer);
    return rel;
  }

  /**
   * The kernel is being told of `n` by `name` in `dir` (no name: as "." or ".."): binds it if
   * it is not bound and counts one lookup. Returns the node to answer with: `n`, the bound node
   * a concurrent lookup made for the same object, or a copy of `n` under a fresh id when another
   * object took its id meanwhile. Throws ESTALE for an orphan or a node whose parent is gone.
   */
  ref(n: WNode, dir?: WNode, name?: Buffer): WNode {
    let cur = n;
    if (!this.isBound(n)) {
      const holder = this._nodes.get(n.id);
      if (holder && sameObject(holder, n)) {
        cur = holder;
      } else {
        // A name removed since the node was found (a stale listing), or a parent forgotten.
        if (n.orphan || !this._nodes.has(n.parent)) throw fuseErrno(kErrno.ESTALE);
        cur = holder ? { ...n, id: this._nextId++, refs: 0, kids: 0 } : n;
        this._bind(cur);
      }
    }
    if (dir && name && cur !== this.root) this._addName(cur, dir.id, name);
    cur.refs++;
    return cur;
  }

  /** The kernel dropped `count` lookups of node `id` (FORGET, or a record it never got). */
  unref(id: number, count: number): void {
    const n = this._nodes.get(id);
    if (!n || n === this.root) return;
    n.refs = Math.max(0, n.refs - count);
    this._maybeDrop(n);
  }

  /** Name `name` in `dir` is gone from the tree (unlinked, removed, renamed over). */
  unbind(dir: WNode, name: Buffer): void {
    const key = nameKey(dir.id, name);
    const n = this._nodes.get(this._byName.get(key) ?? -1);
    this._byName.delete(key);
    if (!n) return;
    if (!n.orphan && n.parent === dir.id && n.name.equals(name)) {
      const next = n.alt?.shift();
      if (next) {
        [n.parent, n.name] = next;
        this._release(dir.id);
      } else {
        // Its last name: the host may give its inode (number) to a new object now.
        n.orphan = true;
        if (n.key !== undefined && this._byKey.get(n.key) === n.id) this._byKey.delete(n.key);
      }
    } else {
      const i = n.alt?.findIndex(([p, nm]) => p === dir.id && nm.equals(name)) ?? -1;
      if (i >= 0) {
        n.alt?.splice(i, 1);
        this._release(dir.id);
      }
    }
    this._maybeDrop(n);
  }

  /** `n` was renamed from `name` in `from` to `newName` in `to` (the target unbound first). */
  move(n: WNode, from: WNode, name: Buffer, to: WNode, newName: Buffer): void {
    if (!this.isBound(n)) return;
    const oldKey = nameKey(from.id, name);
    if (this._byName.get(oldKey) === n.id) this._byName.delete(oldKey);
    this._hold(to.id);
    this._byName.set(nameKey(to.id, newName), n.id);
    if (n.parent === from.id && n.name.equals(name)) {
      n.parent = to.id;
      n.name = newName;
    } else {
      const i = n.alt?.findIndex(([p, nm]) => p === from.id && nm.equals(name)) ?? -1;
      if (i < 0) {
        // Known by other names only: the new one joins them.
        (n.alt ??= []).push([to.id, newName]);
        return;
      }
      (n.alt as [number, Buffer][])[i] = [to.id, newName];
    }
    this._release(from.id);
  }

  /** `n` now has host inode `key` (copied up). */
  setKey(n: WNode, key: string): void {
    n.key = key;
    if (this.isBound(n) && !n.orphan) this._byKey.set(key, n.id);
  }

  /** The kernel forgot everything (DESTROY, transport reset, re-INIT): only the root stays. */
  reset(): void {
    this._nodes.clear();
    this._byName.clear();
    this._byKey.clear();
    this.root.kids = 0;
    this._nodes.set(kRootId, this.root);
  }

  private _bind(n: WNode): void {
    this._nodes.set(n.id, n);
    this._byName.set(nameKey(n.parent, n.name), n.id);
    this._hold(n.parent);
    for (const [p, nm] of n.alt ?? []) {
      this._byName.set(nameKey(p, nm), n.id);
      this._hold(p);
    }
    if (n.key !== undefined) this._byKey.set(n.key, n.id);
  }

  /** Records (dir, name) as a name of bound node `n` (hard links have several). */
  private _addName(n: WNode, dir: number, name: Buffer): void {
    // Every byName entry is one of its node's pairs: dropping the node removes exactly those.
    const known = (n.parent === dir && n.name.equals(name)) || n.alt?.some(([p, nm]) => p === dir && nm.equals(name)) === true;
    if (!known) {
      if (n.dir || n.orphan) return;
      (n.alt ??= []).push([dir, name]);
      this._hold(dir);
    }
    if (!n.orphan) this._byName.set(nameKey(dir, name), n.id);
  }

  private _hold(dir: number): void {
    const d = this._nodes.get(dir);
    if (d && d !== this.root) d.kids++;
  }

  private _release(dir: number): void {
    const d = this._nodes.get(dir);
    if (!d || d === this.root) return;
    d.kids = Math.max(0, d.kids - 1);
    this._maybeDrop(d);
  }

  private _maybeDrop(n: WNode): void {
    if (n === this.root || n.refs > 0 || n.kids > 0 || !this.isBound(n)) return;
    this._nodes.delete(n.id);
    for (const [p, nm] of [[n.parent, n.name] as [number, Buffer], ...(n.alt ?? [])]) {
      const key = nameKey(p, nm);
      if (this._byName.get(key) === n.id) this._byName.delete(key);
      this._release(p);
    }
    if (n.key !== undefined && this._byKey.get(n.key) === n.id) this._byKey.delete(n.key);
  }
}
