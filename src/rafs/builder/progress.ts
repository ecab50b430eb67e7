/**
 * One-line progress display for long builds on a terminal: files done, bytes read, rate. The
 * CLI only creates it when stderr is a TTY, so pipes and CI logs stay quiet. Redraws at most
 * every 100 ms; `clear()` erases the line (before warnings and at the end).
 */
import type { BuildProgress } from './types.js';

interface TtyLike {
  write(s: string): boolean;
  columns?: number;
}

const kRedrawMs = 100;
const kSpinner = ['|', '/', '-', '\\'];

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${v} B` : `${v.toFixed(1)} ${units[u]!}`;
}

export class ProgressBar {
  private readonly _out: TtyLike;
  private readonly _start = Date.now();
  private _last = 0;
  private _frame = 0;
  private _shown = false;

  constructor(out: TtyLike) {
    this._out = out;
  }

  update(p: BuildProgress): void {
    const now = Date.now();
    if (!p.done && now - this._last < kRedrawMs) return;
    this._last = now;
    const secs = Math.max((now - this._start) / 1000, 0.001);
    const spin = p.done ? '*' : kSpinner[this._frame++ % kSpinner.length]!;
    let line = `${spin} building: ${p.files} files, ${formatBytes(p.bytes)} read, ${formatBytes(p.bytes / secs)}/s, ${secs.toFixed(1)} s`;
    const width = this._out.columns ?? 80;
    if (line.length > width - 1) line = line.slice(0, width - 1);
    this._out.write(`\r${line}\x1b[K`);
    this._shown = true;
  }

  clear(): void {
    if (!this._shown) return;
    this._out.write('\r\x1b[K');
    this._shown = false;
  }
}
