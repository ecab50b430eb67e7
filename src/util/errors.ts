/**
 * Error classes shared by every layer.
 *
 * Every error the program raises on purpose is a NydusError with a stable `code` string (style
 * rule 8): tests and callers match on `code`, never on message text. Each class is branded with
 * `Symbol.for('nydusd.error.<CODE>')` so `instanceof`-like checks survive duplicated module
 * copies.
 */

export interface NydusErrorOptions {
  cause?: unknown;
  /** errno (positive) when the failure maps to one, e.g. for FUSE replies. */
  errno?: number;
}

export class NydusError extends Error {
  readonly code: string;
  readonly errno: number | undefined;

  constructor(code: string, message: string, options: NydusErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'NydusError';
    this.code = code;
    this.errno = options.errno;
    Object.defineProperty(this, Symbol.for(`nydusd.error.${code}`), { value: true });
  }

  static is(err: unknown, code?: string): err is NydusError {
    if (!(err instanceof Error) || typeof (err as { code?: unknown }).code !== 'string') return false;
    return code === undefined || (err as NydusError).code === code;
  }
}

/** Bad command line or configuration: the CLI prints the message and exits with status 2. */
export class UsageError extends NydusError {
  constructor(message: string, options: NydusErrorOptions = {}) {
    super('ERR_USAGE', message, options);
    this.name = 'UsageError';
  }
}

/** A feature that is parsed and recognised but not built yet. */
export class NotSupportedError extends NydusError {
  constructor(what: string) {
    super('ERR_NOT_SUPPORTED', `${what} is not supported yet`);
    this.name = 'NotSupportedError';
  }
}

/** Thrown by the native addon (it receives this class through `initialize()`). */
export class NativeError extends NydusError {
  constructor(message: string, code: string) {
    super(code, message);
    this.name = 'NativeError';
  }
}
