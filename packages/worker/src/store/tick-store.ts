import {
  decodePair,
  outcomeLabel,
  PAIR_FIELDS,
  type BreakerState,
  type Keys,
  type KeepaliveOutcome,
  type LearnedMethod,
  type PairState,
  type PairStatus,
  type OffReason,
  type RedisConnection,
  type SkipReason,
} from "@vmcp-keepalive/shared";
import type { BreakerOp, MethodOp } from "../tick/plan.js";
import { Cluster } from "ioredis";
import { BEGIN_BREAKER, BEGIN_PAIR, BEGIN_TICK, FINISH_BREAKER, FINISH_PAIR, FINISH_TICK } from "./scripts.js";

/** The skips a tick's start can decide: the skip reasons of the metrics and events, as the scripts name them. */
export type StartSkip = Extract<SkipReason, "locked" | "ended" | "disabled" | "credentials_expired" | "recent_traffic" | "breaker_open">;

/** A credentials notice the tick's start claimed (once per credentials): the worker publishes its event. */
export interface CredentialsNotice {
  readonly kind: "expiring" | "expired";
  /** When the credentials expire (ms). */
  readonly expiresAt: number;
}

/** What a tick's start decided, read from Redis in one script (two on a Cluster). */
export type TickStart =
  /**
   * No backend call: `locked` (another holder has the pair lock), `ended` (no pair: session ended
   * or reaped), `disabled` (pair off or expired, or no backend session), `recent_traffic` (real
   * traffic within the window kept it alive), `breaker_open` (breaker open, or another tick holds
   * the probe), `credentials_expired` (the pair's session credentials expire before a call would end).
   */
  | { readonly kind: "skip"; readonly reason: StartSkip; readonly lockHeld: boolean; readonly notice?: CredentialsNotice }
  /**
   * Call the backend. `probe`: this tick holds the backend's single probe. `pingRetry`: this
   * tick holds the ping retry of a backend that learned its tool.
   */
  | {
      readonly kind: "call";
      readonly lockHeld: boolean;
      readonly pair: PairState;
      readonly breaker: BreakerState;
      readonly probe: boolean;
      readonly learnedMethod: LearnedMethod;
      readonly pingRetry: boolean;
      readonly notice?: CredentialsNotice;
    };

export interface BeginOptions {
  /** Unique per tick: the pair lock's token, and the proof of probe ownership in {@link TickStore.finish}. */
  readonly token: string;
  /** TTL the script takes the pair lock with; 0 when the lock is held outside the scripts (Redlock). */
  readonly lockTtlMs: number;
  /** How long a probe claim lasts before another worker may take it over (≥ the tick's longest run). */
  readonly probeLeaseMs: number;
  /** Next ping retry of a backend on its tool, from now (the probe window, jittered). */
  readonly pingRetryDelayMs: number;
  /** The backend is `tool:<name>` without every-tick: it may switch between ping and the tool. */
  readonly fallback: boolean;
  /** A pair that carried traffic less than this long ago is skipped (`recent_traffic`). @defaultValue 0 (never) */
  readonly trafficWindowMs?: number;
  /**
   * For an `auth: session` backend, the call timeout: credentials expiring within it are not used
   * (`credentials_expired`). Absent for other backends (their pairs' credentials are not checked).
   */
  readonly credentialsMarginMs?: number;
  /** `credentials.refresh_before`: the `expiring` notice this long before expiry. @defaultValue 0 (none) */
  readonly refreshBeforeMs?: number;
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

/** The finish record (ARGV[1] of lua/finish-tick-3.lua, as JSON): names, not positions. */
export interface FinishRecord extends FinishAccounting {
  /** The pair epoch read under the lock: the fence. */
  readonly epoch: number;
  readonly now: number;
  /** `skipped`: only in the split store, a tick whose pair half started and whose breaker said skip. */
  readonly kind: "success" | "failure" | "skipped";
  readonly reason?: string;
  /** The pair's `last` field (`success`, `failure:timeout`). */
  readonly label: string;
  readonly latencyMs?: number;
  readonly pairStatus?: PairStatus;
  readonly stop?: PairStop;
}

/** Keepalive off for the pair's credentials, unless newer ones came (fenced on their message sequence; -1: none were stored). */
export interface PairStop {
  readonly off: Extract<OffReason, "no_credentials" | "credentials_undecryptable" | "unauthorized">;
  readonly credSeq: number;
}

export interface FinishInput extends FinishAccounting {
  readonly pair: Pick<PairState, "sessionId" | "backendId" | "epoch">;
  /** `skipped`: a tick that made no call and stops the pair (`stop`), e.g. credentials no key opens. */
  readonly outcome: KeepaliveOutcome;
  readonly now: number;
  readonly latencyMs?: number;
  readonly pairStatus?: PairStatus;
  readonly stop?: PairStop;
  /** The tick's token: the script releases the pair lock if this token still holds it. */
  readonly token?: string;
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
  /** The script's pair lock stays held: the pair was stopped and its job scheduler is still to be removed. */
  readonly lockHeld: boolean;
  /** This write stopped the pair (expired, or off for its credentials): its job scheduler goes. */
  readonly stopped: boolean;
}

/**
 * The Redis side of one keepalive tick: `begin` takes the pair lock (when the scripts hold it),
 * reads the pair and decides against the backend's breaker (claiming the probe or the ping retry
 * when due); `finish` records the outcome fenced on the pair epoch, does the breaker and method
 * accounting and releases the lock — one script each where the pair and its backend share a
 * node ({@link combinedTickStore}), a pair half and a backend half each on a Redis Cluster
 * ({@link splitTickStore}). docs/keepalive-policy.md has the state machine.
 */
export interface TickStore {
  begin(sessionId: string, backendId: string, now: number, options: BeginOptions): Promise<TickStart>;
  finish(input: FinishInput): Promise<FinishResult>;
  /** The pair's last sign of life (ms): the latest of its last success, last reported traffic and registration; 0 when none or no pair. */
  aliveAt(sessionId: string, backendId: string): Promise<number>;
}

function flatToRecord(flat: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (!Array.isArray(flat)) return out;
  for (let i = 0; i + 1 < flat.length; i += 2) out[String(flat[i])] = String(flat[i + 1]);
  return out;
}

/** A duration as the scripts take it: whole milliseconds, never negative. */
const int = (ms: number | undefined): number => Math.max(0, Math.round(ms ?? 0));

/** The begin scripts' credentials arguments: the margin (-1: not checked) and refresh_before. */
const credentialArgs = (o: BeginOptions): [number, number] => [o.credentialsMarginMs === undefined ? -1 : int(o.credentialsMarginMs), int(o.refreshBeforeMs)];

/** The begin scripts' reply, as both stores hand it to {@link toStart}. */
type BeginReply = { decision: string; lockHeld: boolean; breaker: string; method: string; pingRetry: boolean; flat: unknown; notice: unknown };

const START_SKIPS: readonly string[] = ["locked", "ended", "disabled", "credentials_expired", "recent_traffic", "breaker_open"] satisfies readonly StartSkip[];

function toStart(r: BeginReply, sessionId: string, backendId: string): TickStart {
  const { decision, lockHeld } = r;
  const pair = decodePair(flatToRecord(r.flat), sessionId, backendId);
  const expiresAt = pair?.credentials?.expiresAt;
  const notice = (r.notice === "expiring" || r.notice === "expired") && expiresAt !== undefined ? { notice: { kind: r.notice, expiresAt } as const } : {};
  if (decision === "call" || decision === "probe") {
    if (!pair) return { kind: "skip", reason: "ended", lockHeld };
    return {
      kind: "call",
      lockHeld,
      pair,
      breaker: (r.breaker || "closed") as BreakerState,
      probe: decision === "probe",
      learnedMethod: r.method === "tool" ? "tool" : "ping",
      pingRetry: r.pingRetry,
      ...notice,
    };
  }
  if (START_SKIPS.includes(decision)) return { kind: "skip", reason: decision as StartSkip, lockHeld, ...notice };
  throw new Error(`begin script answered an unknown decision ${JSON.stringify(decision)}`);
}

function toRecord(i: FinishInput): FinishRecord {
  const { pair, outcome: o, token: _token, latencyMs, ...accounting } = i;
  return {
    ...accounting,
    epoch: pair.epoch,
    kind: o.kind,
    ...(o.kind === "failure" ? { reason: o.reason } : {}),
    label: outcomeLabel(o),
    ...(latencyMs === undefined ? {} : { latencyMs: Math.round(latencyMs) }),
    probeDelayMs: Math.round(i.probeDelayMs),
    pingRetryDelayMs: Math.round(i.pingRetryDelayMs),
  };
}

function toFinishResult(rec: unknown, bt: unknown, bfails: unknown, mt: unknown, held: unknown, stopped: unknown): FinishResult {
  const recNum = Number(rec);
  return {
    recorded: recNum >= 0,
    ...(recNum === -1 ? { why: "fenced" as const } : recNum === -2 ? { why: "gone" as const } : {}),
    breakerTransition: (bt || undefined) as BreakerTransition | undefined,
    breakerFailures: Number(bfails),
    methodTransition: (mt || undefined) as MethodTransition | undefined,
    lockHeld: Number(held) === 1,
    stopped: Number(stopped) === 1,
  };
}

async function aliveAt(redis: RedisConnection, keys: Keys, sessionId: string, backendId: string): Promise<number> {
  const F = PAIR_FIELDS;
  const times = await redis.hmget(keys.pair(sessionId, backendId), F.lastSuccessAt, F.lastTrafficAt, F.registeredAt);
  return Math.max(0, ...times.map((t) => Number(t ?? 0) || 0));
}

/** Where the pair and its backend share a node (one Redis, Sentinel): one script to begin, one to finish. */
export function combinedTickStore(redis: RedisConnection, keys: Keys): TickStore {
  return {
    async begin(sessionId, backendId, now, o) {
      const [decision, held, breaker, method, pingRetry, flat, notice] = (await BEGIN_TICK.run(
        redis,
        [keys.pair(sessionId, backendId), keys.backend(backendId), keys.pairLock(sessionId, backendId)],
        [now, o.token, int(o.probeLeaseMs), int(o.pingRetryDelayMs), o.fallback ? "1" : "0", int(o.trafficWindowMs), int(o.lockTtlMs), ...credentialArgs(o)],
      )) as [string, number, string, string, number, unknown, string];
      return toStart({ decision, lockHeld: Number(held) === 1, breaker, method, pingRetry: Number(pingRetry) === 1, flat, notice }, sessionId, backendId);
    },
    async finish(i) {
      const { sessionId, backendId } = i.pair;
      const [rec, bt, bfails, mt, held, stopped] = (await FINISH_TICK.run(
        redis,
        [keys.pair(sessionId, backendId), keys.backend(backendId), keys.pairLock(sessionId, backendId)],
        [JSON.stringify(toRecord(i)), i.token ?? ""],
      )) as [number, string, number, string, number, number];
      return toFinishResult(rec, bt, bfails, mt, held, stopped);
    },
    aliveAt: (sessionId, backendId) => aliveAt(redis, keys, sessionId, backendId),
  };
}

/**
 * On a Redis Cluster the backend hash has a slot of its own (one breaker for the whole cluster),
 * so each step runs as its pair half (with the pair lock, in the shard's slot) and its backend
 * half: no script crosses hash slots.
 */
export function splitTickStore(redis: RedisConnection, keys: Keys): TickStore {
  return {
    async begin(sessionId, backendId, now, o) {
      const pk = keys.pair(sessionId, backendId);
      const lk = keys.pairLock(sessionId, backendId);
      const [decision, held, flat, notice] = (await BEGIN_PAIR.run(redis, [pk, lk], [now, int(o.trafficWindowMs), o.token, int(o.lockTtlMs), ...credentialArgs(o)])) as [
        string,
        number,
        unknown,
        string,
      ];
      if (decision !== "go") return toStart({ decision, lockHeld: Number(held) === 1, breaker: "", method: "", pingRetry: false, flat, notice }, sessionId, backendId);
      const [verdict, breaker, method, pingRetry] = (await BEGIN_BREAKER.run(
        redis,
        [keys.backend(backendId)],
        [now, o.token, int(o.probeLeaseMs), int(o.pingRetryDelayMs), o.fallback ? "1" : "0"],
      )) as [string, string, string, number];
      let lockHeld = Number(held) === 1;
      if (verdict === "breaker_open") {
        // Record the skip on the pair and release its lock, as the combined begin script does.
        const pair = decodePair(flatToRecord(flat), sessionId, backendId);
        const record = { epoch: pair?.epoch ?? 0, now, kind: "skipped", label: "skipped:breaker_open" };
        await FINISH_PAIR.run(redis, [pk, lk], [JSON.stringify(record), o.token]);
        lockHeld = false;
      }
      return toStart({ decision: verdict, lockHeld, breaker, method, pingRetry: Number(pingRetry) === 1, flat, notice }, sessionId, backendId);
    },
    async finish(i) {
      const { sessionId, backendId } = i.pair;
      const json = JSON.stringify(toRecord(i));
      const [rec, held, stopped] = (await FINISH_PAIR.run(redis, [keys.pair(sessionId, backendId), keys.pairLock(sessionId, backendId)], [json, i.token ?? ""])) as [number, number, number];
      const [bt, bfails, mt] = (await FINISH_BREAKER.run(redis, [keys.backend(backendId)], [json])) as [string, number, string];
      return toFinishResult(rec, bt, bfails, mt, held, stopped);
    },
    aliveAt: (sessionId, backendId) => aliveAt(redis, keys, sessionId, backendId),
  };
}

/** The store for this Redis, chosen once: split on a Redis Cluster, combined otherwise. */
export function createTickStore(redis: RedisConnection, keys: Keys): TickStore {
  return redis instanceof Cluster ? splitTickStore(redis, keys) : combinedTickStore(redis, keys);
}

/** `base` stretched by a random 0-10 %: spreads the probes of backends that opened together. */
export function jittered(baseMs: number, random: () => number = Math.random): number {
  return Math.round(baseMs * (1 + 0.1 * random()));
}
