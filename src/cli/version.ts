/** Version information printed by `--version` and reported by the API (`DaemonInfo.version`). */
import { readFileSync, statSync } from 'node:fs';
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

/**
 * When this program was built: the time `npm run build` compiled this module, in upstream's
 * format (RFC 2822 in UTC, as the `built` crate writes it). Empty when it cannot be told.
 */
function buildTime(): string {
  try {
    return new Date(statSync(new URL(import.meta.url)).mtimeMs).toUTCString().replace(/GMT$/, '+0000');
  } catch {
    return '';
  }
}

export function buildInfo(): BuildInfo {
  if (info) return info;
  const pkgUrl = new URL('../../../package.json', import.meta.url);
  const pkg = JSON.parse(readFileSync(pkgUrl, 'utf8')) as { version: string };
  const commit = gitCommit(fileURLToPath(new URL('.', pkgUrl))) ?? 'unknown';
  info = {
    package_ver: `v${pkg.version}`,
    git_commit: commit,
    build_time: buildTime(),
    profile: 'release',
    // Upstream reports its compiler here; what compiles and runs us is Node.
    rustc: `node ${process.version}`,
  };
  return info;
}

/**
 * `--version` in upstream's shape (BuildTimeInfo::dump printed by clap after the
 * program name; the carriage return puts "Version:" at the start of the line on a terminal).
 * nydus-snapshotter reads the commit with `Git Commit:\s*(.+)`.
 */
export function versionText(program: string): string {
  const b = buildInfo();
  return `${program} \rVersion: \t${b.package_ver}\nGit Commit: \t${b.git_commit}\nBuild Time: \t${b.build_time}\nProfile: \t${b.profile}\nRustc: \t\t${b.rustc}`;
}
