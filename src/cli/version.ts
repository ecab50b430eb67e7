/** Version information printed by `--version` and reported by the API (`DaemonInfo.version`). */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export interface BuildInfo {
  package_ver: string;
  git_commit: string;
  build_time: string;
  profile: string;
  rustc: string;
}

let info: BuildInfo | undefined;

export function buildInfo(): BuildInfo {
  if (info) return info;
  const pkgUrl = new URL('../../../package.json', import.meta.url);
  const pkg = JSON.parse(readFileSync(pkgUrl, 'utf8')) as { version: string };
  let commit = 'unknown';
  try {
    commit = execFileSync('git', ['rev-parse', '--short=12', 'HEAD'], {
      cwd: fileURLToPath(new URL('.', pkgUrl)),
      stdio: ['ignore', 'pipe', 'ignore'],
      encoding: 'utf8',
    }).trim();
  } catch {
    // Not a git checkout (installed package): keep "unknown".
  }
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
