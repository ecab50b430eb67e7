/**
 * dm-verity hash tree for an exported disk, laid out as upstream nydus-image writes it
 * (utils/src/verity.rs): sha256, 4 KiB data and hash blocks, no superblock, empty salt. Levels
 * are stored top-down (the level nearest the root first); unused digest slots hold
 * sha256(zero page) rather than zeros. The result can be handed to `veritysetup` with the
 * printed options.
 */
import { sha256 } from '../blob/codec.js';

const kPage = 4096;
const kDigest = 32;
const kPerPage = kPage / kDigest;

/** sha256 of an all-zero page: the filler of unused slots and of holes. */
export const kZeroPageDigest = sha256(Buffer.alloc(kPage));

/** Pages per level: level 1 hashes the data pages, each higher level hashes the one below. */
export function levelPages(dataPages: number): number[] {
  const pages: number[] = [];
  let n = dataPages;
  while (n > 1) {
    n = Math.ceil(n / kPerPage);
    pages.push(n);
  }
  return pages;
}

export interface VerityTree {
  /** Hash area bytes, to be written at the hash offset. */
  tree: Buffer;
  rootDigest: Buffer;
}

/**
 * Builds the tree from the data pages' digests (one 32-byte digest per page, in order).
 * Zero or one data page gives an empty tree (the root is the zero-page digest or the page's).
 */
export function buildVerityTree(pageDigests: Buffer): VerityTree {
  const dataPages = pageDigests.length / kDigest;
  const pages = levelPages(dataPages);
  if (pages.length === 0) {
    return { tree: Buffer.alloc(0), rootDigest: dataPages === 1 ? Buffer.from(pageDigests) : kZeroPageDigest };
  }
  const levels: Buffer[] = pages.map((n) => {
    const b = Buffer.alloc(n * kPage);
    for (let off = 0; off < b.length; off += kDigest) kZeroPageDigest.copy(b, off);
    return b;
  });
  pageDigests.copy(levels[0]!, 0);
  for (let l = 1; l < levels.length; l++) {
    const below = levels[l - 1]!;
    const entries = Math.ceil(entriesAt(l, dataPages));
    for (let i = 0; i < entries; i++) sha256(below.subarray(i * kPage, (i + 1) * kPage)).copy(levels[l]!, i * kDigest);
  }
  const top = levels[levels.length - 1]!;
  // Top-down: the highest level first, level 1 last.
  return { tree: Buffer.concat([...levels].reverse()), rootDigest: sha256(top.subarray(0, kPage)) };
}

/** Number of digests stored at level index `l` (0-based: level 1 holds one per data page). */
function entriesAt(l: number, dataPages: number): number {
  let n = dataPages;
  for (let i = 0; i < l; i++) n = Math.ceil(n / kPerPage);
  return n;
}

export function verityOptions(dataBlocks: number, hashOffset: number, root: Buffer): string {
  return (
    `dm-verity options: --no-superblock --format=1 -s "" --hash=sha256 --data-block-size=${kPage} ` +
    `--hash-block-size=${kPage} --data-blocks ${dataBlocks} --hash-offset ${hashOffset} ${root.toString('hex')}`
  );
}
