import { createHash } from "node:crypto";
import { DelayedError, UnrecoverableError, type Job } from "bullmq";
import { parseSchedulerId } from "@vmcp-keepalive/shared";
import { findBackend } from "@vmcp-keepalive/runtime";
import { runKeepalive, type KeepaliveDeps, type KeepaliveJobResult } from "./run-tick.js";

/*
 * A keepalive job, as BullMQ hands it to the worker: which pair it is for, whether it is overdue
 * (catch-up), then the tick (run-tick.ts).
 */

/** Scheduled time of a job-scheduler job, from its id `repeat:<schedulerId>:<millis>`. */
export function scheduledAt(job: Pick<Job, "id">): number | undefined {
  const tail = job.id?.slice(job.id.lastIndexOf(":") + 1);
  const ms = tail ? Number(tail) : NaN;
  return Number.isFinite(ms) ? ms : undefined;
}

/**
 * Runs one keepalive job. Jobs carry no data: the pair is in the job scheduler's id
 * `ka:<sessionId>:<backendId>` (the scheduler's pair-scheduler.ts), checked by parseSchedulerId. A
 * job that no pair's job scheduler made fails for good (UnrecoverableError) and is logged.
 */
export async function processKeepaliveJob(deps: KeepaliveDeps, job: Job, token: string | undefined): Promise<KeepaliveJobResult> {
  const pair = job.repeatJobKey ? parseSchedulerId(job.repeatJobKey) : undefined;
  if (!pair) {
    deps.log.warn({ jobId: job.id, repeatJobKey: job.repeatJobKey }, "keepalive job that no pair's job scheduler made; rejected");
    throw new UnrecoverableError("not a keepalive job: it comes from no job scheduler ka:<sessionId>:<backendId>");
  }
  const { sessionId, backendId } = pair;
  const at = scheduledAt(job);
  if (at !== undefined) {
    // A catch-up that was put back (started before, never stalled) comes back late by design: not schedule lag.
    const putBack = job.attemptsStarted > 1 && job.stalledCounter === 0;
    if (!putBack) deps.events.emit("scheduleLag", { backendId, lagMs: (job.processedOn ?? deps.now()) - at });
    const caughtUp = await catchUp(deps, job, token, sessionId, backendId, at);
    if (caughtUp) return caughtUp;
  }
  return runKeepalive(deps, sessionId, backendId);
}

/**
 * An overdue tick — its time passed during an outage — is spread over the next interval instead
 * of firing with every other overdue tick ({@link planCatchUp}): put back until its catch-up slot,
 * or dropped when the pair's next regular tick comes first. Only on its first start: a tick put
 * back, or handed on after a worker died holding it, runs when it comes back.
 */
async function catchUp(deps: KeepaliveDeps, job: Job, token: string | undefined, sessionId: string, backendId: string, at: number): Promise<KeepaliveJobResult | undefined> {
  const { config, events } = deps;
  const backend = findBackend(config, backendId);
  const startedAt = job.processedOn ?? deps.now();
  if (config.keepalive.catchUp === "at_once" || !backend || job.attemptsStarted > 1 || startedAt - at <= overdueAfterMs(backend.intervalMs)) return undefined;
  const plan = planCatchUp({
    scheduledAt: at,
    startedAt,
    now: deps.now(),
    intervalMs: backend.intervalMs,
    sessionTtlMs: backend.sessionTtlMs,
    timeoutMs: config.keepalive.timeoutMs,
    aliveAt: await deps.store.aliveAt(sessionId, backendId),
    fraction: catchUpFraction(sessionId, backendId, at),
  });
  if (plan.kind === "superseded") {
    events.emit("skipped", { backendId, sessionId, reason: "superseded" });
    return { outcome: "skipped", reason: "superseded" };
  }
  if (plan.kind === "defer" && token !== undefined) {
    await job.moveToDelayed(plan.at, token);
    events.emit("deferred", { backendId, sessionId, at: plan.at });
    throw new DelayedError();
  }
  return undefined;
}

/**
 * After an outage (workers down, Redis away, a failover), every pair whose tick came due during it
 * has one overdue job, and all of them would fire in the first seconds back: a burst of up to
 * (outage ÷ interval) × pairs calls. Instead an overdue tick gets a **catch-up slot** in the next
 * window W (one interval, shorter only when the backend's `session_ttl` requires it): when the
 * pair's next regular tick comes before that slot, the regular tick is its catch-up and the
 * overdue one is dropped (`superseded`); otherwise the job waits until its slot. So every overdue
 * pair is called within one interval of a worker taking its tick, and never later than two
 * intervals after its last sign of life (its last success, reported traffic or registration) —
 * what one missed tick would give anyway — nor than its `session_ttl` allows (last sign of life +
 * TTL, less one call timeout and a second); a pair with no time to spare is called at once. The
 * two-interval bound also ends the spread where it would only add delay: after an outage longer
 * than an interval the overdue pairs are already past it and are called at once, and a regular
 * tick that is itself late (workers still behind) is not pushed back a second time.
 *
 * Slots are uniform over W. The overdue pairs of an outage O shorter than the interval have their
 * next regular tick one interval after their missed one, i.e. between W − O and W after the
 * return: every slot before W − O is taken (a flat O ÷ W share of the regular rate on top of it),
 * and after it a falling share, as more pairs meet their regular tick first.
 */

/** A tick is overdue when it starts this long after its scheduled time: a hundredth of the interval, at least 250 ms. */
export function overdueAfterMs(intervalMs: number): number {
  return Math.max(250, Math.round(intervalMs / 100));
}

export interface CatchUpInput {
  /** The tick's scheduled time (from its job id). */
  readonly scheduledAt: number;
  /** When the worker took the job (BullMQ's processedOn): the next regular tick is the first slot after it. */
  readonly startedAt: number;
  readonly now: number;
  readonly intervalMs: number;
  /** The backend's `session_ttl`, when configured. */
  readonly sessionTtlMs: number | undefined;
  readonly timeoutMs: number;
  /** The pair's last sign of life: its last successful keepalive, its last reported traffic or its registration (ms; 0 when none). */
  readonly aliveAt: number;
  /** The pair's draw for this tick, uniform in [0, 1) and stable ({@link catchUpFraction}): its slot is at fraction × W. */
  readonly fraction: number;
}

export type CatchUpPlan =
  /** Not overdue, or no time to spare: call now. */
  | { readonly kind: "now" }
  /** Wait until `at`, then call. */
  | { readonly kind: "defer"; readonly at: number }
  /** The pair's next regular tick (at `nextTickAt`) comes first and keeps it alive: drop this one. */
  | { readonly kind: "superseded"; readonly nextTickAt: number };

/** What an overdue tick does (the catch-up rule above). A tick that is not overdue runs now. */
export function planCatchUp(input: CatchUpInput): CatchUpPlan {
  const { scheduledAt, startedAt, now, intervalMs } = input;
  if (startedAt - scheduledAt <= overdueAfterMs(intervalMs)) return { kind: "now" };
  const { aliveAt } = input;
  if (aliveAt <= 0) return { kind: "now" };
  // The latest the pair may be called: before its session TTL runs out; without one, two
  // intervals after its last sign of life (one missed tick, as without the spread). This also
  // stops a cascade: a regular tick that is itself late finds the pair's deadline already near.
  const ttlDeadline = input.sessionTtlMs !== undefined ? aliveAt + input.sessionTtlMs - input.timeoutMs - 1_000 : Infinity;
  const deadline = Math.min(ttlDeadline, aliveAt + 2 * intervalMs);
  // The spread window: one interval, shorter only when the TTL requires it.
  const window = Math.min(intervalMs, ttlDeadline - now);
  if (window <= overdueAfterMs(intervalMs) || deadline - now <= overdueAfterMs(intervalMs)) return { kind: "now" };
  const slot = now + Math.floor(input.fraction * window);
  // The pair's regular slots are scheduledAt + k × interval; BullMQ queued the first one after startedAt.
  const nextTickAt = scheduledAt + Math.max(1, Math.floor((startedAt - scheduledAt) / intervalMs) + 1) * intervalMs;
  if (nextTickAt <= slot && nextTickAt <= deadline) return { kind: "superseded", nextTickAt };
  return { kind: "defer", at: Math.min(slot, deadline) };
}

/** A pair's stable place in [0, 1) for one scheduled tick (hash of the pair and the tick's time). */
export function catchUpFraction(sessionId: string, backendId: string, scheduledAt: number): number {
  const digest = createHash("sha1").update(sessionId).update("\0").update(backendId).update("\0").update(String(scheduledAt)).digest();
  return digest.readUIntBE(0, 6) / 2 ** 48;
}
