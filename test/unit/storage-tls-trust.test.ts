/**
 * The HTTP client's certificate trust (src/storage/http/trust.ts) against a real HTTPS server
 * whose CA only a test file vouches for: the NODE_EXTRA_CA_CERTS file bin/nydusd deferred is
 * trusted from the first TLS connection on, a missing or damaged one is warned about and never
 * crashes the client, and ca_cert_files add to that trust instead of replacing it.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { HttpClient } from '../../src/storage/http/client.js';
import { deferredExtraCaFile, pemCertificates, pemProblem, readExtraCerts, TlsTrust } from '../../src/storage/http/trust.js';
import { createLogger } from '../../src/util/logger.js';
import { makeCerts } from '../helpers/remote-servers.js';
import type { TlsBlobServer } from '../helpers/tls-blob-server.js';
import { startTlsBlobServer } from '../helpers/tls-blob-server.js';

const kSkip = spawnSync('openssl', ['version']).status === 0 ? false : 'openssl is not installed';
/** The key launch.cts records a deferred NODE_EXTRA_CA_CERTS file under. */
const kDeferredCaKey = Symbol.for('nydusd-node.deferred-extra-ca-certs');

function defer(file: string | undefined): void {
  const g = globalThis as Record<symbol, unknown>;
  if (file === undefined) delete g[kDeferredCaKey];
  else g[kDeferredCaKey] = file;
}

describe('TLS trust of the HTTP client', { skip: kSkip }, () => {
  const work = mkdtempSync(join(tmpdir(), 'nydusd-trust-'));
  let certs: ReturnType<typeof makeCerts>;
  let server: TlsBlobServer;
  /** ca.pem, a block that is no certificate, then another CA (token.pem). */
  let damaged = '';

  before(async () => {
    certs = makeCerts(join(work, 'certs'));
    writeFileSync(join(work, 'blob'), 'blob bytes');
    damaged = join(work, 'damaged.pem');
    writeFileSync(damaged, `${readFileSync(certs.caPem, 'utf8')}-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n${readFileSync(certs.tokenPem, 'utf8')}`);
    server = await startTlsBlobServer(work, { cert: certs.serverPem, key: certs.serverKey });
  });
  after(async () => {
    defer(undefined);
    await server.stop();
    rmSync(work, { recursive: true, force: true });
  });

  function capture(): { log: ReturnType<typeof createLogger>; text: () => string } {
    const lines: string[] = [];
    return { log: createLogger({ level: 'debug', stream: { write: (s: string) => lines.push(s) > 0 } }), text: () => lines.join('') };
  }

  /** One GET of the blob with a fresh client; its body, or the error's message chain. */
  async function get(opts: { caFiles?: string[]; log?: ReturnType<typeof createLogger> } = {}): Promise<string> {
    const client = await HttpClient.create({ timeoutMs: 10_000, connectTimeoutMs: 10_000, ...opts });
    try {
      const r = await client.request({ method: 'GET', url: new URL(`${server.origin}/blob`), headers: {}, maxBody: 1 << 20 });
      return `${r.status} ${r.body.toString()}`;
    } catch (err) {
      const parts: string[] = [];
      for (let e: unknown = err; e instanceof Error; e = e.cause) parts.push(`${(e as NodeJS.ErrnoException).code ?? ''} ${e.message}`);
      return `error: ${parts.join(' <- ')}`;
    } finally {
      await client.close();
    }
  }

  test('PEM files: certificate blocks only, as OpenSSL reads a CA file', () => {
    const pem = readFileSync(certs.caPem, 'utf8');
    assert.deepEqual(pemCertificates(`junk\n${pem}-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n${pem}`), [pem.trim(), pem.trim()]);
    assert.deepEqual(pemCertificates(''), []);
  });

  test('a certificate block must decode to one whole DER SEQUENCE', () => {
    const pem = readFileSync(certs.caPem, 'utf8').trim();
    assert.equal(pemProblem(pem), '');
    const lines = pem.split('\n');
    // A line lost in the middle: base64 still decodes, the DER length no longer matches.
    assert.match(pemProblem([...lines.slice(0, 3), ...lines.slice(4)].join('\n')), /^DER length \d+, block \d+ bytes$/);
    assert.equal(pemProblem('-----BEGIN CERTIFICATE-----\n@@@@\n-----END CERTIFICATE-----'), 'bad base64');
    assert.equal(pemProblem('-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----'), 'not a DER SEQUENCE');
  });

  test('readExtraCerts keeps what parses and says what it left out, never throws', async () => {
    const good = await readExtraCerts(certs.caPem);
    assert.equal(good.certs.length, 1);
    assert.deepEqual(good.problems, []);
    const bad = await readExtraCerts(damaged);
    assert.equal(bad.certs.length, 2);
    assert.equal(bad.problems.length, 1);
    assert.match(bad.problems[0]!, /^certificate 2 of the file does not parse \(.+\); it is ignored$/);
    const missing = await readExtraCerts(join(work, 'missing.pem'));
    assert.deepEqual(missing, { certs: [], problems: ['cannot read (ENOENT); the file is ignored'] });
  });

  test('without a deferred file the client keeps Node default trust: the test CA is unknown', async () => {
    defer(undefined);
    assert.equal(deferredExtraCaFile(), undefined);
    assert.equal(new TlsTrust({ caTexts: [], skipVerify: false }).custom, false);
    const before = server.requests();
    assert.match(await get(), /error: .*(self-signed|unable to verify|UNABLE_TO_VERIFY|SELF_SIGNED)/i);
    assert.equal(server.requests(), before, 'a request got past a handshake that should have failed');
  });

  test('a deferred NODE_EXTRA_CA_CERTS file is trusted from the first TLS connection on', async () => {
    defer(certs.caPem);
    try {
      assert.equal(new TlsTrust({ caTexts: [], skipVerify: false }).custom, true);
      assert.equal(new TlsTrust({ caTexts: [], skipVerify: true }).custom, false, 'skip_verify needs no certificates');
      const cap = capture();
      assert.equal(await get({ log: cap.log }), '200 blob bytes');
      assert.equal(cap.text(), '');
    } finally {
      defer(undefined);
    }
  });

  test('a missing deferred file: a warning, then the connection fails verification like any unknown CA', async () => {
    const missing = join(work, 'missing.pem');
    defer(missing);
    try {
      const cap = capture();
      assert.match(await get({ log: cap.log }), /error: .*(self-signed|unable to verify|UNABLE_TO_VERIFY|SELF_SIGNED)/i);
      assert.ok(cap.text().includes(`NODE_EXTRA_CA_CERTS ${missing}: cannot read (ENOENT); the file is ignored`), cap.text());
      // Warned once per process, not once per client.
      const again = capture();
      await get({ log: again.log });
      assert.equal(again.text(), '');
    } finally {
      defer(undefined);
    }
  });

  test('a damaged certificate in the deferred file is warned about; the others stay trusted', async () => {
    defer(damaged);
    try {
      const cap = capture();
      assert.equal(await get({ log: cap.log }), '200 blob bytes');
      assert.match(cap.text(), /NODE_EXTRA_CA_CERTS .*damaged\.pem: certificate 2 of the file does not parse/);
    } finally {
      defer(undefined);
    }
  });

  test('ca_cert_files add to the deferred file instead of replacing it, and alone still suffice', async () => {
    defer(certs.caPem);
    try {
      assert.equal(await get({ caFiles: [certs.tokenPem] }), '200 blob bytes');
    } finally {
      defer(undefined);
    }
    assert.equal(await get({ caFiles: [certs.caPem] }), '200 blob bytes');
    assert.match(await get({ caFiles: [certs.tokenPem] }), /^error: /);
  });
});
