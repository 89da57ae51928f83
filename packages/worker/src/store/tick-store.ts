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
  type RedisConnection,
  type SkipReason,
} from "@vmcp-keepalive/shared";
import { Cluster } from "ioredis";
import {
  BEGIN_BREAKER,
  BEGIN_PAIR,
  BEGIN_TICK,
  FINISH_BREAKER,
  FINISH_PAIR,
  FINISH_TICK,
  type BeginRecord,
  type BeginReply,
  type BreakerTransition,
  type FinishAccounting,
  type FinishRecord,
  type FinishReply,
  type LockAfter,
  type MethodTransition,
  type PairStop,
  type ScriptLock,
} from "./scripts.js";

/** The skips a tick's start can decide: the skip reasons of the metrics and events, as the scripts name them. */
export type StartSkip = Extract<SkipReason, "locked" | "ended" | "disabled" | "credentials_expired" | "recent_traffic" | "breaker_open">;

/** A credentials notice the tick's start claimed (once per credentials): the worker publishes its event. */
export interface CredentialsNotice {
  readonly kind: "expiring" | "expired";
  /** When the credentials expire (ms). */
  readonly expiresAt: number;
}

/** What a tick's start decided, read from Redis in one script (two on a Cluster). `lock`: what the start left of the scripts' pair lock. */
export type TickStart =
  /**
   * No backend call: `locked` (another holder has the pair lock), `ended` (no pair: session ended
   * or reaped), `disabled` (pair off or expired, or no backend session), `recent_traffic` (real
   * traffic within the window kept it alive), `breaker_open` (breaker open, or another tick holds
   * the probe), `credentials_expired` (the pair's session credentials expire before a call would end).
   */
  | { readonly kind: "skip"; readonly reason: StartSkip; readonly lock: LockAfter; readonly notice?: CredentialsNotice }
  /**
   * Call the backend. `probe`: this tick holds the backend's single probe. `pingRetry`: this
   * tick holds the ping retry of a backend that learned its tool.
   */
  | {
      readonly kind: "call";
      readonly lock: LockAfter;
      readonly pair: PairState;
      readonly breaker: BreakerState;
      readonly probe: boolean;
      readonly learnedMethod: LearnedMethod;
      readonly pingRetry: boolean;
      readonly notice?: CredentialsNotice;
    };

export interface BeginOptions {
  /** Unique per tick: a probe claim is made with it, and proven with it in {@link TickStore.finish}. */
  readonly probeToken: string;
  /** The pair lock for the scripts to take (the lock on the main Redis); absent when it is held outside them (Redlock). */
  readonly lock?: ScriptLock | undefined;
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

export interface FinishInput extends FinishAccounting {
  readonly pair: Pick<PairState, "sessionId" | "backendId" | "epoch">;
  /** `skipped`: a tick that made no call and stops the pair (`stop`), e.g. credentials no key opens. */
  readonly outcome: KeepaliveOutcome;
  readonly now: number;
  readonly latencyMs?: number;
  readonly pairStatus?: PairStatus;
  readonly stop?: PairStop;
  /** The scripts' pair lock (as begin took it): released by the script unless the pair was stopped. Absent when held outside the scripts. */
  readonly lock?: Pick<ScriptLock, "token"> | undefined;
}

export interface FinishResult {
  /** False when the pair moved on (fenced) or is gone; the breaker accounting happened anyway. */
  readonly recorded: boolean;
  readonly why?: "fenced" | "gone";
  /** Set only in the one tick whose write made the transition: that worker logs it. */
  readonly breakerTransition: BreakerTransition | undefined;
  /** Consecutive backend failures after this tick. */
  readonly breakerFailures: number;
  readonly methodTransition: MethodTransition | undefined;
  /** What the finish left of the scripts' pair lock: `kept` when the pair was stopped and its job scheduler is still to be removed. */
  readonly lock: LockAfter;
  /** This write stopped the pair (expired, or off for its credentials): its job scheduler goes. */
  readonly stopped: boolean;
}

/**
 * The Redis side of one keepalive tick: `begin` takes the pair lock (when the scripts hold it),
 * reads the pair and decides against the backend's breaker (claiming the probe or the ping retry
 * when due); `finish` records the outcome fenced on the pair epoch, does the breaker and method
 * accounting and releases the lock — one script each where the pair and its backend share a
 * node ({@link combinedTickStore}), a pair half and a backend half each on a Redis Cluster
 * ({@link splitTickStore}), with the same input and the same reply either way (scripts.ts).
 * docs/keepalive-policy.md has the state machine.
 */
export interface TickStore {
  begin(sessionId: string, backendId: string, now: number, options: BeginOptions): Promise<TickStart>;
  finish(input: FinishInput): Promise<FinishResult>;
  /** The pair's last sign of life (ms): the latest of its last success, last reported traffic and registration; 0 when none or no pair. */
  aliveAt(sessionId: string, backendId: string): Promise<number>;
}

/** A duration as the scripts take it: whole milliseconds, never negative. */
const int = (ms: number | undefined): number => Math.max(0, Math.round(ms ?? 0));

function beginRecord(now: number, o: BeginOptions): BeginRecord {
  return {
    now,
    ...(o.lock ? { lock: { token: o.lock.token, ttlMs: int(o.lock.ttlMs) } } : {}),
    probeToken: o.probeToken,
    probeLeaseMs: int(o.probeLeaseMs),
    pingRetryDelayMs: int(o.pingRetryDelayMs),
    fallback: o.fallback,
    trafficWindowMs: int(o.trafficWindowMs),
    ...(o.credentialsMarginMs === undefined ? {} : { credentialsMarginMs: int(o.credentialsMarginMs) }),
    refreshBeforeMs: int(o.refreshBeforeMs),
  };
}

function toStart(r: BeginReply, sessionId: string, backendId: string): TickStart {
  const { lock } = r;
  const pair = r.pair && decodePair(r.pair, sessionId, backendId);
  const expiresAt = pair?.credentials?.expiresAt;
  const notice = r.notice && expiresAt !== undefined ? { notice: { kind: r.notice, expiresAt } } : {};
  if (r.decision !== "go") return { kind: "skip", reason: r.decision, lock, ...notice };
  const { backend } = r;
  if (backend.decision === "breaker_open") return { kind: "skip", reason: "breaker_open", lock, ...notice };
  if (!pair) return { kind: "skip", reason: "ended", lock };
  return { kind: "call", lock, pair, breaker: backend.breaker, probe: backend.decision === "probe", learnedMethod: backend.method, pingRetry: backend.pingRetry, ...notice };
}

function toRecord(i: FinishInput): FinishRecord {
  const { pair, outcome: o, latencyMs, lock, ...accounting } = i;
  return {
    ...accounting,
    epoch: pair.epoch,
    kind: o.kind,
    ...(o.kind === "failure" ? { reason: o.reason } : {}),
    label: outcomeLabel(o),
    ...(latencyMs === undefined ? {} : { latencyMs: Math.round(latencyMs) }),
    ...(lock ? { lock: { token: lock.token } } : {}),
    probeDelayMs: Math.round(i.probeDelayMs),
    pingRetryDelayMs: Math.round(i.pingRetryDelayMs),
  };
}

function toFinishResult(r: FinishReply): FinishResult {
  return {
    recorded: r.record === "recorded",
    ...(r.record === "recorded" ? {} : { why: r.record }),
    breakerTransition: r.backend.breakerTransition,
    breakerFailures: r.backend.breakerFailures,
    methodTransition: r.backend.methodTransition,
    lock: r.lock,
    stopped: r.stopped,
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
      const reply = await BEGIN_TICK.run(redis, [keys.pair(sessionId, backendId), keys.backend(backendId), keys.pairLock(sessionId, backendId)], beginRecord(now, o));
      return toStart(reply, sessionId, backendId);
    },
    async finish(i) {
      const { sessionId, backendId } = i.pair;
      return toFinishResult(await FINISH_TICK.run(redis, [keys.pair(sessionId, backendId), keys.backend(backendId), keys.pairLock(sessionId, backendId)], toRecord(i)));
    },
    aliveAt: (sessionId, backendId) => aliveAt(redis, keys, sessionId, backendId),
  };
}

/**
 * On a Redis Cluster the backend hash has a slot of its own (one breaker for the whole cluster),
 * so each step runs as its pair half (with the pair lock, in the shard's slot) and its backend
 * half, on the same input: no script crosses hash slots.
 */
export function splitTickStore(redis: RedisConnection, keys: Keys): TickStore {
  return {
    async begin(sessionId, backendId, now, o) {
      const pk = keys.pair(sessionId, backendId);
      const lk = keys.pairLock(sessionId, backendId);
      const input = beginRecord(now, o);
      const half = await BEGIN_PAIR.run(redis, [pk, lk], input);
      if (half.decision !== "go") return toStart({ ...half, decision: half.decision }, sessionId, backendId);
      const backend = await BEGIN_BREAKER.run(redis, [keys.backend(backendId)], input);
      if (backend.decision !== "breaker_open") return toStart({ ...half, decision: "go", backend }, sessionId, backendId);
      // Record the skip on the pair and let go of its lock, as the combined begin script does.
      const epoch = Number(half.pair?.[PAIR_FIELDS.epoch] ?? 0);
      const skipped = await FINISH_PAIR.run(redis, [pk, lk], { epoch, now, kind: "skipped", label: "skipped:breaker_open", ...(input.lock ? { lock: { token: input.lock.token } } : {}) });
      return toStart({ ...half, decision: "go", lock: skipped.lock, backend }, sessionId, backendId);
    },
    async finish(i) {
      const { sessionId, backendId } = i.pair;
      const record = toRecord(i);
      const half = await FINISH_PAIR.run(redis, [keys.pair(sessionId, backendId), keys.pairLock(sessionId, backendId)], record);
      const backend = await FINISH_BREAKER.run(redis, [keys.backend(backendId)], record);
      return toFinishResult({ ...half, backend });
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
