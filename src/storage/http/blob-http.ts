/**
 * What every HTTP backend shares on top of its own request building: HEAD for the size, ranged
 * GET for data, both checked by range.ts, and the sizes seen so far per blob, so a server whose
 * answers contradict each other (HEAD says one size, Content-Range another; a read past the size
 * it reported) fails the read instead of feeding the cache.
 */
import type { RawBackend, ReadOptions, ReadPriority } from '../contract/raw-backend.js';
import { StorageError } from '../contract/errors.js';
import type { HttpRequest, HttpResponse } from './client.js';
import { header } from './client.js';
import { checkRangeBody, parseContentRange, rangeHeader, rangeHeadMatches, sizeFromHead } from './range.js';
import type { Transport } from './transport.js';
import { displayUrl } from './url.js';

export interface BlobRequest {
  method: 'GET' | 'HEAD';
  blobId: string;
  /** Range and the like; the backend adds its own (auth, signatures, base headers). */
  headers: Record<string, string>;
  signal: AbortSignal | undefined;
  maxBody: number;
  priority: ReadPriority;
  /** Passed on to the HttpRequest that carries the data (see HttpRequest.onBody). */
  onBody?: HttpRequest['onBody'];
}

export interface BlobReply {
  res: HttpResponse;
  /** The URL that answered (after redirects), for messages. */
  url: URL;
}

export abstract class HttpBlobBackend implements RawBackend {
  abstract readonly type: string;
  private readonly _sizes = new Map<string, number>();

  constructor(protected readonly transport: Transport) {}

  /** Sends one request for a blob (following the backend's redirect and auth rules). */
  protected abstract send(req: BlobRequest): Promise<BlobReply>;

  get connectionsOpened(): number {
    return this.transport.connectionsOpened;
  }

  private _remember(blobId: string, size: number, from: string): void {
    const known = this._sizes.get(blobId);
    if (known !== undefined && known !== size) {
      throw new StorageError('ERR_BACKEND', `blob ${blobId}: ${from}: the server now says the blob has ${size} bytes, it said ${known} before`);
    }
    this._sizes.set(blobId, size);
  }

  async size(blobId: string, signal?: AbortSignal): Promise<number> {
    const { res, url } = await this.send({ method: 'HEAD', blobId, headers: {}, signal, maxBody: 0, priority: 'ondemand' });
    const what = `HEAD ${displayUrl(url)}`;
    const n = sizeFromHead(what, res, blobId);
    this._remember(blobId, n, what);
    return n;
  }

  async tryRead(blobId: string, offset: number, length: number, signal?: AbortSignal, opts: ReadOptions = {}): Promise<Buffer> {
    const known = this._sizes.get(blobId);
    if (known !== undefined && offset + length > known) {
      throw new StorageError('ERR_BLOB_SHORT', `blob ${blobId}: range offset ${offset} length ${length} is beyond the blob's ${known} bytes`);
    }
    if (length === 0) return Buffer.alloc(0);
    const progress = opts.onProgress;
    let streaming: boolean | undefined;
    // Bytes are passed on early only from a reply whose head says they are the range asked for.
    const onBody: HttpRequest['onBody'] = progress
      ? (head, buf, received) => {
          streaming ??= buf.length === length && rangeHeadMatches(head, offset, length, known);
          if (streaming) progress(buf, received);
        }
      : undefined;
    const { res, url } = await this.send({
      method: 'GET',
      blobId,
      headers: { Range: rangeHeader(offset, length) },
      signal,
      maxBody: length,
      priority: opts.priority ?? 'ondemand',
      ...(onBody ? { onBody } : {}),
    });
    const what = `GET ${displayUrl(url)}`;
    const body = checkRangeBody(what, res, blobId, offset, length, known);
    const total = res.status === 206 ? parseContentRange(header(res, 'content-range'))?.total : length;
    if (total !== undefined) this._remember(blobId, total, what);
    return body;
  }

  close(): Promise<void> {
    return this.transport.close();
  }
}
