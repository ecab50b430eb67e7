import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';

import {
  applyImagePullAuth,
  kMaxConfigBytes,
  loadConfigFile,
  parseBlobCacheEntry,
  parseConfigText,
  readBackendEnvironment,
  redactConfig,
  validateConfig,
} from '../../src/config/index.js';

function err(fn: () => unknown): Error & { code?: string } {
  try {
    fn();
  } catch (e) {
    return e as Error & { code?: string };
  }
  assert.fail('expected an error');
}

const v1 = (backend: unknown, extra: Record<string, unknown> = {}): string => JSON.stringify({ device: { backend }, ...extra });

test('errors name the key path and the problem (v1 keys for v1 files)', () => {
  const cases: [string, RegExp][] = [
    [v1({ type: 'localfss', config: {} }), /^c\.json: device\.backend\.type: expected one of localfs, localdisk, oss, s3, registry, http-proxy$/],
    [v1({ config: {} }), /device\.backend\.type: required, one of localfs/],
    [JSON.stringify({ version: 3 }), /^c\.json: version: must be 2$/],
    [JSON.stringify({ version: 2, backend: { type: 'nfs' } }), /^c\.json: backend\.type: expected one of localfs, localdisk, oss, s3, registry, http-proxy$/],
    [v1({ type: 'oss', config: { retry_limit: 300 } }), /device\.backend\.config\.retry_limit: must be <= 255/],
    [v1({ type: 'oss', config: { timeout: 1.5 } }), /device\.backend\.config\.timeout: expected an integer, got number/],
    [v1({ type: 'localfs', config: { alt_dirs: 'x' } }), /device\.backend\.config\.alt_dirs: expected array, got string/],
    [v1({ type: 'localfs', config: { dir: '/x' } }, { amplify_io: 0x10000001 }), /amplify_io: must be <= 268435456/],
    [v1({ type: 'localfs', config: { dir: '/x' } }, { mode: 'fast' }), /mode: expected one of direct, cached/],
    [JSON.stringify({ device: { backend: { type: 'localfs', config: {} }, cache: { type: 'memcache' } } }), /device\.cache\.type: expected one of blobcache, filecache, fscache, dummycache, ""/],
    [JSON.stringify({ hello: 1 }), /not a nydusd configuration: expected "version": 2 \(v2\) or a "device" section \(v1\)/],
    ['[1, 2]', /must be a JSON object/],
  ];
  for (const [text, re] of cases) {
    const e = err(() => parseConfigText(text, 'c.json'));
    assert.equal(e.code, 'ERR_CONFIG', text);
    assert.match(e.message, re);
  }
});

test('semantic errors use v2 paths for v2 files and the written v1 keys for v1 files', () => {
  const a = parseConfigText(v1({ type: 'registry', config: {} }, { fs_prefetch: { enable: true, threads_count: 0 } }), 'v1.json');
  assert.throws(() => validateConfig(a.config, a.origin, 'v1.json'), {
    message: 'v1.json: device.backend.config.host: required; device.backend.config.repo: required; fs_prefetch.threads_count: must be 1..1024 when prefetch is enabled',
  });
  const b = parseConfigText('version = 2\n[backend]\ntype = "s3"\n[backend.s3]\nbucket_name = "b"\n[cache]\ntype = "blobcache"\n', 'v2.toml');
  assert.throws(() => validateConfig(b.config, b.origin, 'v2.toml'), {
    message: 'v2.toml: backend.s3.region: required; cache.filecache: section required when cache.type is "blobcache"',
  });
  const c = parseConfigText(JSON.stringify({ version: 2, backend: { type: 'oss' } }), 'v2.json');
  assert.throws(() => validateConfig(c.config, c.origin, 'v2.json'), { message: 'v2.json: backend.oss: section required when backend.type is "oss"' });
  const d = parseConfigText(JSON.stringify({ version: 2, backend: { type: 'http-proxy', 'http-proxy': { addr: 'localhost:80' } } }), 'p.json');
  assert.throws(() => validateConfig(d.config, d.origin, 'p.json'), /backend\.http-proxy\.addr: must be http:\/\/, https:\/\/ or an absolute Unix socket path/);
});

test('comments, trailing commas and a missing comma between lines are accepted, as in the docs', () => {
  const text = `{
  // Prepare nydusd configuration
  "device": {
    "backend": {
      // localfs | oss | registry
      "type": "localfs",
      "config": {
        "dir": "/var/lib/nydus/blobs", /* block comment */
      },
    },
    "cache": {
      "type": "blobcache",
      "config": { "work_dir": "/var/lib/nydus/cache" }
    }
  },
  "mode": "direct"
  "digest_validate": false,
}`;
  const r = parseConfigText(text, 'doc.json');
  assert.equal(r.format, 'v1-json');
  assert.equal(r.config.backend?.localfs?.dir, '/var/lib/nydus/blobs');
  assert.equal(r.config.cache?.filecache?.work_dir, '/var/lib/nydus/cache');
  assert.deepEqual(r.warnings, ['doc.json: missing comma before line 17 column 3 (accepted)']);
});

test('syntax errors give line and column and never quote the text (secrets stay out)', () => {
  const secret = 'SuperSecretValue123';
  const json = `{\n  "device": {\n    "backend": {"type": "oss", "config": {"access_key_secret": "${secret}" "x" }}\n  }\n}`;
  const e = err(() => parseConfigText(json, 'bad.json'));
  assert.match(e.message, /^bad\.json: invalid JSON at line 3 column \d+: expected "," or "}"$/);
  assert.doesNotMatch(e.message, new RegExp(secret));
  const toml = `version = 2\n[backend.registry]\nauth = "${secret}" garbage\n`;
  const t = err(() => parseConfigText(toml, 'bad.toml'));
  assert.match(t.message, /^bad\.toml: invalid TOML at line 3 column \d+: /);
  assert.doesNotMatch(t.message, new RegExp(secret));
  assert.doesNotMatch(t.message, /\n/);
  // Type errors on secret fields name the key, never the value.
  const ty = err(() => parseConfigText(v1({ type: 'oss', config: { access_key_id: ['x', secret] } }), 'ty.json'));
  assert.match(ty.message, /device\.backend\.config\.access_key_id: expected string, got array/);
  assert.doesNotMatch(ty.message, new RegExp(secret));
  assert.match(err(() => parseConfigText('{"a": "unterminated', 'u.json')).message, /line 1 column 7: unterminated string/);
  assert.match(err(() => parseConfigText('{"a": 1} x', 'u.json')).message, /unexpected text after the top-level value/);
});

test('every kind of JSON syntax error names line and column, never a character of the input', () => {
  const s = 'SuperSecretValue123';
  const cases: [string, RegExp][] = [
    [`{"k": "${s}" "x": 1}`, /line 1 column 29: expected "," or "}"$/],
    [`["${s}" "x"]`, /line 1 column 24: expected "," or "]"$/],
    [`{"k": "${s}`, /line 1 column 7: unterminated string$/],
    [`{"k": "${s}\\q"}`, /line 1 column 7: bad escape in string$/],
    [`{"k": "${s}\\u12"}`, /line 1 column 7: bad \\u escape$/],
    [`{"k": "${s}\t\u0001"}`, /line 1 column 7: control character in string$/],
    [`{"k": ${s}}`, /line 1 column 7: unexpected character or word$/],
    [`{${s}: 1}`, /line 1 column 2: /],
    [`{"k" "${s}"}`, /line 1 column 6: expected ":" after a member name$/],
    [`{"k": ["${s}",\n`, /line 2 column 1: unexpected end of input$/],
    [`{"k": 1} "${s}"`, /line 1 column 10: unexpected text after the top-level value$/],
    [`{"k": 1 /* ${s}`, /line 1 column 9: unterminated \/\* comment$/],
    [`${'['.repeat(70)}"${s}"`, /nesting deeper than 64$/],
    ['{', /line 1 column 2: unexpected end of input$/],
  ];
  for (const [text, want] of cases) {
    const e = err(() => parseConfigText(text, 'c.json'));
    assert.equal(e.code, 'ERR_CONFIG', text);
    assert.match(e.message, /^c\.json: invalid JSON at line \d+ column \d+: /, text);
    assert.match(e.message, want, text);
    assert.doesNotMatch(e.message, /Secret|\n/, text);
  }
  // A missing comma is tolerated only across a line break, in objects and arrays alike.
  const r = parseConfigText('{"version": 2, "backend": {"type": "localfs", "localfs": {"alt_dirs": ["/a"\n"/b"]}}}', 'a.json');
  assert.deepEqual(r.config.backend?.localfs?.alt_dirs, ['/a', '/b']);
  assert.deepEqual(r.warnings, ['a.json: missing comma before line 2 column 1 (accepted)']);
  // A leading byte order mark is whitespace.
  assert.equal(parseConfigText('\ufeff{"version": 2}', 'bom.json').format, 'v2-json');
});

test('unknown keys are dropped with one warning each, naming the full path', () => {
  const r = parseConfigText(
    JSON.stringify({
      device: { backend: { type: 'registry', config: { host: 'h', repo: 'r', mirrors: [], proxy: { urll: 'x' } } }, extra: 1 },
      top: true,
    }),
    'w.json',
  );
  // `mirrors` is a known key (the seed documents it), so only the typo is warned about.
  assert.deepEqual(r.warnings.sort(), [
    'w.json: unknown key device.backend.config.proxy.urll ignored',
    'w.json: unknown key device.extra ignored',
    'w.json: unknown key top ignored',
  ]);
  assert.equal(r.config.backend?.registry?.host, 'h');
});

test('loading order: JSON with "version" is v2, JSON with "device" is v1, everything else TOML v2', () => {
  assert.equal(parseConfigText('{"version": 2}').format, 'v2-json');
  assert.equal(parseConfigText('// c\n{"version": 2, "rafs": {"mode": "cached"}}').config.rafs?.mode, 'cached');
  assert.equal(parseConfigText(v1({ type: 'localfs', config: { dir: '/d' } })).format, 'v1-json');
  assert.equal(parseConfigText('# toml\nversion = 2\n').format, 'v2-toml');
  assert.throws(() => parseConfigText('id = "x"\n', 't.toml'), /not a nydusd configuration/);
});

test('v1 -> v2: defaults, validation from either flag, cache prefetch copied only when the cache has none', () => {
  const r = parseConfigText(v1({ type: 'localfs', config: { dir: '/d' } }));
  assert.deepEqual(r.config.cache, {
    type: '',
    compressed: false,
    validate: false,
    prefetch: { enable: false, threads: 8, batch_size: 1048576, bandwidth_limit: 0, prefetch_all: false, stream_prefetch: false },
  });
  assert.equal(r.config.rafs?.batch_size, 1048576);
  assert.equal(r.config.rafs?.mode, 'direct');
  assert.deepEqual(r.config.backend, { type: 'localfs', localfs: { dir: '/d', blob_file: '', alt_dirs: [] } });
  const p = parseConfigText(v1({ type: 'localfs', config: { dir: '/d' } }, { fs_prefetch: { enable: true, threads_count: 3 }, amplify_io: 0 }));
  assert.equal(p.config.cache?.prefetch.threads, 3);
  assert.equal(p.config.cache?.prefetch.prefetch_all, true, 'v1 prefetch_all defaults to true');
  assert.equal(p.config.rafs?.batch_size, 0);
  const v = parseConfigText(JSON.stringify({ device: { backend: { type: 'localfs', config: { dir: '/d' } }, cache: { type: 'dummycache', validate: true } } }));
  assert.equal(v.config.cache?.validate, true);
  assert.equal(v.config.rafs?.validate, false);
});

test('v2 defaults follow upstream (filecache work_dir ".", prefetch threads 8, proxy fallback true)', () => {
  const r = parseConfigText('version = 2\n[backend]\ntype = "oss"\n[backend.oss]\nendpoint = "e"\nbucket_name = "b"\n[cache]\ntype = "filecache"\n[cache.filecache]\n[rafs]\n');
  validateConfig(r.config, r.origin, 'x');
  assert.equal(r.config.cache?.filecache?.work_dir, '.');
  assert.equal(r.config.backend?.oss?.scheme, 'https');
  assert.equal(r.config.backend?.oss?.connect_timeout, 5);
  assert.equal(r.config.backend?.oss?.proxy.fallback, true);
  assert.equal(r.config.rafs?.prefetch.threads, 8);
  assert.equal(r.config.rafs?.batch_size, 1048576);
  assert.equal(parseConfigText('version = 2\n[backend]\ntype = "s3"\n[backend.s3]\n').config.backend?.s3?.endpoint, 's3.amazonaws.com');
});

test('secrets are redacted in the view used for logs and the API', () => {
  const r = parseConfigText(
    JSON.stringify({
      version: 2,
      backend: {
        type: 'registry',
        registry: { host: 'h', repo: 'r', auth: 'dXNlcjpwYXNz', registry_token: 'tok', proxy: { url: 'http://u:p@proxy:1' } },
        oss: { endpoint: 'e', bucket_name: 'b', access_key_id: 'AK', access_key_secret: 'SK' },
        s3: { region: 'r', bucket_name: 'b', access_key_id: 'AK3', access_key_secret: 'SK3' },
      },
      cache: { type: 'blobcache', filecache: { work_dir: '/c', encryption_key: 'ab'.repeat(32) } },
    }),
  );
  const view = JSON.stringify(redactConfig(r.config));
  for (const secret of ['dXNlcjpwYXNz', '"tok"', 'AK', 'SK', 'abab', 'u:p@']) assert.doesNotMatch(view, new RegExp(secret));
  assert.match(view, /"auth":"<redacted>"/);
  assert.match(view, /"url":"http:\/\/<redacted>@proxy:1"/);
  assert.equal(r.config.backend?.registry?.auth, 'dXNlcjpwYXNz', 'the original is untouched');
});

test('IMAGE_PULL_AUTH overrides registry auth; NYDUS_HEADER_* become backend headers', () => {
  const env = readBackendEnvironment({
    IMAGE_PULL_AUTH: 'bmV3OmF1dGg=',
    'NYDUS_HEADER_X-Dragonfly-Registry': 'https://index.docker.io',
    NYDUS_HEADER_Bad: 'a\r\nInjected: 1',
    'NYDUS_HEADER_Bad Name': 'x',
    PATH: '/bin',
  });
  assert.deepEqual(env.headers, { 'User-Agent': 'nydusd/1.0.0', 'X-Dragonfly-Registry': 'https://index.docker.io' });
  assert.deepEqual(env.rejected.sort(), ['NYDUS_HEADER_Bad', 'NYDUS_HEADER_Bad Name']);
  const reg = parseConfigText(v1({ type: 'registry', config: { host: 'h', repo: 'r', auth: 'old' } })).config;
  assert.equal(applyImagePullAuth(reg, env.imagePullAuth).backend?.registry?.auth, 'bmV3OmF1dGg=');
  assert.equal(reg.backend?.registry?.auth, 'old');
  const local = parseConfigText(v1({ type: 'localfs', config: { dir: '/d' } })).config;
  assert.equal(applyImagePullAuth(local, 'x'), local, 'no registry section: unchanged');
  assert.equal(readBackendEnvironment({ IMAGE_PULL_AUTH: '' }).imagePullAuth, undefined);
});

test('loadConfigFile: unreadable, oversized and directory paths fail with ERR_CONFIG', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cfg-'));
  try {
    assert.throws(() => loadConfigFile(join(dir, 'missing.json')), { code: 'ERR_CONFIG', message: /cannot read the configuration file \(ENOENT\)/ });
    assert.throws(() => loadConfigFile(dir), { code: 'ERR_CONFIG', message: /not a regular file/ });
    const big = join(dir, 'big.json');
    writeFileSync(big, `{"version": 2, "id": "${'x'.repeat(kMaxConfigBytes)}"}`);
    assert.throws(() => loadConfigFile(big), { message: /larger than 1048576 bytes/ });
    const ok = join(dir, 'ok.toml');
    writeFileSync(ok, 'version = 2\n[backend]\ntype = "localfs"\n[backend.localfs]\ndir = "/x"\n');
    assert.equal(loadConfigFile(ok).config.backend?.localfs?.dir, '/x');
    const invalid = join(dir, 'invalid.toml');
    writeFileSync(invalid, 'version = 2\n[backend]\ntype = "localfs"\n[backend.localfs]\n');
    assert.throws(() => loadConfigFile(invalid), { message: `${invalid}: backend.localfs.dir: required (or blob_file)` });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a "__proto__" member stays data', () => {
  const r = parseConfigText('{"version": 2, "__proto__": {"polluted": 1}}', 'p.json');
  assert.equal(({} as Record<string, unknown>)['polluted'], undefined);
  assert.deepEqual(r.warnings, ['p.json: unknown key __proto__ ignored']);
});

test('blob cache entries (schemas built on first use): bad fields rejected with their paths, legacy config converted', () => {
  assert.throws(() => parseBlobCacheEntry(JSON.stringify({ type: 'blob', id: 'x', config_v2: {} }), 'e'), {
    code: 'ERR_CONFIG',
    message: 'e: type: expected one of bootstrap, datablob',
  });
  const legacy = (config: unknown): string => JSON.stringify({ type: 'bootstrap', id: 'x', config });
  assert.throws(() => parseBlobCacheEntry(legacy({ backend_type: 'localfs', prefetch_config: { threads_count: -1 } }), 'e'), {
    code: 'ERR_CONFIG',
    message: 'e: config: prefetch_config.threads_count: must be >= 0',
  });
  const e = parseBlobCacheEntry(
    JSON.stringify({
      type: 'bootstrap', id: 'x', colour: 1,
      config: { id: 'c', backend_type: 'localfs', backend_config: { dir: '/d' }, cache_type: 'blobcache', cache_config: { work_dir: '/w' }, prefetch_config: { enable: true, threads_count: 2 } },
    }),
    'e',
  );
  assert.deepEqual(e.warnings, ['e: unknown key colour ignored']);
  assert.deepEqual(e.config.backend, { type: 'localfs', localfs: { blob_file: '', dir: '/d', alt_dirs: [] } });
  assert.deepEqual(e.config.cache.prefetch, { enable: true, threads: 2, batch_size: 0, bandwidth_limit: 0, prefetch_all: true, stream_prefetch: false });
});
