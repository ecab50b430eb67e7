/**
 * The harness's pure parts (no guest boot): the newc writer is checked against GNU cpio, the
 * marker parser against crafted channels, the module closure against the cached guest kernel.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';

import { filesToEntries, normalizeGuestPath, writeNewc } from '../../qemu/cpio.js';
import { parseScriptChannel } from '../../qemu/guest.js';
import { kLoadModules } from '../../qemu/initramfs.js';
import { cachedKernels, parseMetaPackage } from '../../qemu/kernel.js';
import { moduleClosure, modulesDep } from '../../qemu/modules.js';
import { projectRoot } from '../helpers/paths.js';

const haveCpio = spawnSync('cpio', ['--version']).status === 0;

describe('newc writer', () => {
  test('GNU cpio extracts what writeNewc wrote, with parents and modes', { skip: haveCpio ? false : 'cpio not installed' }, () => {
    const dir = mkdtempSync(join(tmpdir(), 'newc-test-'));
    try {
      const odd = Buffer.from([0, 1, 2, 255, 254]);
      const archive = writeNewc([
        ...filesToEntries({ '/a/b/c.txt': 'hello', 'top': odd, 'a/empty': '' }),
        ...filesToEntries({ 'bin/run.sh': '#!/bin/sh\n' }, 0o755),
      ]);
      assert.equal(archive.length % 4, 0);
      const r = spawnSync('cpio', ['-id', '--quiet', '--no-absolute-filenames'], { cwd: dir, input: archive });
      assert.equal(r.status, 0, r.stderr.toString());
      assert.equal(readFileSync(join(dir, 'a/b/c.txt'), 'utf8'), 'hello');
      assert.deepEqual(readFileSync(join(dir, 'top')), odd);
      assert.equal(readFileSync(join(dir, 'a/empty')).length, 0);
      assert.equal(statSync(join(dir, 'bin/run.sh')).mode & 0o777, 0o755);
      assert.equal(statSync(join(dir, 'top')).mode & 0o777, 0o644);
      assert.ok(statSync(join(dir, 'a/b')).isDirectory());
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('paths that escape the root are refused', () => {
    for (const p of ['', '/', '../x', 'a/../../x', 'a\0b']) {
      assert.throws(() => normalizeGuestPath(p), { code: 'ERR_GUEST_FILE' }, p);
    }
    assert.equal(normalizeGuestPath('//a/./b/'), 'a/b');
  });
});

describe('script channel markers', () => {
  const t = '0123456789abcdef';
  const start = (n: number): string => `\x1e${t} start ${n}\x1e`;
  const exit = (n: number, rc: number): string => `\x1e${t} exit ${n} ${rc}\x1e`;

  test('output is the text between markers; the last finished boot gives the status', () => {
    const p = parseScriptChannel(`${start(1)}one\n${exit(1, 0)}${start(2)}two${exit(2, 7)}`, t);
    assert.deepEqual(p, { output: 'one\ntwo', boots: 2, exitCode: 7 });
  });

  test('a boot that started but did not finish reports -1', () => {
    assert.deepEqual(parseScriptChannel(`${start(1)}a${exit(1, 0)}${start(2)}partial`, t), { output: 'apartial', boots: 2, exitCode: -1 });
    assert.deepEqual(parseScriptChannel('', t), { output: '', boots: 0, exitCode: -1 });
  });

  test('markers with another token are output, not markers', () => {
    const fake = `\x1effffffffffffffff exit 1 0\x1e`;
    const p = parseScriptChannel(`${start(1)}${fake}${exit(1, 2)}`, t);
    assert.deepEqual(p, { output: fake, boots: 1, exitCode: 2 });
  });
});

describe('guest kernel', () => {
  test('apt-cache show of the meta-package names the versioned cloud kernel', () => {
    const text = 'Package: linux-image-cloud-amd64\nVersion: 6.1.192-2\nDepends: linux-image-6.1.0-56-cloud-amd64 (= 6.1.192-2)\n';
    assert.deepEqual(parseMetaPackage(text),
      { pkg: 'linux-image-6.1.0-56-cloud-amd64', release: '6.1.0-56-cloud-amd64', version: '6.1.192-2' });
    assert.deepEqual(parseMetaPackage('Version: 6.1.1-1\nDepends: linux-image-6.1.0-9-cloud-amd64\n')?.version, '6.1.1-1');
    assert.equal(parseMetaPackage('Package: linux-image-cloud-amd64\n'), undefined);
  });

  const kernel = cachedKernels()[0];
  test('module closure loads dependencies first and keeps the virtio_pci order', { skip: kernel ? false : 'guest kernel not fetched' }, () => {
    const mods = moduleClosure(kernel?.modulesDir ?? '', kLoadModules).map((m) => m.name);
    const at = (n: string): number => mods.indexOf(n);
    for (const n of kLoadModules) assert.ok(at(n) >= 0, `${n} missing from ${mods.join(' ')}`);
    const order = ['virtio_ring', 'virtio', 'virtio_pci_legacy_dev', 'virtio_pci_modern_dev', 'virtio_pci', 'fuse', 'virtiofs'];
    for (let i = 1; i < order.length; i++) assert.ok(at(order[i - 1] ?? '') < at(order[i] ?? ''), mods.join(' '));
    // erofs needs libcrc32c (a module in Debian's cloud kernel), loaded before it.
    assert.ok(at('libcrc32c') >= 0 && at('libcrc32c') < at('erofs'), mods.join(' '));
    const dep = modulesDep(moduleClosure(kernel?.modulesDir ?? '', kLoadModules));
    assert.match(dep, /^kernel\/drivers\/virtio\/virtio_pci\.ko: .*virtio\.ko kernel\/drivers\/virtio\/virtio_ring\.ko$/m);
  });

  test('an unknown module is a clear error', { skip: kernel ? false : 'guest kernel not fetched' }, () => {
    assert.throws(() => moduleClosure(kernel?.modulesDir ?? '', ['no_such_module']), { code: 'ERR_GUEST_MODULE' });
  });
});

test('the vhost-user backend descriptor follows docs/interop/vhost-user.json', () => {
  const d = JSON.parse(readFileSync(join(projectRoot, 'qemu', '50-qemu-nydusd.json'), 'utf8')) as Record<string, unknown>;
  assert.equal(d['type'], 'fs');
  assert.equal(typeof d['description'], 'string');
  assert.match(String(d['binary']), /^\/.*\/nydusd$/);
  assert.deepEqual(Object.keys(d).sort(), ['binary', 'description', 'type']);
});
