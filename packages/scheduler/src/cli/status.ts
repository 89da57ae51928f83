import type { PairState } from "@vmcp-keepalive/shared";

const iso = (ms: number | undefined) => (ms === undefined ? "-" : new Date(ms).toISOString());

/** Why a pair is (not) kept alive, in words an operator reads. */
export function describePair(p: PairState): string {
  if (p.status === "off") return `off: ${p.offReason ?? "unknown"}`;
  if (p.status === "expired") return "expired: backend session not found (404); vMCP notified";
  return "active";
}

/** A pair's session credentials as the status shows them: present, the key id, the expiry — never the envelope. */
export function describeCredentials(p: PairState): string {
  const c = p.credentials;
  if (!c) return "-";
  return `present, key ${c.keyId}, expires ${c.expiresAt === undefined ? "never" : iso(c.expiresAt)}`;
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
    credentials: p.credentials ? { present: true, keyId: p.credentials.keyId, expiresAt: p.credentials.expiresAt === undefined ? null : iso(p.credentials.expiresAt) } : null,
  }));
}

/** A fixed-width table of pairs for the terminal. */
export function formatStatusTable(pairs: readonly PairState[]): string {
  if (pairs.length === 0) return "no registered pairs";
  const rows = pairs.map((p) => {
    const r = statusRows([p])[0]!;
    return [r.sessionId, r.backendId, r.why, r.lastOutcome ?? "-", r.lastAttemptAt ?? "-", String(r.consecutiveFailures), describeCredentials(p)];
  });
  const head = ["SESSION", "BACKEND", "KEEPALIVE", "LAST OUTCOME", "LAST ATTEMPT", "FAILS", "CREDENTIALS"];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join("  ")
      .trimEnd();
  return [line(head), ...rows.map(line)].join("\n");
}
