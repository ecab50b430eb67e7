/** Version information printed by `--version` and reported by the API (`DaemonInfo.version`). */
import { readFileSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import type { BuildInfo } from '../daemon/options.js';

export type { BuildInfo };

let info: BuildInfo | undefined;

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return undefined;
  }
}

/**
 * The checkout's HEAD commit, read from the .git files (a worktree's `.git` file, loose refs,
 * packed-refs): spawning `git` cost ~10 ms of every daemon start. Undefined when this is no
 * git checkout (an installed package) or the layout is not understood.
 */
export function gitCommit(root: string): string | undefined {
  let gitDir = join(root, '.git');
  const pointer = readText(gitDir);
  if (pointer?.startsWith('gitdir: ')) {
    const p = pointer.slice('gitdir: '.length);
    gitDir = isAbsolute(p) ? p : join(root, p);
  }
  const head = readText(join(gitDir, 'HEAD'));
  if (head === undefined) return undefined;
  let sha: string | undefined = head;
  if (head.startsWith('ref: ')) {
    const ref = head.slice('ref: '.length);
    // A linked worktree keeps its HEAD locally and its refs in the common directory.
    const common = readText(join(gitDir, 'commondir'));
    const refDir = common === undefined ? gitDir : isAbsolute(common) ? common : join(gitDir, common);
    sha = readText(join(refDir, ref)) ?? readText(join(gitDir, ref));
    if (sha === undefined) {
      const packed = readText(join(refDir, 'packed-refs')) ?? '';
      sha = packed.split('\n').find((l) => l.endsWith(` ${ref}`))?.split(' ')[0];
    }
  }
  return sha !== undefined && /^[0-9a-f]{40,64}$/.test(sha) ? sha.slice(0, 12) : undefined;
}

export function buildInfo(): BuildInfo {
  if (info) return info;
  const pkgUrl = new URL('../../../package.json', import.meta.url);
  const pkg = JSON.parse(readFileSync(pkgUrl, 'utf8')) as { version: string };
  const commit = gitCommit(fileURLToPath(new URL('.', pkgUrl))) ?? 'unknown';
  info = {
    package_ver: `v${pkg.version}`,
    git_commit: commit,
    build_time: '',
    profile: 'release',
    // Upstream reports its compiler here; ours is the Node runtime.
    rustc: `node ${process.version}`,
  };
  return info;
}

export function versionText(program: string): string {
  const b = buildInfo();
  return [
    `${program} (Node-native nydusd)`,
    `Version:    ${b.package_ver}`,
    `Git Commit: ${b.git_commit}`,
    `Profile:    ${b.profile}`,
    `Runtime:    ${b.rustc}`,
  ].join('\n');
}
