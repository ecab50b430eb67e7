import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';

import { binDir, fixture, fixturesSkip } from '../helpers/paths.js';
import { V6Peek } from '../helpers/v6-peek.js';

const work = mkdtempSync(join(tmpdir(), 'builder-cli-'));
after(() => rmSync(work, { recursive: true, force: true }));
let seq = 0;

function nydusImage(args: string[], input?: string, cwd?: string): { status: number | null; stdout: string; stderr: string } {
  // A bound on every run: a hang (e.g. creating a directory) fails instead of stalling the suite.
  const r = spawnSync(process.execPath, [join(binDir, 'nydus-image'), ...args], { encoding: 'utf8', input: input ?? '', cwd, timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function tree(): string {
  const src = join(work, `src-${seq++}`);
  mkdirSync(join(src, 'd'), { recursive: true });
  writeFileSync(join(src, 'd', 'f'), 'file data\n'.repeat(100));
  writeFileSync(join(src, 'g'), 'g');
  return src;
}

function outDir(): string {
  const d = join(work, `out-${seq++}`);
  mkdirSync(d);
  return d;
}

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

test('create with --blob-dir names the blob and the bootstrap by their sha256; -J writes the result', () => {
  const out = outDir();
  const json = join(work, `out-${seq++}.json`);
  const r = nydusImage(['create', '-D', out, '-J', json, tree()]);
  assert.equal(r.status, 0, r.stderr);
  const files = readdirSync(out);
  assert.equal(files.length, 2);
  for (const f of files) assert.equal(f, sha256(readFileSync(join(out, f))));
  const result = JSON.parse(readFileSync(json, 'utf8')) as { bootstrap: string; blobs: string[]; version: string };
  assert.equal(result.blobs.length, 1);
  assert.ok(files.includes(result.blobs[0]!));
  assert.equal(result.bootstrap, join(out, files.find((f) => f !== result.blobs[0])!));
  const p = new V6Peek(readFileSync(result.bootstrap));
  assert.equal(p.device(0).id, result.blobs[0]);
  assert.match(r.stderr, /successfully built RAFS filesystem/);
  const logFile = join(work, `log-${seq++}`);
  const r2 = nydusImage(['create', '-D', outDir(), '-L', logFile, tree()]);
  assert.equal(r2.status, 0, r2.stderr);
  assert.equal(r2.stderr, '');
  assert.match(readFileSync(logFile, 'utf8'), /successfully built RAFS filesystem/);
  const r3 = nydusImage(['create', '-D', outDir(), '-l', 'warn', tree()]);
  assert.equal(r3.stderr, '', '--log-level warn hides the summary');
});

test('create -D out/ ./rootfs creates out/ when it is missing, as upstream (the README example)', () => {
  const cwd = join(work, `cwd-${seq++}`);
  mkdirSync(cwd);
  const src = tree();
  const r = nydusImage(['create', '-D', 'out/', src], undefined, cwd);
  assert.equal(r.status, 0, r.stderr);
  const files = readdirSync(join(cwd, 'out'));
  assert.equal(files.length, 2, files.join(', '));
  assert.ok(files.every((f) => /^[0-9a-f]{64}$/.test(f)));
  // Parents too.
  const deep = nydusImage(['create', '-D', join('a', 'b', 'c'), src], undefined, cwd);
  assert.equal(deep.status, 0, deep.stderr);
  assert.equal(readdirSync(join(cwd, 'a', 'b', 'c')).length, 2);
});

test('upstream short flags and aliases are accepted', () => {
  const out = outDir();
  const src = tree();
  let r = nydusImage(['create', '-t', 'dir-rafs', '-B', join(out, 'b5'), '-b', join(out, 'blob5'), '-v', '5', '--compressor', 'lz4_block', '--digester', 'sha256', '--chunk-size', '0x4000', '--aligned-chunk', '--repeatable', src]);
  assert.equal(r.status, 0, r.stderr);
  const b5 = readFileSync(join(out, 'b5'));
  assert.equal(b5.readUInt32LE(12), 0x4000);
  assert.equal(Number(b5.readBigUInt64LE(16)) & 0x10, 0, '--repeatable drops EXPLICIT_UID_GID');
  r = nydusImage(['create', '--source-type', 'directory', '--inline-bootstrap', '-D', out, '--features', 'blob-toc', '--chunk-size', '65536', src]);
  assert.equal(r.status, 0, r.stderr);
});

test('prefetch paths come from stdin (upstream) or --prefetch-files', () => {
  const src = tree();
  let out = outDir();
  let r = nydusImage(['create', '--prefetch-policy', 'fs', '-B', join(out, 'boot'), '-D', out, src], '/d/f\n/g\n');
  assert.equal(r.status, 0, r.stderr);
  let p = new V6Peek(readFileSync(join(out, 'boot')));
  assert.deepEqual(p.prefetchNids(), [p.lookup('d/f').nid, p.lookup('g').nid]);
  out = outDir();
  const list = join(out, 'list');
  writeFileSync(list, '/g\n');
  r = nydusImage(['create', '--prefetch-policy', 'fs', '--prefetch-files', list, '-B', join(out, 'boot'), '-D', out, src]);
  assert.equal(r.status, 0, r.stderr);
  p = new V6Peek(readFileSync(join(out, 'boot')));
  assert.deepEqual(p.prefetchNids(), [p.lookup('g').nid]);
});

test('bad flags and values exit 2 with one line naming the problem', () => {
  const src = tree();
  const out = outDir();
  const cases: [string[], RegExp][] = [
    [['create', '-D', out, '--compressor', 'gzip', src], /compressor/],
    [['create', '-D', out, '--chunk-size', '0x1001', src], /invalid chunk size/],
    [['create', '-D', out, '--chunk-size', 'big', src], /invalid --chunk-size/],
    [['create', '-B', join(out, 'b'), src], /both --blob and --blob-dir are missing/],
    [['create', '-b', join(out, 'b'), src], /both --bootstrap and --blob-dir are missing/],
    [['create', '-D', out, '-B', join(out, 'b'), '--blob-inline-meta', src], /mutually exclusive|conflict/i],
    [['create', '-D', out, '--type', 'estargz-rafs', src], /--type estargz-rafs is not supported yet/],
    [['create', '-D', out, '--encrypt', src], /--encrypt is not supported yet/],
    [['create', '-D', out, '--features', 'foo', src], /unsupported feature `foo`/],
    [['create', '-D', out, '-v', '5', '--features', 'blob-toc', src], /blob-toc.*--fs-version 5/],
    [['create', '-D', out, '--no-such-flag', src], /Unknown argument/],
    [['create', '-D', join(src, 'g'), src], /--blob-dir .*: exists and is not a directory/],
    [['create', '-D', join(src, 'g', 'sub'), src], /--blob-dir .*\/g\/sub: cannot create the directory \(ENOTDIR\)/],
    [['create', '-D', '/proc/self/no-such-dir', src], /--blob-dir \/proc\/self\/no-such-dir: cannot create the directory \(ENOENT\)/],
    [['create', '-D', out], /SOURCE/],
    [['merge', 'x'], /nydus-image merge is not supported yet/],
    [['frobnicate'], /unknown subcommand/],
    [[], /subcommand is required/],
    [['export', '-B', 'x', '-D', out], /--block/],
    [['export', '--block', '-B', 'x'], /localfs-dir/],
    [['export', '--block', '-B', 'x', '-D', out, '--threads', '99'], /--threads 99/],
  ];
  for (const [args, re] of cases) {
    const r = nydusImage(args);
    assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, re, args.join(' '));
    assert.equal(r.stderr.trim().split('\n').length, 1, `one line for ${args.join(' ')}: ${r.stderr}`);
  }
});

test('runtime failures exit 1', () => {
  const out = outDir();
  let r = nydusImage(['create', '-D', out, join(work, 'nope')]);
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /cannot access source directory/);
  r = nydusImage(['export', '--block', '-B', join(work, 'nope'), '-D', out]);
  assert.equal(r.status, 1);
  assert.equal(readdirSync(out).length, 0, 'nothing left behind');
});

test('export --block --verity of the upstream v6 fixture is byte-identical to upstream', { skip: fixturesSkip() }, () => {
  const out = outDir();
  const disk = join(out, 'disk');
  const r = nydusImage(['export', '--block', '-B', fixture('tests/texture/bootstrap/rafs-v6-2.2.boot'), '-D', fixture('tests/texture/blobs'), '-O', disk, '--verity']);
  assert.equal(r.status, 0, r.stderr);
  // Expected digest from upstream's service/src/block_device.rs test_export().
  assert.equal(sha256(readFileSync(disk)), '5684c330c622350c12d633d0773201f862b9955375d806670e1aaf36ef038b31');
  assert.match(r.stdout, /^dm-verity options: --no-superblock --format=1 -s "" --hash=sha256 --data-block-size=4096 --hash-block-size=4096 --data-blocks 521 --hash-offset 2134016 [0-9a-f]{64}\n$/);
});
