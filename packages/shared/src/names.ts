/**
 * Names fixed by the external contract (docs/contract.md). Other programs — vMCP replicas in
 * any language, dashboards, runbooks — depend on these exact strings.
 */
export const QUEUE_SESSIONS = "vmcp-sessions";
export const QUEUE_KEEPALIVE = "keepalive";
export const QUEUE_EVENTS = "vmcp-events";

/** Job name of every keepalive tick produced by a pair's job scheduler. */
export const KEEPALIVE_JOB_NAME = "keepalive";

/**
 * Session and backend ids end up inside Redis keys, BullMQ job-scheduler ids and log lines.
 * Restricting them to this alphabet (no `:`, `{`, `}`, spaces or control characters) keeps every
 * key unambiguous to parse and every hash tag intact.
 */
export const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
export const ID_RULE = "1-128 characters of A-Z a-z 0-9 . _ -, starting with a letter or digit";

/** Job-scheduler id of one session×backend pair: `ka:<sessionId>:<backendId>`. */
export function schedulerId(sessionId: string, backendId: string): string {
  return `ka:${sessionId}:${backendId}`;
}

/** Inverse of {@link schedulerId}; undefined for anything that is not a pair scheduler id of valid ids. */
export function parseSchedulerId(id: string): { sessionId: string; backendId: string } | undefined {
  const [ka, sessionId, backendId, ...rest] = id.split(":");
  if (ka !== "ka" || rest.length > 0 || !sessionId || !backendId || !ID_PATTERN.test(sessionId) || !ID_PATTERN.test(backendId)) return undefined;
  return { sessionId, backendId };
}
