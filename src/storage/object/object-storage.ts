/**
 * `s3` and `oss` backends (reference/rafs-format.md §3.7): object key = object_prefix + blob id,
 * HEAD for the size, GET with Range for data, every request signed (a signature is computed
 * even with empty keys, as upstream does).
 * - s3: path style, `{scheme}://{endpoint}/{bucket}/{key}`, AWS SigV4 with `x-amz-date` and
 *   `x-amz-content-sha256` (the hash of the empty body), service "s3".
 * - oss: virtual-hosted, `{scheme}://{bucket}.{endpoint}/{key}`, OSS HMAC-SHA1 with a `Date`.
 */
import type { OssConfig, S3Config } from '../../config/index.js';
import { ConfigError } from '../../config/index.js';
import type { BlobReply, BlobRequest } from '../http/blob-http.js';
import { HttpBlobBackend } from '../http/blob-http.js';
import type { Transport } from '../http/transport.js';
import { amzDate, kEmptySha256, signOss, signV4 } from './sign.js';

type Signer = (method: string, url: URL, headers: Record<string, string>, now: Date) => Record<string, string>;

function baseUrl(scheme: string, host: string, at: string): URL {
  const s = scheme === '' ? 'https' : scheme;
  try {
    const u = new URL(`${s}://${host}/`);
    if (u.pathname !== '/' || u.search !== '' || u.username !== '') throw new Error('not a plain host');
    return u;
  } catch {
    throw new ConfigError(`${at}.endpoint ${JSON.stringify(host)}: not a host[:port]`);
  }
}

function objectPath(prefix: string, blobId: string): string {
  return `${prefix}${blobId}`.split('/').map(encodeURIComponent).join('/');
}

export class ObjectStorageBackend extends HttpBlobBackend {
  /** Tests: the clock signatures use. */
  now: () => Date = () => new Date();

  private constructor(
    readonly type: 's3' | 'oss',
    transport: Transport,
    private readonly _url: (blobId: string) => URL,
    private readonly _sign: Signer,
  ) {
    super(transport);
  }

  static s3(cfg: S3Config, transport: Transport, at: string): ObjectStorageBackend {
    const base = baseUrl(cfg.scheme, cfg.endpoint, at);
    const bucket = encodeURIComponent(cfg.bucket_name);
    const sign: Signer = (method, url, headers, now) => {
      const h: Record<string, string> = { ...headers, host: url.host, 'x-amz-date': amzDate(now), 'x-amz-content-sha256': kEmptySha256 };
      const { authorization } = signV4({
        method,
        url,
        headers: h,
        payloadHash: kEmptySha256,
        region: cfg.region,
        service: 's3',
        accessKeyId: cfg.access_key_id,
        secretAccessKey: cfg.access_key_secret,
        amzDate: h['x-amz-date'] ?? '',
      });
      return { ...h, authorization };
    };
    return new ObjectStorageBackend('s3', transport, (id) => new URL(`/${bucket}/${objectPath(cfg.object_prefix, id)}`, base), sign);
  }

  static oss(cfg: OssConfig, transport: Transport, at: string): ObjectStorageBackend {
    const base = baseUrl(cfg.scheme, `${cfg.bucket_name}.${cfg.endpoint}`, at);
    const sign: Signer = (method, url, headers, now) => {
      const h: Record<string, string> = { ...headers, date: now.toUTCString() };
      const { authorization } = signOss({
        method,
        date: h['date'] ?? '',
        headers: h,
        resource: `/${cfg.bucket_name}${decodeURIComponent(url.pathname)}`,
        accessKeyId: cfg.access_key_id,
        accessKeySecret: cfg.access_key_secret,
      });
      return { ...h, authorization };
    };
    return new ObjectStorageBackend('oss', transport, (id) => new URL(`/${objectPath(cfg.object_prefix, id)}`, base), sign);
  }

  protected async send(req: BlobRequest): Promise<BlobReply> {
    const url = this._url(req.blobId);
    // The base headers (User-Agent, NYDUS_HEADER_*) go in before signing: S3 signs every header
    // but the user agent, OSS its x-oss-* ones.
    const headers = this._sign(req.method, url, this.transport.headers(req.headers), this.now());
    const res = await this.transport.send({ method: req.method, url, headers, signal: req.signal, maxBody: req.maxBody, onBody: req.onBody }, { mirrorable: true, priority: req.priority });
    return { res, url };
  }
}
