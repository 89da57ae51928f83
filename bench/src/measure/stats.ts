/** Percentile (nearest rank) of unsorted samples; NaN when there are none. */
export function percentile(samples: readonly number[], p: number): number {
  if (samples.length === 0) return NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank]!;
}

export interface Flatness {
  /** Events in the busiest whole second of the window. */
  readonly busiestSecond: number;
  /** Mean events per second over the window. */
  readonly meanPerSecond: number;
  /** busiest ÷ mean: 1.0 is perfectly flat. */
  readonly ratio: number;
  readonly seconds: number;
  /** Events in each whole second of the window (the shape behind the ratio). */
  readonly perSecond: readonly number[];
}

/**
 * Busiest second over mean second of event times (ms) inside [from, to). The window is cut into
 * whole seconds from `from`; a trailing partial second is dropped so it cannot look quiet.
 */
export function flatness(times: readonly number[], from: number, to: number): Flatness {
  const seconds = Math.max(1, Math.floor((to - from) / 1000));
  const buckets = new Array<number>(seconds).fill(0);
  for (const t of times) {
    const i = Math.floor((t - from) / 1000);
    if (i >= 0 && i < seconds) buckets[i]!++;
  }
  const total = buckets.reduce((a, b) => a + b, 0);
  const mean = total / seconds;
  const busiest = Math.max(...buckets);
  return { busiestSecond: busiest, meanPerSecond: mean, ratio: mean > 0 ? busiest / mean : NaN, seconds, perSecond: buckets };
}

export const round = (v: number, digits = 2): number => (Number.isFinite(v) ? Math.round(v * 10 ** digits) / 10 ** digits : v);
