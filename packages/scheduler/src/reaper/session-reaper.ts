import type { Logger } from "@vmcp-keepalive/runtime";
import type { Locker } from "@vmcp-keepalive/shared";
import type { SessionStore } from "../store/session-store.js";
import type { PairScheduler } from "../scheduling/pair-scheduler.js";
import { withSessionMutex } from "../registrations/session-mutex.js";
import { createPeriodic } from "../periodic.js";

export interface SessionReaper {
  /** Starts the periodic pass (first one after one interval). */
  start(): void;
  /** Stops the timer and waits for a pass in progress. Idempotent. */
  stop(): Promise<void>;
  /** One pass: ends every session whose expiry has passed; returns how many this process ended. */
  reapOnce(): Promise<number>;
  /**
   * The periodic pass: {@link SessionReaper.reapOnce} unless another scheduler ran one within the
   * interval (`skipped`): a pass reads every session hash, so the schedulers take turns instead of
   * each paying for it (the reaper-pass lock, held for most of an interval and never released).
   */
  passOnce(): Promise<number | "skipped">;
}

export interface SessionReaperDeps {
  readonly store: SessionStore;
  readonly scheduler: PairScheduler;
  /** Connection for the per-session mutex (the registration consumer's state connection). */
  readonly locker: Locker;
  readonly log: Logger;
  readonly now: () => number;
  /** `sessions.reap_interval`. */
  readonly intervalMs: number;
  /** Sessions ended in parallel. @defaultValue 16 */
  readonly concurrency?: number;
}

/**
 * Reaps orphaned sessions — a vMCP replica that died without `session.ended` — so that no
 * keepalive outlives its vMCP session. Each session's expiry (min of last activity + sliding TTL,
 * creation + max lifetime) is the `expiresAt` of its hash; each pass SCANs every session hash
 * (docs/contract.md, "Session expiry"), which costs Redis a periodic read of every session instead
 * of an index entry per session in memory.
 *
 * Safe with any number of schedulers reaping at once: each session is ended under the same
 * per-session mutex the registration consumer uses (so a reap never interleaves with that
 * session's registered/touched/ended message between "state written" and "job schedulers
 * changed"), by one atomic script that re-checks the expiry and ends the session only if it is
 * still due — exactly one scheduler gets `applied` and removes the job schedulers; the others see
 * `gone`. A scheduler that dies between the script and the removals leaves job schedulers whose
 * pair is gone: the worker removes those on their next tick (outcome skipped:ended).
 */
export function createSessionReaper(deps: SessionReaperDeps): SessionReaper {
  const { store, scheduler, log } = deps;
  const concurrency = deps.concurrency ?? 16;

  const reapOne = async (sessionId: string): Promise<boolean> => {
    try {
      return await withSessionMutex(
        deps.locker,
        store.keys,
        sessionId,
        async () => {
          const result = await store.reapSession(sessionId, deps.now());
          if (result.status !== "applied") return false;
          await Promise.all(result.backends.map((b) => scheduler.remove(sessionId, b)));
          log.info({ sessionId, backends: result.backends }, "session expired without session.ended; reaped");
          return true;
        },
        2_000,
      );
    } catch (err) {
      // Busy (a message of this session is being applied) or Redis trouble: the next pass retries.
      log.warn({ err, sessionId }, "could not reap an expired session; retrying next pass");
      return false;
    }
  };

  const reapOnce = async (): Promise<number> => {
    let ended = 0;
    for await (const due of store.expiredSessions(deps.now())) {
      let next = 0;
      await Promise.all(
        Array.from({ length: Math.min(concurrency, due.length) }, async () => {
          while (next < due.length) {
            const sessionId = due[next++]!;
            if (await reapOne(sessionId)) ended++;
          }
        }),
      );
    }
    return ended;
  };

  const passOnce = async (): Promise<number | "skipped"> => {
    // A little under the interval, so that the holder's own next pass finds it free.
    const turn = await deps.locker.tryLock(store.keys.reaperPass, Math.max(1, Math.floor(deps.intervalMs * 0.9)));
    if (!turn.acquired) {
      if (turn.reason === "lock_unavailable") throw turn.error;
      return "skipped";
    }
    return reapOnce();
  };

  const periodic = createPeriodic(passOnce, () => deps.intervalMs, log, "reaper pass");
  return { reapOnce, passOnce, start: () => periodic.start(), stop: () => periodic.stop() };
}
