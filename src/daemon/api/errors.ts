/**
 * API errors in upstream nydusd's form (api/src/http.rs, reference/clients.md §3.2): the body is
 * always `{"code": "UNDEFINED", "message": "<Rust Debug of the error>"}`; clients show the
 * message, some match parts of it (`Pattern(Metrics(Stats(NoCounter)))`, `blob_cache: cache
 * entry not found`), none read the code. Where upstream's message carries a reason, ours carries
 * a clear one naming the problem, in the same nesting.
 */
import { ConfigError } from '../../config/index.js';
import { NotSupportedError, NydusError, UsageError } from '../../util/errors.js';
import { MountError } from '../mount-kinds.js';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }

  get body(): { code: string; message: string } {
    return { code: 'UNDEFINED', message: this.message };
  }
}

/** A string as Rust's Debug prints it: quoted, with quotes, backslashes and controls escaped. */
export function debugString(s: string): string {
  let out = '"';
  for (const ch of s) {
    const c = ch.codePointAt(0) ?? 0;
    if (ch === '"') out += '\\"';
    else if (ch === '\\') out += '\\\\';
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if (c < 0x20 || c === 0x7f) out += `\\u{${c.toString(16)}}`;
    else out += ch;
  }
  return `${out}"`;
}

export const noRoute = (): ApiError => new ApiError(404, 'NoRoute');
export const badRequest = (): ApiError => new ApiError(400, 'BadRequest');
export const queryString = (what: string): ApiError => new ApiError(400, `QueryString(${debugString(what)})`);
export const parseBody = (what: string): ApiError => new ApiError(400, `ParseBody(Error(${debugString(what)}))`);

/** `Metrics(Stats(NoCounter))` under the endpoint's wrapper: 404, as upstream. */
export const noCounter = (wrapper: string): ApiError => new ApiError(404, `${wrapper}(Metrics(Stats(NoCounter)))`);

/** A daemon-state event that is not valid now (upstream DaemonAbnormal(UnexpectedEvent)): 400. */
export const unexpectedEvent = (wrapper: string, event: string): ApiError =>
  new ApiError(400, `${wrapper}(DaemonAbnormal(UnexpectedEvent(${debugString(event)})))`);

/** A feature this daemon does not have: 501, naming it. */
export const unsupported = (wrapper: string, inner: string, what: string): ApiError =>
  new ApiError(501, `${wrapper}(${inner}(Unsupported(${debugString(what)})))`);

/**
 * A failure of a mount-table operation (POST/PUT/DELETE /api/v1/mount), as upstream's
 * `Mount(MountFilesystem(...))`: 501 for features not built, 500 for everything else (upstream
 * answers bad configurations and bootstraps with 500 too).
 */
export function mountFailure(err: unknown): ApiError {
  if (err instanceof NotSupportedError) return unsupported('Mount', 'MountFilesystem', err.message);
  if (err instanceof MountError || err instanceof ConfigError || err instanceof UsageError || NydusError.is(err)) {
    return new ApiError(500, `Mount(MountFilesystem(Other(${debugString((err as Error).message)})))`);
  }
  return new ApiError(500, `Mount(MountFilesystem(Other(${debugString(`internal error: ${err instanceof Error ? err.message : String(err)}`)})))`);
}
