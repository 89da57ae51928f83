const UNIT_MS = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
const DURATION_RE = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)$/;

/**
 * Parses a duration such as `300s`, `5m`, `1.5h`, `250ms`. A bare number is taken as
 * milliseconds. Returns undefined for anything else, so callers can name the offending key.
 */
export function parseDuration(input: string | number): number | undefined {
  if (typeof input === "number") {
    return Number.isFinite(input) && input >= 0 ? Math.round(input) : undefined;
  }
  const text = input.trim();
  if (/^\d+$/.test(text)) return Number(text);
  const match = DURATION_RE.exec(text);
  if (!match) return undefined;
  const value = Number(match[1]);
  const unit = match[2] as keyof typeof UNIT_MS;
  return Math.round(value * UNIT_MS[unit]);
}
