/**
 * The folder-level include graph of native/: a node per folder (core/fuse, core/readpath,
 * binding, driver/cli, test, ...), an edge A -> B when a file in A includes a file in B, and the
 * cycles of that graph. `#include "x/y.h"` resolves as the build does: against native/core,
 * then native/, then the including file's own folder.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';

export interface IncludeEdge {
  from: string;
  to: string;
  /** One include that makes the edge: "file: #include line". */
  example: string;
}

function sources(dir: string, out: string[] = []): string[] {
  for (const ent of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, ent.name);
    if (ent.isDirectory()) sources(p, out);
    else if (/\.(h|cc)$/.test(ent.name)) out.push(p);
  }
  return out;
}

/** Every folder-to-folder include edge under `nativeDir` (one example include per edge). */
export function includeEdges(nativeDir: string): IncludeEdge[] {
  const edges = new Map<string, IncludeEdge>();
  const folderOf = (file: string): string => relative(nativeDir, dirname(file));
  for (const file of sources(nativeDir)) {
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(/^\s*#\s*include\s+"([^"]+)"/gm)) {
      const inc = m[1] ?? '';
      const target = [join(nativeDir, 'core', inc), join(nativeDir, inc), join(dirname(file), inc)].find((p) => existsSync(p));
      if (target === undefined) continue;
      const from = folderOf(file);
      const to = folderOf(target);
      if (from === to || edges.has(`${from}\0${to}`)) continue;
      edges.set(`${from}\0${to}`, { from, to, example: `${relative(nativeDir, file)}: #include "${inc}"` });
    }
  }
  return [...edges.values()];
}

/** The cycles of a directed graph, one per strongly connected component of 2+ nodes (Tarjan). */
export function findCycles(edges: readonly { from: string; to: string }[]): string[][] {
  const next = new Map<string, string[]>();
  for (const e of edges) next.set(e.from, [...(next.get(e.from) ?? []), e.to]);
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const out: string[][] = [];
  let counter = 0;
  const visit = (v: string): void => {
    index.set(v, counter);
    low.set(v, counter);
    counter++;
    stack.push(v);
    onStack.add(v);
    for (const w of next.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v) ?? 0, low.get(w) ?? 0));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v) ?? 0, index.get(w) ?? 0));
      }
    }
    if (low.get(v) === index.get(v)) {
      const scc: string[] = [];
      let w: string | undefined;
      do {
        w = stack.pop();
        if (w === undefined) break;
        onStack.delete(w);
        scc.push(w);
      } while (w !== v);
      if (scc.length > 1) out.push(scc.sort());
    }
  };
  for (const v of new Set(edges.flatMap((e) => [e.from, e.to]))) if (!index.has(v)) visit(v);
  return out;
}
