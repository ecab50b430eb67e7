/**
 * Tree-wide steps shared by both formats: sequential inode numbering in upstream's order (a
 * directory's children numbered together, then each subdirectory in turn), link counts, the
 * order file data goes into the blob, and prefetch pattern resolution.
 */
import { BuildError, isDir, isReg, showPath, type Entry, type Inode } from './types.js';

/** Numbers every entry 1..n (root = 1) and counts links; returns entries in index order. */
export function assignIndexes(root: Entry): Entry[] {
  const entries: Entry[] = [root];
  root.index = 1;
  root.inode.ino = 1;
  root.inode.links = 1;
  const stack: Entry[] = [root];
  while (stack.length > 0) {
    const dir = stack.pop()!;
    dir.childIndex = entries.length + 1;
    const subdirs: Entry[] = [];
    for (const child of dir.inode.children ?? []) {
      entries.push(child);
      child.index = entries.length;
      if (child.inode.links === 0) child.inode.ino = child.index;
      child.inode.links++;
      if (isDir(child.inode)) subdirs.push(child);
    }
    // Reverse so the first subdirectory is finished (with all of its own subtree) first.
    for (let i = subdirs.length - 1; i >= 0; i--) stack.push(subdirs[i]!);
  }
  return entries;
}

/** st_nlink as a filesystem reports it: 2 + subdirectories for a directory, names otherwise. */
export function nlinkOf(inode: Inode): number {
  if (!isDir(inode)) return inode.links;
  let n = 2;
  for (const c of inode.children ?? []) if (isDir(c.inode)) n++;
  return n;
}

/** Looks an absolute in-image path up in the tree (exact bytes, no symlink resolution). */
export function resolvePath(root: Entry, path: Buffer): Entry | undefined {
  let cur = root;
  for (const part of splitPath(path)) {
    const children = cur.inode.children;
    if (!children) return undefined;
    const next = binarySearch(children, part);
    if (!next) return undefined;
    cur = next;
  }
  return cur;
}

function splitPath(path: Buffer): Buffer[] {
  const parts: Buffer[] = [];
  let start = 0;
  for (let i = 0; i <= path.length; i++) {
    if (i === path.length || path[i] === 0x2f) {
      if (i > start) {
        const part = path.subarray(start, i);
        if (!(part.length === 1 && part[0] === 0x2e)) parts.push(part);
      }
      start = i + 1;
    }
  }
  return parts;
}

function binarySearch(children: Entry[], name: Buffer): Entry | undefined {
  let lo = 0;
  let hi = children.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const c = Buffer.compare(children[mid]!.name, name);
    if (c === 0) return children[mid];
    if (c < 0) lo = mid + 1;
    else hi = mid - 1;
  }
  return undefined;
}

export interface PrefetchPlan {
  /** Entries matched exactly by a pattern, in pattern order: the prefetch table. */
  table: Entry[];
  /** Regular-file inodes under the patterns, pattern order first: data goes first in the blob. */
  files: Inode[];
}

/**
 * Resolves prefetch patterns like upstream: absolute paths only, a pattern covered by an earlier
 * ancestor pattern is dropped, missing paths and empty regular files match nothing.
 */
export function planPrefetch(root: Entry, patterns: readonly Buffer[], entries: readonly Entry[]): PrefetchPlan {
  const kept: Buffer[] = [];
  for (const raw of patterns) {
    const p = trimPath(raw);
    if (p.length === 0) continue;
    if (p[0] !== 0x2f) throw new BuildError(`prefetch path ${showPath(p)} must be absolute`);
    const covered = kept.some((k) => isAncestorOrSelf(k, p));
    if (!covered) kept.push(p);
  }
  const table: Entry[] = [];
  const matched = new Map<Entry, number>();
  kept.forEach((p, i) => {
    const e = resolvePath(root, p);
    if (!e || (isReg(e.inode) && e.inode.size === 0)) return;
    if (matched.has(e)) return;
    matched.set(e, i);
    table.push(e);
  });
  // Every regular file whose path has a matched ancestor-or-self is prefetched, ordered by the
  // pattern it falls under and then by index (upstream: a stable sort over BFS order).
  const files: { inode: Inode; rank: number; index: number }[] = [];
  const seen = new Set<Inode>();
  for (const e of entries) {
    if (!isReg(e.inode) || e.inode.size === 0 || seen.has(e.inode)) continue;
    for (let a: Entry | undefined = e; a; a = a.parent) {
      const rank = matched.get(a);
      if (rank !== undefined) {
        files.push({ inode: e.inode, rank, index: e.index });
        seen.add(e.inode);
        break;
      }
    }
  }
  files.sort((a, b) => a.rank - b.rank || a.index - b.index);
  return { table, files: files.map((f) => f.inode) };
}

function trimPath(p: Buffer): Buffer {
  let s = 0;
  let e = p.length;
  while (s < e && (p[s] === 0x20 || p[s] === 0x09 || p[s] === 0x0d)) s++;
  while (e > s && (p[e - 1] === 0x20 || p[e - 1] === 0x09 || p[e - 1] === 0x0d)) e--;
  // "/a/b/" names the same thing as "/a/b"
  while (e - s > 1 && p[e - 1] === 0x2f) e--;
  return p.subarray(s, e);
}

function isAncestorOrSelf(a: Buffer, b: Buffer): boolean {
  if (a.length === 1 && a[0] === 0x2f) return true;
  if (b.length < a.length || !b.subarray(0, a.length).equals(a)) return false;
  return b.length === a.length || b[a.length] === 0x2f;
}

/** Unique regular-file inodes in the order their data goes into the blob. */
export function dataOrder(entries: readonly Entry[], prefetchFirst: readonly Inode[]): Inode[] {
  const out: Inode[] = [...prefetchFirst];
  const seen = new Set<Inode>(prefetchFirst);
  for (const e of entries) {
    if (isReg(e.inode) && !seen.has(e.inode)) {
      seen.add(e.inode);
      out.push(e.inode);
    }
  }
  return out;
}
