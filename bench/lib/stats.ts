/**
 * Summaries of repeated measurements: median and spread of each side, ratio of the medians and
 * the range of the per-repetition ratios (runs are paired: repetition i of ours ran next to
 * repetition i of the peer, so their ratio cancels slow drifts of a shared machine).
 */

export interface Summary {
  n: number;
  median: number;
  min: number;
  max: number;
  /** Half the range relative to the median (0.05 = ±5%); 0 for a single value. */
  spread: number;
}

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

export function summarize(xs: readonly number[]): Summary {
  const finite = xs.filter((x) => Number.isFinite(x));
  if (finite.length === 0) return { n: 0, median: Number.NaN, min: Number.NaN, max: Number.NaN, spread: Number.NaN };
  const m = median(finite);
  const min = Math.min(...finite);
  const max = Math.max(...finite);
  return { n: finite.length, median: m, min, max, spread: m !== 0 ? (max - min) / 2 / Math.abs(m) : 0 };
}

/** Ratios of paired samples (ours[i] / ref[i]); empty when the counts differ. */
export function pairedRatios(ours: readonly number[], ref: readonly number[]): number[] {
  if (ours.length !== ref.length) return [];
  const out: number[] = [];
  for (let i = 0; i < ours.length; i++) {
    const a = ours[i] as number;
    const b = ref[i] as number;
    if (Number.isFinite(a) && Number.isFinite(b) && b !== 0) out.push(a / b);
  }
  return out;
}
