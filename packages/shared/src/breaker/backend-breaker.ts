import type { Redis } from "ioredis";
import type { Keys } from "../redis/keys.js";
import { decodePair, outcomeLabel, type KeepaliveOutcome, type PairState, type PairStatus } from "../state/pair-state.js";
import { decodeBackend, type BackendState, type BreakerState, type LearnedMethod } from "./backend-state.js";
import { BEGIN_TICK, BEGIN_TICK_LOCKED, FINISH_TICK, FINISH_TICK_RELEASE, RELEASE_PAIR_LOCK } from "./scripts.js";

export type TickDecision =
  /** Single-node fast path only: another holder has the pair lock (`BeginTickOptions.lock`). */
  | { readonly kind: "locked" }
  /** The pair does not exist (session ended or reaped). */
  | { readonly kind: "no_pair" }
  /** The pair is off or expired, or has no backend session. */
  | { readonly kind: "inactive"; readonly pair: PairState }
  /** The breaker is open (or another tick holds the probe): no backend call. */
  | { readonly kind: "skip_open"; readonly pair: PairState; readonly breaker: BreakerState }
  /**
   * Call the backend. `probe`: this tick holds the backend's single probe. `pingRetry`: this
   * tick holds the ping retry of a backend that learned its tool.
   */
  | {
      readonly kind: "call";
      readonly pair: PairState;
      readonly breaker: BreakerState;
      readonly probe: boolean;
      readonly learnedMethod: LearnedMethod;
      readonly pingRetry: boolean;
    };

export interface BeginTickOptions {
  /** Unique per tick; proves probe ownership in {@link BackendBreaker.finishTick}. */
  readonly token: string;
  /** How long a probe claim lasts before another worker may take it over (≥ the tick's longest run). */
  readonly probeLeaseMs: number;
  /** Next ping retry of a backend on its tool, from now (the probe window, jittered). */
  readonly pingRetryDelayMs: number;
  /** The backend is `tool:<name>` without every-tick: it may switch between ping and the tool. */
  readonly fallback: boolean;
  /**
   * Single-node fast path: take the pair lock in the same script (token = `token`). Held
   * afterwards for `call` and `inactive` decisions; released in the script otherwise.
   */
  readonly lockTtlMs?: number;
}

/** How the tick's outcome counts for the backend's breaker. */
export type BreakerOp =
  /** A backend failure (never session_not_found). */
  | "count"
  /** The backend answered well. */
  | "reset"
  /** No verdict on the backend (session_not_found). */
  | "none";

/** What the tick learned about ping on a `tool:<name>` backend. */
export type MethodOp = "ping_ok" | "ping_failed_tool_ok" | "ping_unsupported";

export interface FinishTickInput {
  readonly pair: Pick<PairState, "sessionId" | "backendId" | "epoch">;
  readonly outcome: KeepaliveOutcome;
  readonly now: number;
  readonly latencyMs?: number;
  readonly pairStatus?: PairStatus;
  readonly breakerOp: BreakerOp;
  readonly failureThreshold: number;
  /** Time from now to the next probe if this tick opens or re-opens the breaker (jittered). */
  readonly probeDelayMs: number;
  /** The token of a tick that holds the probe. */
  readonly probeToken?: string;
  readonly methodOp?: MethodOp;
  /** `fallback.after_failures` (K). */
  readonly afterFailures: number;
  /** Time from now to the next ping retry if this tick switches to the tool (jittered). */
  readonly pingRetryDelayMs: number;
  /** Single-node fast path: release the pair lock held with this token in the same script. */
  readonly releaseLockToken?: string;
}

export type BreakerTransition = "opened" | "closed" | "reopened" | "released";
export type MethodTransition = "to_tool" | "to_ping";

export interface FinishTickResult {
  /** False when the pair moved on (fenced) or is gone; the breaker accounting happened anyway. */
  readonly recorded: boolean;
  readonly why?: "fenced" | "gone";
  /** Set only in the one tick whose write made the transition: that worker logs it. */
  readonly breakerTransition: BreakerTransition | undefined;
  /** Consecutive backend failures after this tick. */
  readonly breakerFailures: number;
  readonly methodTransition: MethodTransition | undefined;
  readonly pingFailures: number;
}

/**
 * Per-backend circuit breaker and learned keepalive method, shared by every worker through
 * Redis (hash `keys.backend(id)`). See docs/keepalive-policy.md for the state machine.
 */
export interface BackendBreaker {
  beginTick(sessionId: string, backendId: string, now: number, options: BeginTickOptions): Promise<TickDecision>;
  finishTick(input: FinishTickInput): Promise<FinishTickResult>;
  /** Releases a pair lock taken by `beginTick` with `lockTtlMs`, if `token` still holds it. */
  releaseLock(sessionId: string, backendId: string, token: string): Promise<void>;
  /** The backend hash, decoded (status, tests; not on the hot path). */
  readBackend(backendId: string): Promise<BackendState>;
}

function flatToRecord(flat: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (!Array.isArray(flat)) return out;
  for (let i = 0; i + 1 < flat.length; i += 2) out[String(flat[i])] = String(flat[i + 1]);
  return out;
}

export function createBackendBreaker(redis: Redis, keys: Keys): BackendBreaker {
  return {
    async beginTick(sessionId, backendId, now, o) {
      const args: (string | number)[] = [now, o.token, Math.round(o.probeLeaseMs), Math.round(o.pingRetryDelayMs), o.fallback ? "1" : "0"];
      const pairKeys = [keys.pair(sessionId, backendId), keys.backend(backendId)];
      const reply = (
        o.lockTtlMs === undefined
          ? await BEGIN_TICK.run(redis, pairKeys, args)
          : await BEGIN_TICK_LOCKED.run(redis, [...pairKeys, keys.pairLock(sessionId, backendId)], [...args, o.token, Math.max(1, Math.round(o.lockTtlMs))])
      ) as [string, string, string, number, unknown];
      const [decision, state, method, pingRetry, flat] = reply;
      if (decision === "locked") return { kind: "locked" };
      const pair = decodePair(flatToRecord(flat));
      if (decision === "no_pair" || !pair) return { kind: "no_pair" };
      if (decision === "inactive") return { kind: "inactive", pair };
      const breaker = (state || "closed") as BreakerState;
      if (decision === "skip_open") return { kind: "skip_open", pair, breaker };
      return {
        kind: "call",
        pair,
        breaker,
        probe: decision === "probe",
        learnedMethod: method === "tool" ? "tool" : "ping",
        pingRetry: Number(pingRetry) === 1,
      };
    },
    async finishTick(i) {
      const o = i.outcome;
      const pairKeys = [keys.pair(i.pair.sessionId, i.pair.backendId), keys.backend(i.pair.backendId)];
      const args: (string | number)[] = [
        i.pair.epoch,
        i.now,
        o.kind,
        o.kind === "success" ? "" : o.reason,
        i.latencyMs === undefined ? "" : Math.round(i.latencyMs),
        outcomeLabel(o),
        i.pairStatus ?? "",
        i.breakerOp,
        i.failureThreshold,
        Math.round(i.probeDelayMs),
        i.probeToken ?? "",
        i.methodOp ?? "",
        i.afterFailures,
        Math.round(i.pingRetryDelayMs),
      ];
      const reply = (
        i.releaseLockToken === undefined
          ? await FINISH_TICK.run(redis, pairKeys, args)
          : await FINISH_TICK_RELEASE.run(redis, [...pairKeys, keys.pairLock(i.pair.sessionId, i.pair.backendId)], [...args, i.releaseLockToken])
      ) as [number, string, number, string, number];
      const [rec, bt, bfails, mt, pf] = reply;
      const recNum = Number(rec);
      return {
        recorded: recNum >= 0,
        ...(recNum === -1 ? { why: "fenced" as const } : recNum === -2 ? { why: "gone" as const } : {}),
        breakerTransition: (bt || undefined) as BreakerTransition | undefined,
        breakerFailures: Number(bfails),
        methodTransition: (mt || undefined) as MethodTransition | undefined,
        pingFailures: Number(pf),
      };
    },
    async releaseLock(sessionId, backendId, token) {
      await RELEASE_PAIR_LOCK.run(redis, [keys.pairLock(sessionId, backendId)], [token]);
    },
    async readBackend(backendId) {
      return decodeBackend(backendId, await redis.hgetall(keys.backend(backendId)));
    },
  };
}

/** `base` stretched by a random 0-10 %: spreads the probes of backends that opened together. */
export function jittered(baseMs: number, random: () => number = Math.random): number {
  return Math.round(baseMs * (1 + 0.1 * random()));
}
