import { randomUUID } from "node:crypto";
import type { CredentialKeyRing, KeepaliveOutcome, Keys, SkipReason, VmcpEvent } from "@vmcp-keepalive/shared";
import { openPairCredentials, type CredentialsStop, type OpenedCredentials } from "./session-credentials.js";
import { findBackend, type BackendConfig, type KeepaliveConfig, type Logger, type TypedEmitter } from "@vmcp-keepalive/runtime";
import type { BackendClient, McpCallResult } from "../protocol/backend-client.js";
import type { LockAfter } from "../store/scripts.js";
import { jittered, type CredentialsNotice, type FinishResult, type TickStart, type TickStore } from "../store/tick-store.js";
import type { KeepaliveEventMap } from "./keepalive-events.js";
import { hasFallback, nextCall, planRecord, type CallMethod, type MethodOp } from "./plan.js";
import type { TickLock, TickLockStrategy } from "./tick-lock.js";

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
  /** The pair lock, chosen once: in the tick's scripts (one Redis) or a Redlock quorum. */
  readonly lock: TickLockStrategy;
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
  /** Client for backend calls: the worker's pool of keep-alive connections. */
  readonly backend: BackendClient;
  /** The ring that opens `auth: session` pairs' credentials (`credentials.keys`); absent when it is empty. */
  readonly credentials?: CredentialKeyRing | undefined;
  /** Source of the probe/ping-retry jitter. @defaultValue Math.random */
  readonly random?: () => number;
  /** True the first time it is given a key (then false, while it remembers it): log lines said once. @defaultValue always true */
  readonly firstNotice?: (key: string) => boolean;
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

/**
 * One keepalive tick of one pair, start to end: pair lock → begin (read the pair and the
 * backend's breaker/method state; one script) → the calls the plan names, on the stored backend
 * session → finish (record the outcome, breaker and fallback accounting, fenced on the epoch read
 * under the lock; one script) → act on transitions → release. Backend problems become outcomes;
 * nothing a backend does is thrown.
 *
 * The lock is let go of in one place, at the end, as the tick's last script left it (its
 * `lock` answer): after a begin or finish that released it nothing is left to do; after one that
 * kept it (work remained under it), or an error, the lock is released here.
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
  const lock = await deps.lock.acquire(deps.keys.pairLock(sessionId, backendId), ttl);
  if ("skip" in lock) {
    if (lock.error) log.warn({ err: lock.error }, "pair lock unavailable (no quorum); tick skipped");
    return skip(lock.skip);
  }
  // What the tick's last script left of its lock: nothing is taken before begin.
  let last: LockAfter = "none";
  // The token this tick would claim the backend's probe with, and prove the claim with at the finish.
  const probeToken = randomUUID();
  try {
    let start: TickStart;
    try {
      start = await deps.store.begin(sessionId, backendId, deps.now(), {
        probeToken,
        lock: lock.script,
        // A claim outlives the longest tick, so only a dead worker's probe is taken over.
        probeLeaseMs: ttl + 1_000,
        pingRetryDelayMs: jittered(config.breaker.probeAfterMs, deps.random),
        fallback: hasFallback(backend.method),
        trafficWindowMs: trafficWindowMs(backend),
        ...(backend.auth === "session" ? { credentialsMarginMs: config.keepalive.timeoutMs, refreshBeforeMs: config.credentials.refreshBeforeMs ?? 0 } : {}),
      });
    } catch (err) {
      const reason = lock.unavailable(err);
      if (!reason) throw err;
      log.warn({ err }, "pair lock unavailable (Redis unreachable); tick skipped");
      return skip(reason);
    }
    last = start.lock;
    if (start.notice) await announceExpiry(deps, log, sessionId, backendId, start.notice);
    if (start.kind === "call") {
      const done = await callOrSkip(deps, log, backend, start, lock, probeToken);
      last = done.lock;
      return done.result;
    }
    // A pair that ended or is off no longer needs its job scheduler (an off pair's is removed
    // under the lock, so that a re-initialize cannot bring the pair back in between).
    if (start.reason === "ended" || start.reason === "disabled") await deps.removeScheduler(sessionId, backendId);
    return skip(start.reason);
  } finally {
    await lock.release(last);
  }
}

/** How a tick that started a call ended: its job's result, and what its finish left of the lock. */
interface TickEnd {
  readonly result: KeepaliveJobResult;
  readonly lock: LockAfter;
}

/** Calls the backend with the pair's headers, or skips the call for the pair's credentials. */
async function callOrSkip(deps: KeepaliveDeps, log: Logger, backend: BackendConfig, start: CallStart, lock: TickLock, probeToken: string): Promise<TickEnd> {
  const held = { lock, probeToken };
  if (backend.auth !== "session") return callAndRecord(deps, log, backend, start, held, backend.headers);
  const opened = openCredentials(deps, log, start.pair);
  if ("headers" in opened) return callAndRecord(deps, log, backend, start, held, { ...backend.headers, ...opened.headers });
  if ("wait" in opened) return skipWithoutCall(deps, start, held, opened.wait);
  return skipWithoutCall(deps, start, held, opened.stop.off, { stop: opened.stop, log });
}

/** What a tick that starts a call holds: its pair lock, and the token of its probe claim. */
interface Held {
  readonly lock: TickLock;
  readonly probeToken: string;
}

type CallStart = Extract<TickStart, { kind: "call" }>;

/**
 * The headers of an `auth: session` pair's calls; or the stop (logged once: the pair goes off);
 * or the wait for a key this worker lacks (logged once per pair and key id: the tick repeats).
 */
function openCredentials(deps: KeepaliveDeps, log: Logger, pair: CallStart["pair"]): Exclude<OpenedCredentials, { why: "none" }> | { stop: CredentialsStop } {
  const opened = openPairCredentials(deps.credentials, pair);
  if ("headers" in opened || ("why" in opened && opened.why === "none")) return opened;
  if ("wait" in opened) {
    // The key id, never a value. Once per pair and key id: the pair's next ticks wait the same way.
    if (deps.firstNotice?.(`${pair.sessionId}\n${pair.backendId}\n${opened.keyId}`) ?? true) {
      log.error(
        { keyId: opened.keyId, why: "unknown_key" },
        `session credentials of this pair are sealed with key id ${opened.keyId}, not in this worker's credentials.keys; no keepalive from this worker until it has the key (a key rotation under way?)`,
      );
    }
    return opened;
  }
  // Once per credentials: the pair stops here until new ones come. The key id, never a value.
  log.error(
    { keyId: pair.credentials?.keyId, why: opened.why },
    `session credentials of this pair cannot be opened (key id ${pair.credentials?.keyId}); keepalive off for the pair until the vMCP sends new ones`,
  );
  return opened;
}

/**
 * Ends a tick that makes no call because of its credentials: with `stop`, the pair goes off until
 * new ones come; without, it stays on and its next tick tries again.
 */
async function skipWithoutCall(
  deps: KeepaliveDeps,
  start: CallStart,
  { lock, probeToken }: Held,
  reason: Extract<SkipReason, "no_credentials" | "credentials_undecryptable" | "credentials_unknown_key">,
  stopping?: { readonly stop: CredentialsStop; readonly log: Logger },
): Promise<TickEnd> {
  const { sessionId, backendId } = start.pair;
  const res = await deps.store.finish({
    pair: start.pair,
    outcome: { kind: "skipped", reason },
    now: deps.now(),
    ...(stopping ? { stop: stopping.stop } : {}),
    // No verdict on the backend; a probe this tick held is handed back.
    breakerOp: "none",
    failureThreshold: deps.config.breaker.failureThreshold,
    minFailureSpanMs: deps.config.breaker.minFailureSpanMs,
    probeDelayMs: 0,
    ...(start.probe ? { probeToken } : {}),
    afterFailures: deps.config.fallback.afterFailures,
    pingRetryDelayMs: 0,
    lock: lock.script,
  });
  if (stopping && res.stopped) {
    if (stopping.stop.off === "no_credentials") stopping.log.info("auth: session pair without credentials: keepalive off until the vMCP sends some");
    await removeStoppedScheduler(deps, stopping.log, lock, res, sessionId, backendId);
  }
  deps.events.emit("skipped", { backendId, sessionId, reason });
  return { result: { outcome: "skipped", reason, recorded: res.recorded }, lock: res.lock };
}

/** A stopped pair's job scheduler goes while our lock still holds after the finish (see the 404 case in callAndRecord). */
async function removeStoppedScheduler(deps: KeepaliveDeps, log: Logger, lock: TickLock, finished: FinishResult, sessionId: string, backendId: string): Promise<void> {
  if (lock.holds(finished.lock)) await deps.removeScheduler(sessionId, backendId);
  else log.info("pair lock expired during the call; job scheduler left for the next tick to remove");
}

/** Publishes the credentials notice the tick's start claimed (one per credentials). */
async function announceExpiry(deps: KeepaliveDeps, log: Logger, sessionId: string, backendId: string, notice: CredentialsNotice): Promise<void> {
  const expiresAt = new Date(notice.expiresAt).toISOString();
  if (notice.kind === "expired") log.info({ expiresAt }, "session credentials expired: no keepalive with them; vMCP notified");
  else log.info({ expiresAt }, "session credentials expire soon; vMCP notified");
  await publish(deps, log, {
    type: notice.kind === "expired" ? "backend.credentials_expired" : "backend.credentials_expiring",
    v: 1,
    occurredAt: new Date(deps.now()).toISOString(),
    sessionId,
    backendId,
    expiresAt,
  });
}

async function callAndRecord(deps: KeepaliveDeps, log: Logger, backend: BackendConfig, start: CallStart, { lock, probeToken }: Held, headers: Readonly<Record<string, string>>): Promise<TickEnd> {
  const { events, config } = deps;
  const { pair } = start;
  const { sessionId, backendId } = pair;
  const target = { url: backend.url, sessionId: pair.backendSessionId!, protocolVersion: pair.protocolVersion, headers };
  const method = backend.method;

  const made: { method: CallMethod; result: McpCallResult }[] = [];
  for (let next = nextCall(method, start, made, backend.auth); next !== undefined; next = nextCall(method, start, made, backend.auth)) {
    events.emit("attempt", { backendId, sessionId, method: next });
    const request = next === "tool" && method.kind === "tool" ? { method: "tools/call" as const, tool: method.tool, args: method.args } : { method: "ping" as const };
    const result = await deps.backend.call(target, request, config.keepalive.timeoutMs);
    if (result.ok) events.emit("success", { backendId, sessionId, method: next, latencyMs: result.latencyMs });
    else {
      events.emit("failure", { backendId, sessionId, method: next, latencyMs: result.latencyMs, reason: result.reason, detail: result.detail });
      log.debug({ method: next, reason: result.reason, detail: result.detail }, "keepalive call failed");
    }
    made.push({ method: next, result });
  }
  const plan = planRecord(method, made, backend.auth);
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
    ...(plan.unauthorized ? { stop: { off: "unauthorized", credSeq: pair.credentials?.sequence ?? -1 } as const } : {}),
    breakerOp: plan.breakerOp,
    failureThreshold: config.breaker.failureThreshold,
    minFailureSpanMs: config.breaker.minFailureSpanMs,
    probeDelayMs,
    ...(start.probe ? { probeToken } : {}),
    ...(plan.methodOp ? { methodOp: plan.methodOp } : {}),
    afterFailures: config.fallback.afterFailures,
    pingRetryDelayMs: jittered(config.breaker.probeAfterMs, deps.random),
    lock: lock.script,
  });

  if (!res.recorded) {
    log.info({ why: res.why, outcome: outcome.kind, ...(final.ok ? {} : { reason: final.reason }) }, "keepalive outcome not recorded: the pair moved on");
  } else if (!final.ok && !plan.expired) log.info({ method: plan.method, reason: final.reason, detail: final.detail, latencyMs: final.latencyMs }, "keepalive failed");

  if (plan.expired && res.recorded) {
    log.warn({ backendSessionId: pair.backendSessionId }, "backend session not found (404): keepalive stopped for this pair; vMCP notified");
    // The job scheduler is removed only while our lock is still valid. After it expired, a
    // re-initialize may already have taken the lock, brought the pair back to active and had the
    // scheduler restore the job scheduler; removing it now would stop keepalive for good. Left in
    // place, the next tick removes it under a fresh lock if the pair is still expired.
    await removeStoppedScheduler(deps, log, lock, res, sessionId, backendId);
    await publish(deps, log, {
      type: "backend.session_expired",
      v: 1,
      occurredAt: new Date(now).toISOString(),
      sessionId,
      backendId,
      backendSessionId: pair.backendSessionId!,
    });
  }
  if (plan.unauthorized && res.stopped) {
    const status = !final.ok && final.httpStatus === 403 ? 403 : 401;
    log.warn({ status }, `backend refused this session's credentials (HTTP ${status}): keepalive off for the pair until the vMCP sends new ones; vMCP notified`);
    await removeStoppedScheduler(deps, log, lock, res, sessionId, backendId);
    await publish(deps, log, { type: "backend.unauthorized", v: 1, occurredAt: new Date(now).toISOString(), sessionId, backendId, status });
  }
  await onTransitions(deps, log, backend, res, { now, probeDelayMs, method: plan.method, final, methodOp: plan.methodOp });

  return {
    result: {
      outcome: outcome.kind,
      ...(final.ok ? {} : { reason: final.reason }),
      method: plan.method,
      calls: made.map((m) => m.method),
      latencyMs: final.latencyMs,
      ...(start.probe ? { probe: true } : {}),
      recorded: res.recorded,
    },
    lock: res.lock,
  };
}

/** Logs and publishes what this tick's write changed. Only the tick that made a transition sees it. */
async function onTransitions(
  deps: KeepaliveDeps,
  log: Logger,
  backend: BackendConfig,
  res: FinishResult,
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

/** Publishes on `vmcp-events` and the event stream; a failure is logged, never thrown out of a tick. */
async function publish(deps: KeepaliveDeps, log: Logger, event: VmcpEvent): Promise<void> {
  try {
    await deps.publishEvent(event);
  } catch (err) {
    log.error({ err, type: event.type }, "could not publish an event (vmcp-events or the event stream)");
  }
}
