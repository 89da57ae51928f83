import { spawnSync } from "node:child_process";

/** GET a URL; returns status and body text (never throws on HTTP errors; throws on connection errors). */
export async function get(url: string, headers: Record<string, string> = {}, timeoutMs = 5_000): Promise<{ status: number; body: string }> {
  const res = await fetch(url, { headers, signal: AbortSignal.timeout(timeoutMs) });
  return { status: res.status, body: await res.text() };
}

/** `GET /readyz` → true (200), false (503 or unreachable). */
export async function isReady(baseUrl: string): Promise<boolean> {
  try {
    return (await get(`${baseUrl}/readyz`, {}, 3_000)).status === 200;
  } catch {
    return false;
  }
}

/** The five metric names fixed by the user's contract: promtool's suffix lint is ignored for them only. */
export const CONTRACT_METRICS = ["keepalive_attempt_count", "keepalive_success_count", "keepalive_failure_count", "keepalive_latency_ms", "keepalive_auto_disabled_total"];

/**
 * Runs `promtool check metrics` (Debian `prometheus` package) on an exposition. Returns the
 * problems it reports that are NOT suffix lint on a contract name; also the raw output.
 */
export function promtoolProblems(exposition: string): { problems: string[]; raw: string; status: number | null } {
  const r = spawnSync("promtool", ["check", "metrics"], { input: exposition, encoding: "utf8" });
  if (r.error) throw new Error(`promtool could not run (install Debian's prometheus package): ${r.error.message}`);
  const raw = `${r.stdout}${r.stderr}`;
  const lines = raw
    .split("\n")
    .map((l) => l.trim())
    .filter(Boolean);
  const problems = lines.filter((l) => !CONTRACT_METRICS.some((name) => l.startsWith(`${name} `)));
  return { problems, raw, status: r.status };
}

/** Value of one sample in a Prometheus exposition (labels given in any order); undefined when absent. */
export function sample(exposition: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of exposition.split("\n")) {
    if (line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s+(\S+)/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = new Map<string, string>();
    for (const pair of (m[3] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) have.set(pair[1]!, pair[2]!);
    if (Object.entries(labels).every(([k, v]) => have.get(k) === v)) return Number(m[4]);
  }
  return undefined;
}
