/**
 * Every Redis key this project writes (besides BullMQ's own, which live under the same prefix).
 * Documented for other-language vMCPs in docs/contract.md; keep the two in step.
 */
export interface Keys {
  readonly prefix: string;
  /** Hash: one vMCP session (sequence, TTLs, state). */
  session(sessionId: string): string;
  /** Set: backend ids registered for a session. */
  sessionBackends(sessionId: string): string;
  /** Sorted set: session id → expiry time (ms); the reaper's index. */
  sessionsByExpiry(): string;
  /** Hash: one session×backend pair (backend session id, protocol version, epoch, last outcome). */
  pair(sessionId: string, backendId: string): string;
  /** Redlock resource of a pair (contract: `<prefix>:lock:<sessionId>:<backendId>`). */
  pairLock(sessionId: string, backendId: string): string;
  /** Short mutex that serializes one session's lifecycle messages across scheduler processes. */
  sessionMutex(sessionId: string): string;
  /**
   * Hash: one backend's shared state — circuit breaker and learned keepalive method. Field
   * `state` is `closed` (or absent), `open`, or `probing`; the worker's breaker module owns the
   * rest (BACKEND_FIELDS; docs/keepalive-policy.md lists them). The metrics gauge reads `state` only.
   */
  backend(backendId: string): string;
}

export function createKeys(prefix: string): Keys {
  return {
    prefix,
    session: (s) => `${prefix}:session:${s}`,
    sessionBackends: (s) => `${prefix}:session:${s}:backends`,
    sessionsByExpiry: () => `${prefix}:sessions`,
    pair: (s, b) => `${prefix}:pair:${s}:${b}`,
    pairLock: (s, b) => `${prefix}:lock:${s}:${b}`,
    sessionMutex: (s) => `${prefix}:smutex:${s}`,
    backend: (b) => `${prefix}:backend:${b}`,
  };
}
