/**
 * The error events of GET /api/v1/daemon/events (upstream utils/src/logger.rs ErrorHolder,
 * created with 500 entries and 50 KiB): the most recent error log lines, with totals since start.
 */
export interface ErrorEventsJson {
  max_errors: number;
  total_errors: number;
  max_size: number;
  total_size: number;
  errors: string[];
}

export class ErrorEvents {
  private readonly _errors: string[] = [];
  private _size = 0;
  private _totalErrors = 0;
  private _totalSize = 0;

  constructor(
    readonly maxErrors = 500,
    readonly maxSize = 50 * 1024,
  ) {}

  push(message: string): void {
    const m = message.length > this.maxSize ? message.slice(0, this.maxSize) : message;
    this._totalErrors++;
    this._totalSize += m.length;
    this._errors.push(m);
    this._size += m.length;
    while (this._errors.length > this.maxErrors || this._size > this.maxSize) {
      this._size -= (this._errors.shift() as string).length;
    }
  }

  toJSON(): ErrorEventsJson {
    return { max_errors: this.maxErrors, total_errors: this._totalErrors, max_size: this.maxSize, total_size: this._totalSize, errors: [...this._errors] };
  }
}
