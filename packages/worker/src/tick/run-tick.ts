import { randomUUID } from "node:crypto";
import type { HeldLock, KeepaliveOutcome, Locker, Keys, SkipReason, VmcpEvent } from "@vmcp-keepalive/shared";
import { findBackend, type BackendConfig, type KeepaliveConfig, type Logger, type TypedEmitter } from "@vmcp-keepalive/runtime";
import { defaultBackendClient, type BackendClient, type McpCallResult } from "../protocol/backend-client.js";
import { jittered, type TickStart, type TickStore } from "../store/tick-store.js";
import type { KeepaliveEventMap } from "./keepalive-events.js";
import { hasFallback, nextCall, planRecord, type CallMethod } from "./plan.js";
import { onTransitions, publish } from "./transitions.js";

/** What a keepalive job returns (its BullMQ return value, visible in Bull Board). */
export interface KeepaliveJobResult {
  readonly outcome: KeepaliveOutcome["kind"];
  readonly reason?: string;
  /** The last call the tick made (a tick that falls back makes two: ping, then the tool). */
  readonly method?: CallMethod;
  /** Every call the tick made, in order. */
  readonly calls?: readonly CallMethod[];
  readonly latencyMs?: number;
  /** True when this tick was the backend's single breaker probe. */
  readonly probe?: boolean;
  /** False when the outcome could not be written because the pair moved on (fenced) or is gone. */
  readonly recorded?: boolean;
}

/** Everything one keepalive needs; narrow interfaces so tests and the benchmark can wire it. */
export interface KeepaliveDeps {
  readonly config: KeepaliveConfig;
  readonly keys: Keys;
  /** Redlock over `lock.redis_urls` (not used on the single-node fast path, `lockInTick`). */
  readonly locker: Locker;
  /** Pair + backend state in Redis: one script to begin a tick, one to finish it. */
  readonly store: TickStore;
  readonly events: TypedEmitter<KeepaliveEventMap>;
  readonly log: Logger;
  /** The clock of every time this tick reads or writes (ms). */
  readonly now: () => number;
  /** Removes a pair's job scheduler (pair ended, expired, or off). */
  readonly removeScheduler: (sessionId: string, backendId: string) => Promise<void>;
  /** Publishes an event on `vmcp-events`. A failure is logged here, never thrown out of a tick. */
  readonly publishEvent: (event: VmcpEvent) => Promise<void>;
  /** Client for backend calls (the worker's keep-alive pool). @defaultValue one client shared by the process */
  readonly backend?: BackendClient;
  /** Source of the probe/ping-retry jitter. @defaultValue Math.random */
  readonly random?: () => number;
  /**
   * Single-node fast path: take and release the pair lock inside the tick's two scripts instead
   * of through `locker` (two round trips less per keepalive). Only valid when the lock lives on
   * the main Redis (no `lock.redis_urls`); with several lock nodes Redlock is required.
   * @defaultValue false
   */
  readonly lockInTick?: boolean;
}

/**
 * Lock TTL: `lock.ttl` when set; by default just above the longest tick, so a lock never
 * outlives a tick by much. A fallback backend's tick may make two calls (ping, then the tool),
 * each bounded by the call timeout. A shorter `lock.ttl` lets a slow call outlive its lock; the
 * epoch fence on every write keeps pair state correct then.
 */
export function lockTtlMs(config: KeepaliveConfig, backend?: BackendConfig): number {
  if (config.lock.ttlMs !== undefined) return config.lock.ttlMs;
  const calls = backend && hasFallback(backend.method) ? 2 : 1;
  return calls * config.keepalive.timeoutMs + 1_000;
}

/**
 * How recent a pair's real traffic must be for its tick to be skipped: one interval, so busy pairs
 * cost no backend call. The backend then sees activity at least every window + interval, which
 * must stay within its idle TTL: with `session_ttl` set, the window is at most TTL − interval.
 */
export function trafficWindowMs(backend: BackendConfig): number {
  const window = backend.sessionTtlMs === undefined ? backend.intervalMs : Math.min(backend.intervalMs, backend.sessionTtlMs - backend.intervalMs);
  return Math.max(0, window);
}

/** The pair lock of one tick, as the call-and-record step needs it. */
interface TickLock {
  /** False once the lock may belong to someone else (its TTL ran out). */
  stillHeld(): boolean;
  /** Fast path: we hold the lock taken by the begin script and must release it (false once finish released it). */
  heldInTick: boolean;
}

/**
 * One keepalive tick of one pair, start to end: try-lock → read the pair and the backend's
 * breaker/method state (one script) → the calls the plan names, on the stored backend session →
 * record the outcome, breaker and fallback accounting (one script, fenced on the epoch read under
 * the lock) → act on transitions → release. Backend problems become outcomes; nothing a backend
 * does is thrown.
 */
export async function runKeepalive(deps: KeepaliveDeps, sessionId: string, backendId: string): Promise<KeepaliveJobResult> {
  const { config, events } = deps;
  const log = deps.log.child({ sessionId, backendId });
  const skip = (reason: SkipReason): KeepaliveJobResult => {
    events.emit("skipped", { backendId, sessionId, reason });
    log.debug({ reason }, "keepalive skipped");
    return { outcome: "skipped", reason };
  };

  const backend = findBackend(config, backendId);
  if (!backend || backend.method.kind === "none") {
    log.warn({ inConfig: Boolean(backend) }, "keepalive for a backend that is no longer in the config or is now method none; removing its scheduler");
    await deps.removeScheduler(sessionId, backendId);
    return skip("disabled");
  }

  const ttl = lockTtlMs(config, backend);
  const token = randomUUID();
  const started = deps.now();
  let redlock: HeldLock | undefined;
  if (!deps.lockInTick) {
    const lock = await deps.locker.tryLock(deps.keys.pairLock(sessionId, backendId), ttl);
    if (!lock.acquired) {
      if (lock.reason === "lock_unavailable") log.warn({ err: lock.error }, "pair lock unavailable (no quorum); tick skipped");
      return skip(lock.reason);
    }
    redlock = lock.lock;
  }
  // The fast path's expiry allows for clock drift as Redlock does (1 % of the TTL + 2 ms).
  const fastExpiresAt = started + ttl - Math.round(0.01 * ttl) - 2;
  const lock: TickLock = {
    stillHeld: redlock ? () => redlock.isValid() : () => deps.now() < fastExpiresAt,
    heldInTick: false,
  };
  try {
    let start: TickStart;
    try {
      start = await deps.store.begin(sessionId, backendId, deps.now(), {
        token,
        // A claim outlives the longest tick, so only a dead worker's probe is taken over.
        probeLeaseMs: ttl + 1_000,
        pingRetryDelayMs: jittered(config.breaker.probeAfterMs, deps.random),
        fallback: hasFallback(backend.method),
        trafficWindowMs: trafficWindowMs(backend),
        ...(deps.lockInTick ? { lockTtlMs: ttl } : {}),
      });
    } catch (err) {
      if (!deps.lockInTick) throw err;
      // On the fast path the lock is taken by this script: Redis unreachable = lock unavailable.
      log.warn({ err }, "pair lock unavailable (Redis unreachable); tick skipped");
      return skip("lock_unavailable");
    }
    lock.heldInTick = deps.lockInTick === true && (start.kind === "call" || start.kind === "inactive");
    switch (start.kind) {
      case "locked":
        return skip("locked");
      case "no_pair":
        await deps.removeScheduler(sessionId, backendId);
        return skip("ended");
      case "inactive":
        await deps.removeScheduler(sessionId, backendId);
        return skip("disabled");
      case "recent_traffic":
        return skip("recent_traffic");
      case "skip_open":
        return skip("breaker_open");
      case "call":
        return await callAndRecord(deps, log, backend, start, token, lock);
      default:
        return start satisfies never;
    }
  } finally {
    if (redlock) await redlock.release();
    else if (lock.heldInTick) await deps.store.releaseLock(sessionId, backendId, token).catch(() => {});
  }
}

async function callAndRecord(deps: KeepaliveDeps, log: Logger, backend: BackendConfig, start: Extract<TickStart, { kind: "call" }>, token: string, lock: TickLock): Promise<KeepaliveJobResult> {
  const { events, config } = deps;
  const { pair } = start;
  const { sessionId, backendId } = pair;
  const target = { url: backend.url, sessionId: pair.backendSessionId!, protocolVersion: pair.protocolVersion, headers: backend.headers };
  const method = backend.method;

  const made: { method: CallMethod; result: McpCallResult }[] = [];
  for (let next = nextCall(method, start, made); next !== undefined; next = nextCall(method, start, made)) {
    events.emit("attempt", { backendId, sessionId, method: next });
    const request = next === "tool" && method.kind === "tool" ? { method: "tools/call" as const, tool: method.tool, args: method.args } : { method: "ping" as const };
    const result = await (deps.backend ?? defaultBackendClient()).call(target, request, config.keepalive.timeoutMs);
    if (result.ok) events.emit("success", { backendId, sessionId, method: next, latencyMs: result.latencyMs });
    else {
      events.emit("failure", { backendId, sessionId, method: next, latencyMs: result.latencyMs, reason: result.reason, detail: result.detail });
      log.debug({ method: next, reason: result.reason, detail: result.detail }, "keepalive call failed");
    }
    made.push({ method: next, result });
  }
  const plan = planRecord(method, made);
  const final = made[made.length - 1]!.result;
  const outcome: KeepaliveOutcome = final.ok ? { kind: "success" } : { kind: "failure", reason: final.reason };
  const now = deps.now();
  const probeDelayMs = jittered(config.breaker.probeAfterMs, deps.random);
  const res = await deps.store.finish({
    pair,
    outcome,
    now,
    latencyMs: final.latencyMs,
    ...(plan.expired ? { pairStatus: "expired" as const } : {}),
    breakerOp: plan.breakerOp,
    failureThreshold: config.breaker.failureThreshold,
    minFailureSpanMs: config.breaker.minFailureSpanMs,
    probeDelayMs,
    ...(start.probe ? { probeToken: token } : {}),
    ...(plan.methodOp ? { methodOp: plan.methodOp } : {}),
    afterFailures: config.fallback.afterFailures,
    pingRetryDelayMs: jittered(config.breaker.probeAfterMs, deps.random),
    // Fast path: release the lock in the same script — except after a 404, whose job scheduler
    // must be removed while the lock is still ours (below).
    ...(lock.heldInTick && !plan.expired ? { releaseLockToken: token } : {}),
  });
  if (lock.heldInTick && !plan.expired) lock.heldInTick = false;

  if (!res.recorded) {
    log.info({ why: res.why, outcome: outcome.kind, ...(final.ok ? {} : { reason: final.reason }) }, "keepalive outcome not recorded: the pair moved on");
  } else if (!final.ok && !plan.expired) log.info({ method: plan.method, reason: final.reason, detail: final.detail, latencyMs: final.latencyMs }, "keepalive failed");

  if (plan.expired && res.recorded) {
    log.warn({ backendSessionId: pair.backendSessionId }, "backend session not found (404): keepalive stopped for this pair; vMCP notified");
    // The job scheduler is removed only while our lock is still valid. After it expired, a
    // re-initialize may already have taken the lock, brought the pair back to active and had the
    // scheduler restore the job scheduler; removing it now would stop keepalive for good. Left in
    // place, the next tick removes it under a fresh lock if the pair is still expired.
    if (lock.stillHeld()) await deps.removeScheduler(sessionId, backendId);
    else log.info("pair lock expired during the call; job scheduler left for the next tick to remove");
    await publish(deps, log, {
      type: "backend.session_expired",
      v: 1,
      occurredAt: new Date(now).toISOString(),
      sessionId,
      backendId,
      backendSessionId: pair.backendSessionId!,
    });
  }
  await onTransitions(deps, log, backend, res, { now, probeDelayMs, method: plan.method, final, methodOp: plan.methodOp });

  return {
    outcome: outcome.kind,
    ...(final.ok ? {} : { reason: final.reason }),
    method: plan.method,
    calls: made.map((m) => m.method),
    latencyMs: final.latencyMs,
    ...(start.probe ? { probe: true } : {}),
    recorded: res.recorded,
  };
}
