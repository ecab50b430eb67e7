/**
 * Every upstream sample configuration (fixtures/nydus/misc) parses; v1 files translate to v2 with
 * upstream's defaults; validation names exactly the keys a template still lacks; the blob cache
 * entry samples parse as blob cache entries (and are refused as nydusd configs).
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { test } from 'node:test';

import { configIssues, parseBlobCacheEntry, parseConfigText, validateConfig } from '../../src/config/index.js';
import { fixture, fixturesSkip } from '../helpers/paths.js';

const skip = fixturesSkip();
const kEntries = new Set(['configs/nydusd-blob-cache-entry.toml', 'configs/nydusd-boostrap-blob-cache-entry.json']);

function allSamples(): string[] {
  if (skip) return [];
  const out: string[] = [];
  for (const dir of ['configs', 'dragonfly', 'performance']) {
    for (const f of readdirSync(fixture('misc', dir))) out.push(`${dir}/${f}`);
  }
  return out.sort();
}

/** What validation must say about each sample (templates lack the registry host/repo). */
const kExpectedIssues: Record<string, string[]> = {
  'configs/nydusd-config.json': ['backend.registry.host', 'backend.registry.repo'],
  'performance/nydusd_config.json': ['backend.registry.repo'],
};

test('the fixture set is the one these tests were written for', { skip }, () => {
  assert.equal(allSamples().length, 12);
});

for (const name of allSamples()) {
  const text = (): string => readFileSync(fixture('misc', name), 'utf8');
  if (kEntries.has(name)) {
    test(`${name} is a blob cache entry, not a nydusd configuration`, () => {
      assert.throws(() => parseConfigText(text(), name), { code: 'ERR_CONFIG', message: /blob cache entry/ });
      const e = parseBlobCacheEntry(text(), name);
      assert.equal(e.type, 'bootstrap');
      assert.equal(e.config.backend.type, 'localfs');
    });
    continue;
  }
  test(`${name} parses`, () => {
    const r = parseConfigText(text(), name);
    assert.equal(r.config.version, 2);
    assert.deepEqual(
      configIssues(r.config).map((i) => i.path),
      kExpectedIssues[name] ?? [],
    );
    if (!kExpectedIssues[name]) validateConfig(r.config, r.origin, name);
  });
}

test('v1 sample (configs/nydusd-config.json) translates with upstream defaults', { skip }, () => {
  const r = parseConfigText(readFileSync(fixture('misc/configs/nydusd-config.json'), 'utf8'));
  assert.equal(r.format, 'v1-json');
  const c = r.config;
  assert.equal(c.backend?.type, 'registry');
  const reg = c.backend?.registry;
  assert.ok(reg);
  assert.equal(reg.scheme, 'https');
  assert.equal(reg.timeout, 5);
  assert.equal(reg.retry_limit, 2);
  assert.deepEqual(reg.ca_cert_files, ['/etc/ssl/certs/my-ca.pem']);
  assert.deepEqual(reg.proxy, {
    url: '',
    ping_url: '',
    fallback: true,
    check_interval: 5,
    use_http: false,
    check_pause_elapsed: 300,
    dragonfly_scheduler_endpoint: '',
  });
  assert.equal(c.cache?.type, 'blobcache');
  assert.equal(c.cache?.filecache?.work_dir, '/var/lib/nydus/cache');
  assert.equal(c.rafs?.mode, 'direct');
  assert.equal(c.rafs?.batch_size, 1048576);
  assert.equal(c.rafs?.enable_xattr, true);
  assert.deepEqual(c.rafs?.prefetch, {
    enable: true,
    threads: 8,
    batch_size: 1048576,
    bandwidth_limit: 0,
    prefetch_all: true,
    stream_prefetch: false,
  });
  // Upstream copies the filesystem prefetch into the cache when the cache has none.
  assert.deepEqual(c.cache?.prefetch, c.rafs?.prefetch);
});

test('dragonfly sample: proxy settings, validation from digest_validate and cache.validate, misplaced key warned', { skip }, () => {
  const r = parseConfigText(readFileSync(fixture('misc/dragonfly/nydusd-sdk-config.json'), 'utf8'), 'sdk.json');
  const proxy = r.config.backend?.registry?.proxy;
  assert.equal(proxy?.url, 'http://127.0.0.1:4001');
  assert.equal(proxy?.fallback, false);
  assert.equal(proxy?.dragonfly_scheduler_endpoint, 'http://127.0.0.1:8002');
  assert.equal(r.config.cache?.validate, true);
  assert.equal(r.config.rafs?.validate, true);
  assert.equal(r.config.rafs?.prefetch.threads, 10);
  assert.equal(r.config.rafs?.prefetch.batch_size, 131072);
  assert.equal(r.config.rafs?.prefetch.bandwidth_limit, 1048576);
  assert.deepEqual(r.warnings, ['sdk.json: unknown key device.cache.config.compressed ignored (did you mean device.cache.compressed?)']);
});

test('v2 TOML sample: every section, and the upstream typo "registy" is reported, not fatal', { skip }, () => {
  const r = parseConfigText(readFileSync(fixture('misc/configs/nydusd-config-v2.toml'), 'utf8'), 'v2.toml');
  assert.equal(r.format, 'v2-toml');
  const c = r.config;
  assert.equal(c.id, 'my_id');
  assert.equal(c.backend?.type, 'localfs');
  assert.deepEqual(c.backend?.localfs, { blob_file: '/tmp/nydus.blob.data', dir: '/tmp', alt_dirs: ['/var/nydus/cache'] });
  assert.equal(c.backend?.oss?.retry_limit, 5);
  assert.equal(c.backend?.registry?.proxy.url, 'localhost:6789');
  assert.equal(c.backend?.registry?.host, '', 'the [backend.registy] table is not [backend.registry]');
  assert.equal(c.cache?.type, 'filecache');
  assert.equal(c.cache?.prefetch.batch_size, 1000000);
  assert.equal(c.rafs?.prefetch.prefetch_all, true);
  assert.ok(r.warnings.includes('v2.toml: unknown key backend.registy ignored'));
  assert.ok(r.warnings.includes('v2.toml: unknown key cache.encryption_key ignored'));
});

test('legacy blob cache entry converts to config_v2 (and warns about metadata_file)', { skip }, () => {
  const e = parseBlobCacheEntry(readFileSync(fixture('misc/configs/nydusd-boostrap-blob-cache-entry.json'), 'utf8'), 'entry.json');
  assert.equal(e.id, 'bootstrap1');
  assert.equal(e.domainId, 'userid1');
  assert.equal(e.config.id, 'factory1');
  assert.deepEqual(e.config.backend.localfs, { dir: '/tmp/nydus', blob_file: '', alt_dirs: [] });
  assert.equal(e.config.cache.type, 'fscache');
  assert.equal(e.config.cache.fscache?.work_dir, '/tmp/nydus');
  assert.deepEqual(e.warnings, ['entry.json: config: unknown key metadata_file ignored (did you mean metadata_path?)']);
  const v2 = parseBlobCacheEntry(readFileSync(fixture('misc/configs/nydusd-blob-cache-entry.toml'), 'utf8'));
  assert.equal(v2.config.metadata_path, '/path/to/rafs/meta/data/blob');
  assert.equal(v2.config.cache.prefetch.threads, 8);
});
