/**
 * The closed sets of keepalive outcomes. These unions ARE the metric label sets
 * (`keepalive_failure_count{reason}`, skipped ticks) and are listed in docs/keepalive-policy.md;
 * packages/worker/test/policy-doc.test.ts keeps the doc and these arrays in step.
 */
export const FAILURE_REASONS = ["timeout", "connection_error", "http_5xx", "http_4xx", "unauthorized", "session_not_found", "method_not_found", "tool_error", "protocol_error"] as const;
export type FailureReason = (typeof FAILURE_REASONS)[number];

export const SKIP_REASONS = [
  /** The pair's lock is held (a vMCP re-initializing, or another worker). */
  "locked",
  /** The lock nodes could not form a quorum. */
  "lock_unavailable",
  /** The backend's circuit breaker is open. */
  "breaker_open",
  /** Keepalive is off for this pair (method none, stateless, TTL-aligned, or the session expired). */
  "disabled",
  /** The session ended or was reaped; the tick came from a scheduler being removed. */
  "ended",
  /** The pair carried real traffic within its window (the vMCP reported it): that traffic kept the backend session alive. */
  "recent_traffic",
  /**
   * An overdue tick (its time passed during an outage) whose pair's next regular tick comes before
   * its catch-up slot: that regular tick is its catch-up (catch-up spread, docs/keepalive-policy.md).
   */
  "superseded",
  /** The pair's session credentials passed their `expiresAt` (minus the call timeout): no call with them. */
  "credentials_expired",
  /** A key of the worker's ring fails to open the pair's session credentials (altered, or another pair's): the pair is off until new ones arrive. */
  "credentials_undecryptable",
  /**
   * The pair's session credentials name a key id this worker's ring lacks (a key rotation under
   * way): no call, the pair stays on, and a worker that has the key opens them at a later tick.
   */
  "credentials_unknown_key",
  /** A pair of an `auth: session` backend has no credentials: the pair is off until some arrive. */
  "no_credentials",
] as const;
export type SkipReason = (typeof SKIP_REASONS)[number];

/** Why keepalive is off for a pair from the start (status CLI, pair state). */
export const OFF_REASONS = [
  "method_none",
  "stateless_backend",
  "no_backend_session",
  "ttl_covers_session",
  /** An `auth: session` backend's pair without credentials; new credentials turn it on. */
  "no_credentials",
  /** No key of the workers' ring opens its credentials; new credentials turn it on. */
  "credentials_undecryptable",
  /** The backend answered 401/403 to its session credentials; new credentials turn it on. */
  "unauthorized",
] as const;
/** Off reasons that new credentials clear: the pair is kept alive again from its next interval. */
export const CREDENTIAL_OFF_REASONS: readonly OffReason[] = ["no_credentials", "credentials_undecryptable", "unauthorized"];
export type OffReason = (typeof OFF_REASONS)[number];

/** Why a breaker opened (`keepalive_auto_disabled_total{reason}`): the failure reason that tripped it. */
export type AutoDisabledReason = FailureReason;
