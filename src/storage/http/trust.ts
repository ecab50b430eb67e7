/**
 * Which certificate authorities the HTTP client's TLS connections trust.
 *
 * Node's default trust is its bundled roots plus the certificates of the NODE_EXTRA_CA_CERTS
 * file, which Node 20 parses at every process start, TLS or not (~70 ms with a distribution's
 * whole bundle there). bin/nydusd spares a start that cost: it hands the file over instead
 * (NYDUS_DEFERRED_EXTRA_CA_CERTS; src/cli/launch.cts records it), and a client here then trusts
 * that file's certificates from its first TLS connection on. A daemon that never speaks TLS never
 * reads a certificate.
 *
 * Node's `ca` option replaces its whole default store, so a context of ours lists the bundled
 * roots again (tls.rootCertificates), then the extra file, then the config's `ca_cert_files`
 * (trusted besides the defaults, as upstream does). Without a deferred file and without
 * ca_cert_files, connections keep Node's default context. The context is made once per client,
 * and the file read once per process.
 *
 * A deferred file that cannot be read, or a certificate in it that does not parse, is warned about
 * and left out, as Node does at start ("Ignoring extra certs from ..."): the daemon goes on with
 * the rest, and a server only that certificate vouched for fails verification like any other.
 */
import { readFile } from 'node:fs/promises';
import type { SecureContext } from 'node:tls';

import type { Logger } from '../../util/logger.js';
import { errnoCode } from '../contract/errors.js';

/** Where launch.cts leaves the NODE_EXTRA_CA_CERTS file Node did not parse in this process. */
const kDeferredCaKey = Symbol.for('nydusd-node.deferred-extra-ca-certs');

/** The NODE_EXTRA_CA_CERTS file bin/nydusd deferred (Node never parsed it here), or undefined. */
export function deferredExtraCaFile(): string | undefined {
  const v = (globalThis as Record<symbol, unknown>)[kDeferredCaKey];
  return typeof v === 'string' && v !== '' ? v : undefined;
}

/**
 * The certificate blocks of a PEM file, as OpenSSL's certificate reader takes them: other blocks
 * (keys, CRLs) and text around them are skipped.
 */
export function pemCertificates(text: string): string[] {
  return text.match(/-----BEGIN (?:X509 )?CERTIFICATE-----[^-]*-----END (?:X509 )?CERTIFICATE-----/g) ?? [];
}

export interface ExtraCerts {
  certs: string[];
  /** What was left out and why, one line each (empty when everything was taken). */
  problems: string[];
}

/**
 * Why a PEM certificate block cannot be a certificate, or '' when it looks like one: its base64
 * must decode exactly and hold one DER SEQUENCE whose length is the block's. OpenSSL parses the
 * rest when the context is made; this catches what makes Node warn at start (a bad base64 decode,
 * a truncated block) for a tenth of the cost of parsing every certificate twice.
 */
export function pemProblem(pem: string): string {
  const body = pem.replace(/-----[^-]*-----/g, '').replace(/\s+/g, '');
  const der = Buffer.from(body, 'base64');
  if (der.length === 0 || der.toString('base64') !== body) return 'bad base64';
  if (der[0] !== 0x30 || der.length < 2) return 'not a DER SEQUENCE';
  // DER length: one byte below 0x80, else 0x80 + the count of big-endian length bytes.
  const first = der[1]!;
  let len = first;
  let head = 2;
  if (first >= 0x80) {
    const n = first - 0x80;
    if (n === 0 || n > 4 || der.length < 2 + n) return 'bad DER length';
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + der[2 + i]!;
    head = 2 + n;
  }
  return head + len === der.length ? '' : `DER length ${head + len}, block ${der.length} bytes`;
}

/** Reads `file` and keeps the certificates that look whole. Never throws: failures are `problems`. */
export async function readExtraCerts(file: string): Promise<ExtraCerts> {
  let text: string;
  try {
    text = await readFile(file, 'latin1');
  } catch (err) {
    return { certs: [], problems: [`cannot read (${errnoCode(err)}); the file is ignored`] };
  }
  const certs: string[] = [];
  const problems: string[] = [];
  pemCertificates(text).forEach((pem, i) => {
    const why = pemProblem(pem);
    if (why === '') certs.push(pem);
    else problems.push(`certificate ${i + 1} of the file does not parse (${why}); it is ignored`);
  });
  return { certs, problems };
}

/** The deferred file's certificates, read and warned about once per process. */
const deferredCerts = new Map<string, Promise<string[]>>();

function deferredExtraCerts(file: string, log: Logger | undefined): Promise<string[]> {
  const known = deferredCerts.get(file);
  if (known) return known;
  const certs = readExtraCerts(file).then(({ certs, problems }) => {
    for (const p of problems) {
      const msg = `NODE_EXTRA_CA_CERTS ${file}: ${p}`;
      // Node's own warning goes to stderr; ours goes to the daemon's log when there is one.
      if (log) log.warn(msg);
      else process.stderr.write(`Warning: ${msg}\n`);
    }
    return certs;
  });
  deferredCerts.set(file, certs);
  return certs;
}

export interface TrustOptions {
  /** The contents of the config's `ca_cert_files` (read when the backend is made: a missing file is a config error). */
  caTexts: readonly string[];
  skipVerify: boolean;
  log?: Logger | undefined;
}

/** The trust of one HTTP client's TLS connections. */
export class TlsTrust {
  private _context: Promise<SecureContext> | undefined;

  constructor(private readonly _o: TrustOptions) {}

  /** Whether TLS connections need context() (otherwise Node's default context is the right one). */
  get custom(): boolean {
    return !this._o.skipVerify && (this._o.caTexts.length > 0 || deferredExtraCaFile() !== undefined);
  }

  /** The context to connect with, made on the first call. */
  context(): Promise<SecureContext> {
    this._context ??= this._make();
    return this._context;
  }

  private async _make(): Promise<SecureContext> {
    const tls = process.getBuiltinModule('node:tls');
    const deferred = deferredExtraCaFile();
    let extra: string[] = [];
    if (deferred !== undefined) {
      extra = await deferredExtraCerts(deferred, this._o.log);
    } else if (process.env['NODE_EXTRA_CA_CERTS']) {
      // Node parsed this file at start (and warned about it then), but `ca` replaces the store
      // that holds it: listed again so ca_cert_files add to the default trust, not replace it.
      extra = (await readExtraCerts(process.env['NODE_EXTRA_CA_CERTS'])).certs;
    }
    return tls.createSecureContext({ ca: [...tls.rootCertificates, ...extra, ...this._o.caTexts] });
  }
}
