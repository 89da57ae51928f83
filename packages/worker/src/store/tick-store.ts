import type { RedisConnection } from "@vmcp-keepalive/shared";
import { decodePair, outcomeLabel, PAIR_FIELDS, releaseLock, type BreakerState, type Keys, type KeepaliveOutcome, type LearnedMethod, type PairState, type PairStatus } from "@vmcp-keepalive/shared";
import type { BreakerOp, MethodOp } from "../tick/plan.js";
import { Cluster } from "ioredis";
import { BEGIN_BREAKER, BEGIN_PAIR, BEGIN_PAIR_LOCKED, BEGIN_TICK, BEGIN_TICK_LOCKED, FINISH_BREAKER, FINISH_PAIR, FINISH_PAIR_RELEASE, FINISH_TICK, FINISH_TICK_RELEASE } from "./scripts.js";

export type TickStart =
  /** Single-node fast path only: another holder has the pair lock. */
  | { readonly kind: "locked" }
  /** The pair does not exist (session ended or reaped). */
  | { readonly kind: "no_pair" }
  /** The pair is off or expired, or has no backend session. */
  | { readonly kind: "inactive"; readonly pair: PairState }
  /** The pair carried real traffic within the traffic window: that traffic kept it alive. */
  | { readonly kind: "recent_traffic"; readonly pair: PairState }
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

export interface BeginOptions {
  /** Unique per tick; proves probe ownership in {@link TickStore.finish}, and is the lock token on the fast path. */
  readonly token: string;
  /** How long a probe claim lasts before another worker may take it over (≥ the tick's longest run). */
  readonly probeLeaseMs: number;
  /** Next ping retry of a backend on its tool, from now (the probe window, jittered). */
  readonly pingRetryDelayMs: number;
  /** The backend is `tool:<name>` without every-tick: it may switch between ping and the tool. */
  readonly fallback: boolean;
  /** A pair that carried traffic less than this long ago is skipped (`recent_traffic`). @defaultValue 0 (never) */
  readonly trafficWindowMs?: number;
  /**
   * Single-node fast path: take the pair lock in the same script. Held afterwards for `call` and
   * `inactive`; released in the script otherwise.
   */
  readonly lockTtlMs?: number;
}

/** The breaker and method accounting of a finished tick: the plan's operations and the policy's numbers. */
export interface FinishAccounting {
  readonly breakerOp: BreakerOp;
  /** `breaker.failure_threshold`. */
  readonly failureThreshold: number;
  /** `breaker.min_failure_span`: the consecutive failures must also span this long to open the breaker. */
  readonly minFailureSpanMs: number;
  /** Time from now to the next probe if this tick opens or re-opens the breaker (jittered). */
  readonly probeDelayMs: number;
  /** The token of a tick that holds the probe. */
  readonly probeToken?: string;
  readonly methodOp?: MethodOp;
  /** `fallback.after_failures` (K). */
  readonly afterFailures: number;
  /** Time from now to the next ping retry if this tick switches to the tool (jittered). */
  readonly pingRetryDelayMs: number;
}

/** The finish record (ARGV[1] of lua/finish-tick-2.lua, as JSON): names, not positions. */
export interface FinishRecord extends FinishAccounting {
  /** The pair epoch read under the lock: the fence. */
  readonly epoch: number;
  readonly now: number;
  /** `skipped`: only on the split path, a tick whose pair half started and whose breaker said skip. */
  readonly kind: "success" | "failure" | "skipped";
  readonly reason?: string;
  /** The pair's `last` field (`success`, `failure:timeout`). */
  readonly label: string;
  readonly latencyMs?: number;
  readonly pairStatus?: PairStatus;
}

export interface FinishInput extends FinishAccounting {
  readonly pair: Pick<PairState, "sessionId" | "backendId" | "epoch">;
  readonly outcome: Exclude<KeepaliveOutcome, { kind: "skipped" }>;
  readonly now: number;
  readonly latencyMs?: number;
  readonly pairStatus?: PairStatus;
  /** Single-node fast path: release the pair lock held with this token in the same script. */
  readonly releaseLockToken?: string;
}

export type BreakerTransition = "opened" | "closed" | "reopened" | "released";
export type MethodTransition = "to_tool" | "to_ping";

export interface FinishResult {
  /** False when the pair moved on (fenced) or is gone; the breaker accounting happened anyway. */
  readonly recorded: boolean;
  readonly why?: "fenced" | "gone";
  /** Set only in the one tick whose write made the transition: that worker logs it. */
  readonly breakerTransition: BreakerTransition | undefined;
  /** Consecutive backend failures after this tick. */
  readonly breakerFailures: number;
  readonly methodTransition: MethodTransition | undefined;
}

/**
 * The Redis side of one keepalive tick: `begin` reads the pair and decides against the backend's
 * breaker (claiming the probe or the ping retry when due), `finish` records the outcome fenced on
 * the pair epoch and does the breaker and method accounting — one script each, shared by every
 * worker (backend hash `keys.backend(id)`; docs/keepalive-policy.md has the state machine).
 */
export interface TickStore {
  begin(sessionId: string, backendId: string, now: number, options: BeginOptions): Promise<TickStart>;
  finish(input: FinishInput): Promise<FinishResult>;
  /** Releases a pair lock taken by `begin` with `lockTtlMs`, if `token` still holds it. */
  releaseLock(sessionId: string, backendId: string, token: string): Promise<void>;
  /** The pair's last sign of life (ms): the latest of its last success, last reported traffic and registration; 0 when none or no pair. */
  aliveAt(sessionId: string, backendId: string): Promise<number>;
}

function flatToRecord(flat: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (!Array.isArray(flat)) return out;
  for (let i = 0; i + 1 < flat.length; i += 2) out[String(flat[i])] = String(flat[i + 1]);
  return out;
}

export interface TickStoreOptions {
  /**
   * Run each step as its pair half and its backend half (four scripts a tick instead of two), so
   * that no script crosses hash slots. @defaultValue true on a Redis Cluster, else false
   */
  readonly split?: boolean;
}

type BeginReply = [string, string, string, number, unknown];

export function createTickStore(redis: RedisConnection, keys: Keys, options: TickStoreOptions = {}): TickStore {
  const split = options.split ?? redis instanceof Cluster;

  /** The combined start: one script over the pair (and its lock) and the backend. */
  const beginTogether = async (sessionId: string, backendId: string, now: number, o: BeginOptions): Promise<BeginReply> => {
    const args: (string | number)[] = [now, o.token, Math.round(o.probeLeaseMs), Math.round(o.pingRetryDelayMs), o.fallback ? "1" : "0", Math.max(0, Math.round(o.trafficWindowMs ?? 0))];
    const pairKeys = [keys.pair(sessionId, backendId), keys.backend(backendId)];
    return (
      o.lockTtlMs === undefined
        ? await BEGIN_TICK.run(redis, pairKeys, args)
        : await BEGIN_TICK_LOCKED.run(redis, [...pairKeys, keys.pairLock(sessionId, backendId)], [...args, Math.max(1, Math.round(o.lockTtlMs))])
    ) as BeginReply;
  };

  /** The split start: the pair half (with its lock), then — when it says go — the backend half. */
  const beginSplit = async (sessionId: string, backendId: string, now: number, o: BeginOptions): Promise<BeginReply> => {
    const pairArgs = [now, Math.max(0, Math.round(o.trafficWindowMs ?? 0))];
    const pk = keys.pair(sessionId, backendId);
    const [decision, flat] = (
      o.lockTtlMs === undefined
        ? await BEGIN_PAIR.run(redis, [pk], pairArgs)
        : await BEGIN_PAIR_LOCKED.run(redis, [pk, keys.pairLock(sessionId, backendId)], [...pairArgs, o.token, Math.max(1, Math.round(o.lockTtlMs))])
    ) as [string, unknown];
    if (decision !== "go") return [decision, "", "", 0, flat];
    const breaker = (await BEGIN_BREAKER.run(redis, [keys.backend(backendId)], [now, o.token, Math.round(o.probeLeaseMs), Math.round(o.pingRetryDelayMs), o.fallback ? "1" : "0"])) as [
      string,
      string,
      string,
      number,
    ];
    if (breaker[0] === "skip_open") {
      // Record the skip on the pair (and release its lock), as the combined start does in its script.
      const pair = decodePair(flatToRecord(flat), sessionId, backendId);
      const record = { epoch: pair?.epoch ?? 0, now, kind: "skipped", label: "skipped:breaker_open" };
      if (o.lockTtlMs === undefined) await FINISH_PAIR.run(redis, [pk], [JSON.stringify(record)]);
      else await FINISH_PAIR_RELEASE.run(redis, [pk, keys.pairLock(sessionId, backendId)], [JSON.stringify(record), o.token]);
    }
    return [...breaker, flat];
  };

  /** The split finish: the pair half (releasing its lock), then the backend half. */
  const finishSplit = async (sessionId: string, backendId: string, json: string, releaseLockToken: string | undefined): Promise<[number, string, number, string]> => {
    const pk = keys.pair(sessionId, backendId);
    const rec = releaseLockToken === undefined ? await FINISH_PAIR.run(redis, [pk], [json]) : await FINISH_PAIR_RELEASE.run(redis, [pk, keys.pairLock(sessionId, backendId)], [json, releaseLockToken]);
    const [bt, bfails, mt] = (await FINISH_BREAKER.run(redis, [keys.backend(backendId)], [json])) as [string, number, string];
    return [Number(rec), bt, bfails, mt];
  };

  return {
    async begin(sessionId, backendId, now, o) {
      const reply = split ? await beginSplit(sessionId, backendId, now, o) : await beginTogether(sessionId, backendId, now, o);
      const [decision, state, method, pingRetry, flat] = reply;
      if (decision === "locked") return { kind: "locked" };
      const pair = decodePair(flatToRecord(flat), sessionId, backendId);
      if (decision === "no_pair" || !pair) return { kind: "no_pair" };
      if (decision === "inactive") return { kind: "inactive", pair };
      if (decision === "recent_traffic") return { kind: "recent_traffic", pair };
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
    async finish(i) {
      const { pair, outcome: o, releaseLockToken, latencyMs, ...accounting } = i;
      const record: FinishRecord = {
        ...accounting,
        epoch: pair.epoch,
        kind: o.kind,
        ...(o.kind === "failure" ? { reason: o.reason } : {}),
        label: outcomeLabel(o),
        ...(latencyMs === undefined ? {} : { latencyMs: Math.round(latencyMs) }),
        probeDelayMs: Math.round(i.probeDelayMs),
        pingRetryDelayMs: Math.round(i.pingRetryDelayMs),
      };
      const pairKeys = [keys.pair(pair.sessionId, pair.backendId), keys.backend(pair.backendId)];
      const json = JSON.stringify(record);
      const reply = split
        ? await finishSplit(pair.sessionId, pair.backendId, json, releaseLockToken)
        : ((releaseLockToken === undefined
            ? await FINISH_TICK.run(redis, pairKeys, [json])
            : await FINISH_TICK_RELEASE.run(redis, [...pairKeys, keys.pairLock(pair.sessionId, pair.backendId)], [json, releaseLockToken])) as [number, string, number, string]);
      const [rec, bt, bfails, mt] = reply;
      const recNum = Number(rec);
      return {
        recorded: recNum >= 0,
        ...(recNum === -1 ? { why: "fenced" as const } : recNum === -2 ? { why: "gone" as const } : {}),
        breakerTransition: (bt || undefined) as BreakerTransition | undefined,
        breakerFailures: Number(bfails),
        methodTransition: (mt || undefined) as MethodTransition | undefined,
      };
    },
    async releaseLock(sessionId, backendId, token) {
      await releaseLock(redis, keys.pairLock(sessionId, backendId), token);
    },
    async aliveAt(sessionId, backendId) {
      const F = PAIR_FIELDS;
      const times = await redis.hmget(keys.pair(sessionId, backendId), F.lastSuccessAt, F.lastTrafficAt, F.registeredAt);
      return Math.max(0, ...times.map((t) => Number(t ?? 0) || 0));
    },
  };
}

/** `base` stretched by a random 0-10 %: spreads the probes of backends that opened together. */
export function jittered(baseMs: number, random: () => number = Math.random): number {
  return Math.round(baseMs * (1 + 0.1 * random()));
}
