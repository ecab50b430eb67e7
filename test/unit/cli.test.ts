import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';

import { createImage, defaultBuildOptions } from '../../src/rafs/builder/index.js';
import { binDir } from '../helpers/paths.js';

function run(bin: string, args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [join(binDir, bin), ...args], { encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

for (const bin of ['nydusd', 'nydus-image']) {
  test(`${bin} --version prints the package version`, () => {
    const r = run(bin, ['--version']);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /Version:\s+v\d+\.\d+\.\d+/);
  });

  test(`${bin} --version has upstream's lines: Version, Git Commit (as the snapshotter reads it), Build Time, Profile, Rustc`, () => {
    const r = run(bin, ['--version']);
    assert.equal(r.status, 0, r.stderr);
    assert.match(
      r.stdout,
      new RegExp(`^${bin} \\rVersion: \\tv\\d+\\.\\d+\\.\\d+\\nGit Commit: \\t(?:[0-9a-f]{12}|unknown)\\nBuild Time: \\t\\w{3}, \\d\\d \\w{3} \\d{4} \\d\\d:\\d\\d:\\d\\d \\+0000\\nProfile: \\trelease\\nRustc: \\t\\tnode v\\d+\\.\\d+\\.\\d+\\n$`),
    );
    // nydus-snapshotter's pattern, and the commit it must find.
    const commit = /Git Commit:\s*(.+)/.exec(r.stdout)?.[1];
    const head = spawnSync('git', ['rev-parse', 'HEAD'], { cwd: binDir, encoding: 'utf8' });
    if (head.status === 0) assert.equal(commit, head.stdout.trim().slice(0, 12));
    // The build time is when this program was compiled: not in the future.
    const built = Date.parse(/Build Time: \t(.+)/.exec(r.stdout)?.[1] ?? '');
    assert.ok(built <= Date.now() && built > Date.parse('2024-01-01'), r.stdout);
  });

  test(`${bin} --help lists usage and exits 0`, () => {
    const r = run(bin, ['--help']);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /--help/);
    assert.match(r.stdout, new RegExp(bin));
  });
}

test('the executables work through a symlink on PATH from any directory (the README install step)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cli-path-'));
  try {
    for (const bin of ['nydusd', 'nydus-image']) symlinkSync(join(binDir, bin), join(dir, bin));
    const env = { ...process.env, PATH: `${dir}:${process.env['PATH'] ?? ''}` };
    const v = spawnSync('nydus-image', ['--version'], { encoding: 'utf8', cwd: '/', env });
    assert.equal(v.status, 0, v.stderr);
    assert.match(v.stdout, /Git Commit:/);
    const c = spawnSync('nydusd', ['--print-capabilities'], { encoding: 'utf8', cwd: '/', env });
    assert.equal(c.status, 0, c.stderr);
    assert.equal(c.stdout, '{"type":"fs"}\n');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/** Runs a command whose stdout reader is gone before it writes (what `| head -1` leads to). */
function runIntoClosedPipe(bin: string, args: string[]): Promise<{ status: number | null; stderr: string }> {
  const child = spawn(process.execPath, [join(binDir, bin), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout.destroy();
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  return new Promise((resolve) => child.on('close', (status) => resolve({ status, stderr })));
}

test('output into a pipe whose reader is gone ends quietly with the command\'s own status (| head)', async () => {
  const work = mkdtempSync(join(tmpdir(), 'cli-epipe-'));
  try {
    const src = join(work, 'src');
    mkdirSync(src);
    for (let i = 0; i < 200; i++) writeFileSync(join(src, `f${i}`), `${i}`);
    const out = join(work, 'out');
    mkdirSync(out);
    const { bootstrapPath } = await createImage({ ...defaultBuildOptions(src), blobDir: out, bootstrapPath: join(out, 'boot') });
    for (const [bin, args] of [
      ['nydus-image', ['check', '-v', bootstrapPath!]],
      ['nydus-image', ['inspect', bootstrapPath!]],
      ['nydus-image', ['--help']],
      ['nydusd', ['--version']],
      ['nydusd', ['--help']],
    ] as const) {
      const r = await runIntoClosedPipe(bin, [...args]);
      assert.equal(r.stderr, '', `${bin} ${args.join(' ')}`);
      assert.equal(r.status, 0, `${bin} ${args.join(' ')}`);
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});
