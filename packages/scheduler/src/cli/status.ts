import type { PairState } from "@vmcp-keepalive/shared";

const iso = (ms: number | undefined) => (ms === undefined ? "-" : new Date(ms).toISOString());

/** Why a pair is (not) kept alive, in words an operator reads. */
export function describePair(p: PairState): string {
  if (p.status === "off") return `off: ${p.offReason ?? "unknown"}`;
  if (p.status === "expired") return "expired: backend session not found (404); vMCP notified";
  return "active";
}

export function statusRows(pairs: readonly PairState[]) {
  return pairs.map((p) => ({
    sessionId: p.sessionId,
    backendId: p.backendId,
    status: p.status,
    why: describePair(p),
    epoch: p.epoch,
    lastOutcome: p.lastOutcome ?? null,
    lastAttemptAt: p.lastAttemptAt === undefined ? null : iso(p.lastAttemptAt),
    lastSuccessAt: p.lastSuccessAt === undefined ? null : iso(p.lastSuccessAt),
    lastFailureReason: p.lastFailureReason ?? null,
    consecutiveFailures: p.consecutiveFailures,
  }));
}

/** A fixed-width table of pairs for the terminal. */
export function formatStatusTable(pairs: readonly PairState[]): string {
  if (pairs.length === 0) return "no registered pairs";
  const rows = statusRows(pairs).map((r) => [r.sessionId, r.backendId, r.why, r.lastOutcome ?? "-", r.lastAttemptAt ?? "-", String(r.consecutiveFailures)]);
  const head = ["SESSION", "BACKEND", "KEEPALIVE", "LAST OUTCOME", "LAST ATTEMPT", "FAILS"];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join("  ")
      .trimEnd();
  return [line(head), ...rows.map(line)].join("\n");
}
