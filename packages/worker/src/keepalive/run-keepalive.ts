import { randomUUID } from "node:crypto";
import {
  callMcp,
  findBackend,
  jittered,
  type BackendBreaker,
  type BackendConfig,
  type BreakerOp,
  type CallMethod,
  type FetchLike,
  type FinishTickResult,
  type HeldLock,
  type KeepaliveConfig,
  type KeepaliveEventMap,
  type KeepaliveOutcome,
  type Logger,
  type McpCallResult,
  type MethodOp,
  type PairLocker,
  type PairState,
  type SkipReason,
  type TickDecision,
  type TypedEmitter,
  type VmcpEvent,
} from "@vmcp-keepalive/shared";

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
  readonly locker: PairLocker;
  /** Pair + backend state in Redis: one script to start a tick, one to finish it. */
  readonly breaker: BackendBreaker;
  readonly events: TypedEmitter<KeepaliveEventMap>;
  readonly log: Logger;
  readonly now: () => number;
  /** Removes a pair's job scheduler (pair ended, expired, or off). */
  readonly removeScheduler: (sessionId: string, backendId: string) => Promise<void>;
  /** Publishes an event on `vmcp-events`. A failure is logged here, never thrown out of a tick. */
  readonly publishEvent: (event: VmcpEvent) => Promise<void>;
  /** HTTP layer for backend calls (the worker's keep-alive pool). @defaultValue the process-wide pool */
  readonly fetch?: FetchLike;
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

/** True when the backend may switch between ping and its tool (`tool:<name>` without every-tick). */
export function hasFallback(backend: BackendConfig): boolean {
  return backend.method.kind === "tool" && !backend.method.everyTick;
}

/**
 * Lock TTL: `lock.ttl` when set; by default just above the longest tick, so a lock never
 * outlives a tick by much (DESIGN.md "Lock"). A fallback backend's tick may make two calls (ping,
 * then the tool), each bounded by the call timeout. A shorter `lock.ttl` lets a slow call outlive
 * its lock; the epoch fence on every write keeps pair state correct then.
 */
export function lockTtlMs(config: KeepaliveConfig, backend?: BackendConfig): number {
  if (config.lock.ttlMs !== undefined) return config.lock.ttlMs;
  const calls = backend && hasFallback(backend) ? 2 : 1;
  return calls * config.keepalive.timeoutMs + 1_000;
}

/**
 * One keepalive tick of one pair, start to end: try-lock → read the pair and the backend's
 * breaker/method state (one script) → call the backend on its stored session (ping, or the
 * tool, or ping then the tool) → record the outcome, breaker and fallback accounting (one
 * script, fenced on the epoch read under the lock) → act on transitions → release. Backend
 * problems become outcomes; nothing a backend does is thrown.
 */
export async function runKeepalive(deps: KeepaliveDeps, sessionId: string, backendId: string): Promise<KeepaliveJobResult> {
  const { config, locker, events } = deps;
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
  const started = Date.now();
  // Redlock (several lock nodes), or the single-node fast path: the lock rides in the tick's
  // own scripts (deps.lockInTick; see BEGIN_TICK_LOCKED).
  let redlock: HeldLock | undefined;
  if (!deps.lockInTick) {
    const lock = await locker.tryLock(sessionId, backendId, ttl);
    if (!lock.acquired) {
      if (lock.reason === "lock_unavailable") log.warn({ err: lock.error }, "pair lock unavailable (no quorum); tick skipped");
      return skip(lock.reason);
    }
    redlock = lock.lock;
  }
  const lock: TickLock = {
    expiresAt: redlock ? redlock.expiresAt : started + ttl - Math.round(0.01 * ttl) - 2,
    heldInTick: false,
  };
  try {
    let decision: TickDecision;
    try {
      decision = await deps.breaker.beginTick(sessionId, backendId, deps.now(), {
        token,
        // A claim outlives the longest tick, so only a dead worker's probe is taken over.
        probeLeaseMs: ttl + 1_000,
        pingRetryDelayMs: jittered(config.breaker.probeAfterMs, deps.random),
        fallback: hasFallback(backend),
        ...(deps.lockInTick ? { lockTtlMs: ttl } : {}),
      });
    } catch (err) {
      if (!deps.lockInTick) throw err;
      // On the fast path the lock is taken by this script: Redis unreachable = lock unavailable.
      log.warn({ err }, "pair lock unavailable (Redis unreachable); tick skipped");
      return skip("lock_unavailable");
    }
    lock.heldInTick = deps.lockInTick === true && (decision.kind === "call" || decision.kind === "inactive");
    switch (decision.kind) {
      case "locked":
        return skip("locked");
      case "no_pair":
        await deps.removeScheduler(sessionId, backendId);
        return skip("ended");
      case "inactive":
        await deps.removeScheduler(sessionId, backendId);
        return skip("disabled");
      case "skip_open":
        return skip("breaker_open");
      case "call":
        return await callAndRecord(deps, log, backend, decision, token, lock);
      default:
        return decision satisfies never;
    }
  } finally {
    if (redlock) await redlock.release();
    else if (lock.heldInTick) await deps.breaker.releaseLock(sessionId, backendId, token).catch(() => {});
  }
}

/** The pair lock of one tick, as the call-and-record step needs it. */
interface TickLock {
  /** Wall-clock time after which the lock may belong to someone else. */
  readonly expiresAt: number;
  /** Fast path: we hold the lock taken by BEGIN_TICK_LOCKED and must release it (false once FINISH released it). */
  heldInTick: boolean;
}

type CallDecision = Extract<TickDecision, { kind: "call" }>;

/** The first call of a tick (DESIGN.md "Method"). */
function firstCall(backend: BackendConfig, d: CallDecision): CallMethod {
  const m = backend.method;
  if (m.kind !== "tool") return "ping";
  if (m.everyTick) return "tool";
  // On its learned tool, a backend gets ping only when this tick holds the ping retry.
  return d.learnedMethod === "tool" && !d.pingRetry ? "tool" : "ping";
}

async function callAndRecord(
  deps: KeepaliveDeps,
  log: Logger,
  backend: BackendConfig,
  d: CallDecision,
  token: string,
  lock: TickLock,
): Promise<KeepaliveJobResult> {
  const { events, config } = deps;
  const pair: PairState = d.pair;
  const { sessionId, backendId } = pair;
  const target = { url: backend.url, sessionId: pair.backendSessionId!, protocolVersion: pair.protocolVersion, headers: backend.headers };
  const made: CallMethod[] = [];

  const call = async (method: CallMethod): Promise<McpCallResult> => {
    made.push(method);
    events.emit("attempt", { backendId, sessionId, method });
    const m = backend.method;
    const result = await callMcp(
      target,
      method === "tool" && m.kind === "tool" ? { method: "tools/call", tool: m.tool, args: m.args } : { method: "ping" },
      config.keepalive.timeoutMs,
      deps.fetch ? { fetch: deps.fetch } : {},
    );
    if (result.ok) events.emit("success", { backendId, sessionId, method, latencyMs: result.latencyMs });
    else {
      events.emit("failure", { backendId, sessionId, method, latencyMs: result.latencyMs, reason: result.reason, detail: result.detail });
      log.debug({ method, reason: result.reason, detail: result.detail }, "keepalive call failed");
    }
    return result;
  };

  const first = firstCall(backend, d);
  let final = await call(first);
  let methodOp: MethodOp | undefined;
  if (first === "ping" && hasFallback(backend)) {
    if (final.ok) methodOp = "ping_ok";
    else if (final.reason !== "session_not_found") {
      // Try the tool at once: it keeps the session alive now, and tells a ping problem from a
      // backend problem (only ping failures while the tool works count toward the switch).
      const ping = final;
      final = await call("tool");
      if (ping.reason === "method_not_found") methodOp = "ping_unsupported";
      else if (final.ok) methodOp = "ping_failed_tool_ok";
    }
  }
  const finalMethod = made[made.length - 1] ?? first;

  const expired = !final.ok && final.reason === "session_not_found";
  const outcome: KeepaliveOutcome = final.ok ? { kind: "success" } : { kind: "failure", reason: final.reason };
  // session_not_found says this pair's backend session is gone, not that the backend is down.
  const breakerOp: BreakerOp = final.ok ? "reset" : expired ? "none" : "count";
  const now = deps.now();
  const probeDelayMs = jittered(config.breaker.probeAfterMs, deps.random);
  const res = await deps.breaker.finishTick({
    pair,
    outcome,
    now,
    latencyMs: final.latencyMs,
    ...(expired ? { pairStatus: "expired" as const } : {}),
    breakerOp,
    failureThreshold: config.breaker.failureThreshold,
    probeDelayMs,
    ...(d.probe ? { probeToken: token } : {}),
    ...(methodOp ? { methodOp } : {}),
    afterFailures: config.fallback.afterFailures,
    pingRetryDelayMs: jittered(config.breaker.probeAfterMs, deps.random),
    // Fast path: release the lock in the same script — except after a 404, whose job scheduler
    // must be removed while the lock is still ours (below).
    ...(lock.heldInTick && !expired ? { releaseLockToken: token } : {}),
  });
  if (lock.heldInTick && !expired) lock.heldInTick = false;

  if (!res.recorded) {
    log.info({ why: res.why, outcome: outcome.kind, ...(final.ok ? {} : { reason: final.reason }) }, "keepalive outcome not recorded: the pair moved on");
  }
  else if (!final.ok && !expired) log.info({ method: finalMethod, reason: final.reason, detail: final.detail, latencyMs: final.latencyMs }, "keepalive failed");

  if (expired && res.recorded) {
    log.warn({ backendSessionId: pair.backendSessionId }, "backend session not found (404): keepalive stopped for this pair; vMCP notified");
    // The job scheduler is removed only while our lock is still valid (Redlock expiry, wall
    // clock). After it expired, a re-initialize may already have taken the lock, brought the pair
    // back to active and had the scheduler restore the job scheduler; removing it now would stop
    // keepalive for good. Left in place, the next tick removes it under a fresh lock if the pair
    // is still expired.
    if (Date.now() < lock.expiresAt) await deps.removeScheduler(sessionId, backendId);
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
  await onTransitions(deps, log, backend, res, { now, probeDelayMs, method: finalMethod, final, methodOp });

  return {
    outcome: outcome.kind,
    ...(final.ok ? {} : { reason: final.reason }),
    method: finalMethod,
    calls: made,
    latencyMs: final.latencyMs,
    ...(d.probe ? { probe: true } : {}),
    recorded: res.recorded,
  };
}

/** Logs and publishes what this tick's write changed. Only the tick that made a transition sees it. */
async function onTransitions(
  deps: KeepaliveDeps,
  log: Logger,
  backend: BackendConfig,
  res: FinishTickResult,
  t: { now: number; probeDelayMs: number; method: CallMethod; final: McpCallResult; methodOp: MethodOp | undefined },
): Promise<void> {
  const backendId = backend.id;
  const reason = t.final.ok ? undefined : t.final.reason;
  const probeAt = new Date(t.now + t.probeDelayMs).toISOString();
  switch (res.breakerTransition) {
    case "opened":
      if (!reason) break;
      log.warn(
        { backendId, reason, consecutiveFailures: res.breakerFailures, probeAt },
        `circuit breaker opened: keepalive disabled for backend ${backendId} after ${res.breakerFailures} consecutive failures (${reason}); probe at ${probeAt}`,
      );
      deps.events.emit("autoDisabled", { backendId, method: t.method, reason, consecutiveFailures: res.breakerFailures });
      await publish(deps, log, {
        type: "backend.breaker_opened",
        v: 1,
        occurredAt: new Date(t.now).toISOString(),
        backendId,
        reason,
        consecutiveFailures: res.breakerFailures,
        probeAt,
      });
      break;
    case "reopened":
      log.info({ backendId, reason, probeAt }, `circuit breaker probe failed: backend ${backendId} stays disabled; next probe at ${probeAt}`);
      break;
    case "closed":
      log.info({ backendId }, `circuit breaker closed: backend ${backendId} recovered, keepalive resumed`);
      await publish(deps, log, { type: "backend.breaker_closed", v: 1, occurredAt: new Date(t.now).toISOString(), backendId });
      break;
    case "released":
      log.debug({ backendId }, "breaker probe gave no verdict (session not found); the next tick probes");
      break;
    case undefined:
      break;
  }
  if (res.methodTransition === "to_tool" && backend.method.kind === "tool") {
    const why = t.methodOp === "ping_unsupported" ? "method_not_found" : "ping_failures";
    log.warn(
      { backendId, tool: backend.method.tool, reason: why },
      `keepalive for backend ${backendId} switched from ping to tool ${backend.method.tool} (${why === "method_not_found" ? "ping not implemented" : "ping keeps failing while the tool works"}); ping is retried every probe window`,
    );
  } else if (res.methodTransition === "to_ping") {
    log.info({ backendId }, `keepalive for backend ${backendId} switched back to ping: ping works again`);
  }
}

async function publish(deps: KeepaliveDeps, log: Logger, event: VmcpEvent): Promise<void> {
  try {
    await deps.publishEvent(event);
  } catch (err) {
    log.error({ err, type: event.type }, "could not publish to vmcp-events");
  }
}
