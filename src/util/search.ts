/** The first index in [0, count) whose key is >= `value`, or `count` (keys ascending). */
export function lowerBoundBy(count: number, keyAt: (i: number) => number, value: number): number {
  let lo = 0;
  let hi = count;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (keyAt(mid) < value) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
