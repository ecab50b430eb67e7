/**
 * Request routing as upstream's HTTP handler (api/src/http_handler.rs): the path must match a
 * route exactly (no prefixes, no trailing-slash tolerance) or the answer is 404 NoRoute; a
 * method the route does not have, or a body where the endpoint takes none (and the other way
 * round), is 400 BadRequest. An empty body (no Content-Length, or 0) counts as none.
 */
import { badRequest, noRoute } from './errors.js';

export type Method = 'GET' | 'PUT' | 'POST' | 'DELETE' | 'PATCH';

export interface ApiRequest {
  method: string;
  path: string;
  /** Form-decoded query (`%XX` and `+`); get() returns the first value, as upstream. */
  query: URLSearchParams;
  /** Undefined when the request has no body. */
  body: Buffer | undefined;
}

export interface ApiReply {
  status: number;
  /** JSON-serialized into the body (200). */
  json?: unknown;
  /** A body that is not JSON (Prometheus text). */
  text?: string;
  contentType?: string;
}

export type Handler = (req: ApiRequest) => ApiReply | Promise<ApiReply>;

interface Endpoint {
  handler: Handler;
  body: 'none' | 'required';
}

export const kNoContent: ApiReply = { status: 204 };
export const ok = (json: unknown): ApiReply => ({ status: 200, json });

export class Router {
  private readonly _routes = new Map<string, Map<string, Endpoint>>();

  add(path: string, method: Method, body: 'none' | 'required', handler: Handler): this {
    let m = this._routes.get(path);
    if (!m) this._routes.set(path, (m = new Map<string, Endpoint>()));
    m.set(method, { handler, body });
    return this;
  }

  get paths(): string[] {
    return [...this._routes.keys()];
  }

  /** The handler's reply; throws ApiError for routing failures (and lets handler errors through). */
  async dispatch(req: ApiRequest): Promise<ApiReply> {
    const m = this._routes.get(req.path);
    if (!m) throw noRoute();
    const ep = m.get(req.method);
    if (!ep) throw badRequest();
    if ((ep.body === 'required') !== (req.body !== undefined)) throw badRequest();
    return ep.handler(req);
  }
}
