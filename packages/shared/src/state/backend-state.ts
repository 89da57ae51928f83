import type { RedisConnection } from "../redis/connection.js";
import type { Keys } from "../redis/keys.js";
import type { FailureReason } from "../errors/reasons.js";

/**
 * Circuit-breaker state of one backend, field `state` of the backend hash. Absent means
 * `closed`. Other programs (the metrics gauge) read this field and only this field.
 */
export type BreakerState = "closed" | "open" | "probing";

/** The keepalive call a `tool:<name>` backend has learned to make (absent ⇒ ping). */
export type LearnedMethod = "ping" | "tool";

/** Why a backend switched to its tool. */
export type SwitchReason = "method_not_found" | "ping_failures";

/**
 * Field names of the backend hash `<prefix>:backend:<backendId>` (docs/keepalive-policy.md).
 * Shared by every worker in the cluster; written only by the worker's tick scripts (packages/worker/lua/).
 */
export const BACKEND_FIELDS = {
  /** `closed` (or absent) | `open` | `probing`. */
  state: "state",
  /** Consecutive backend failures while closed (all sessions, all workers). */
  consecutiveFailures: "fails",
  /** When the current run of consecutive failures began (ms); absent while there is none. */
  failingSince: "failSince",
  /** The failure reason that opened the breaker (or re-opened it after a failed probe). */
  openReason: "reason",
  /** When the breaker opened (ms since epoch). */
  openedAt: "openedAt",
  /** When the next probe is due (ms since epoch, jittered). */
  probeAt: "probeAt",
  /** Claim token of the tick that holds the probe. */
  probeToken: "probeToken",
  /** Lease end of that claim: a worker that died mid-probe hands it on after this time. */
  probeUntil: "probeUntil",
  /** Learned keepalive call of a `tool:<name>` backend: `tool`, or absent for ping. */
  method: "method",
  /** When the switch to the tool was learned. */
  methodAt: "methodAt",
  /** Why it switched: `method_not_found` (-32601) or `ping_failures` (K ping failures, tool working). */
  methodReason: "methodReason",
  /** Consecutive ping failures while the tool call worked (counts toward `fallback.after_failures`). */
  pingFailures: "pingFails",
  /** When ping is next retried on a backend that switched to its tool (the probe window). */
  pingRetryAt: "pingRetryAt",
} as const;

export interface BackendState {
  readonly backendId: string;
  readonly state: BreakerState;
  readonly consecutiveFailures: number;
  readonly failingSince: number | undefined;
  readonly openReason: FailureReason | undefined;
  readonly openedAt: number | undefined;
  readonly probeAt: number | undefined;
  readonly method: LearnedMethod;
  readonly methodAt: number | undefined;
  readonly methodReason: SwitchReason | undefined;
  readonly pingFailures: number;
  readonly pingRetryAt: number | undefined;
}

const num = (v: string | undefined): number | undefined => (v === undefined || v === "" ? undefined : Number(v));

/** Decodes an HGETALL of the backend hash (an empty hash is a closed breaker that learned nothing). */
export function decodeBackend(backendId: string, hash: Record<string, string>): BackendState {
  const F = BACKEND_FIELDS;
  const state = hash[F.state];
  return {
    backendId,
    state: state === "open" || state === "probing" ? state : "closed",
    consecutiveFailures: num(hash[F.consecutiveFailures]) ?? 0,
    failingSince: num(hash[F.failingSince]),
    openReason: (hash[F.openReason] || undefined) as FailureReason | undefined,
    openedAt: num(hash[F.openedAt]),
    probeAt: num(hash[F.probeAt]),
    method: hash[F.method] === "tool" ? "tool" : "ping",
    methodAt: num(hash[F.methodAt]),
    methodReason: (hash[F.methodReason] || undefined) as SwitchReason | undefined,
    pingFailures: num(hash[F.pingFailures]) ?? 0,
    pingRetryAt: num(hash[F.pingRetryAt]),
  };
}

/** Reads one backend's shared state (status CLI, tests; not on the keepalive path). */
export async function readBackendState(redis: RedisConnection, keys: Keys, backendId: string): Promise<BackendState> {
  return decodeBackend(backendId, await redis.hgetall(keys.backend(backendId)));
}
