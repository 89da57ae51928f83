/**
 * Field names of the session hash `<shard prefix>:session:<sessionId>` (docs/contract.md), written by
 * the scheduler's scripts; a live session, or the tombstone of an ended one. A live session's
 * registered backends are fields too, `b:<backendId>` with an empty value each
 * (scheduler/lua/includes/session-backends.lua).
 */
export const SESSION_FIELDS = {
  /** `ended` on a tombstone; absent on a live session (bytes per pair). */
  state: "state",
  /** Highest message sequence applied. */
  sequence: "seq",
  /** Sequence of the last applied `session.registered` (a touch may overtake it). */
  registrationSequence: "regSeq",
  sessionTtlMs: "ttl",
  maxLifetimeMs: "maxLife",
  /** First registration (ms): only beside `maxLife`, the bound it serves. */
  createdAt: "createdAt",
  expiresAt: "expiresAt",
  endedAt: "endedAt",
  endReason: "endReason",
  /** Tombstone only: the backend ids the session had (comma-separated), so a redelivered end completes its removals. */
  endedBackends: "backends",
} as const;
