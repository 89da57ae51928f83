import { randomUUID } from "node:crypto";
import { createLocker, releaseLock, type HeldLock, type Locker, type RedisConnection } from "@vmcp-keepalive/shared";
import type { LockAfter, ScriptLock } from "../store/scripts.js";

/** Why a tick could not have its pair lock: the skip reasons of the metrics and events. */
export type LockSkip = "locked" | "lock_unavailable";

/**
 * One tick's pair lock. The rule for how long it stays held is written once, in
 * lua/includes/pair.lua (KEEPS_LOCK): only while the worker still has work under it (the call and
 * its record; the removal of a job scheduler). Each tick script applies it and answers what it
 * left of its lock (`LockAfter`); the tick hands its last script's answer here, and each strategy
 * acts on it in its own way: the in-script lock is held exactly while the scripts answer `kept`;
 * a Redlock quorum is held from `acquire` to `release`, and the scripts never see it.
 */
export interface TickLock {
  /** The lock for the tick's scripts to take and release themselves; undefined when it is held outside them (Redlock). */
  readonly script: ScriptLock | undefined;
  /**
   * Whether the tick may still act under the lock after a step whose script answered `after`
   * (remove a stopped pair's job scheduler): false once the lock may belong to someone else —
   * released, or its TTL (less clock drift) ran out.
   */
  holds(after: LockAfter): boolean;
  /** Releases what the tick still holds after its last step, whose script answered `after` (compare-and-delete); never throws: an unreleased lock expires. */
  release(after: LockAfter): Promise<void>;
  /**
   * A begin script that could not run (Redis unreachable): when the lock is taken in the script,
   * that is the lock being unavailable — a skip; otherwise the error is the tick's.
   */
  unavailable(err: unknown): LockSkip | undefined;
}

/** The pair lock strategy, chosen once when the worker starts. */
export interface TickLockStrategy {
  /** `in-script`: taken by the tick's begin script on the main Redis; `redlock`: a quorum over `lock.redis_urls`. */
  readonly kind: "in-script" | "redlock";
  /** Takes (`redlock`) or prepares (`in-script`) the lock for one tick; a skip when it cannot. */
  acquire(key: string, ttlMs: number): Promise<TickLock | { readonly skip: LockSkip; readonly error?: Error }>;
}

/** Redlock's allowance for clock drift, applied the same way to the in-script lock: TTL − 1 % − 2 ms. */
function validUntil(startedAt: number, ttlMs: number): number {
  return startedAt + ttlMs - Math.round(0.01 * ttlMs) - 2;
}

/**
 * One lock node, the main Redis: the begin script takes the lock (`SET NX PX`, as a one-node
 * Redlock does, so it excludes a vMCP's Redlock on the same resource) and the script that ends
 * the tick's work under it releases it — no round trip of its own per keepalive.
 */
export function inScriptTickLock(redis: RedisConnection, now: () => number = Date.now): TickLockStrategy {
  return {
    kind: "in-script",
    acquire(key, ttlMs) {
      const ttl = Math.max(1, Math.round(ttlMs));
      const token = randomUUID();
      const expiresAt = validUntil(now(), ttl);
      const lock: TickLock = {
        script: { token, ttlMs: ttl },
        holds: (after) => after === "kept" && now() < expiresAt,
        async release(after) {
          if (after === "kept") await releaseLock(redis, key, token).catch(() => {});
        },
        unavailable: () => "lock_unavailable",
      };
      return Promise.resolve(lock);
    },
  };
}

/** Several independent lock nodes (`lock.redis_urls`): a Redlock quorum, taken before the scripts run and released after them. */
export function redlockTickLock(locker: Locker): TickLockStrategy {
  return {
    kind: "redlock",
    async acquire(key, ttlMs) {
      const result = await locker.tryLock(key, ttlMs);
      if (!result.acquired) return result.reason === "locked" ? { skip: "locked" } : { skip: "lock_unavailable", error: result.error };
      const held: HeldLock = result.lock;
      return {
        script: undefined,
        holds: () => held.isValid(),
        release: () => held.release(),
        unavailable: () => undefined,
      };
    },
  };
}

/**
 * The strategy for a worker: in the scripts when the lock lives on the main Redis (no
 * `lock.redis_urls`), else Redlock over the lock nodes (their clients fail fast: a down node
 * votes against at once).
 */
export function createTickLockStrategy(main: RedisConnection, lockNodes: readonly RedisConnection[], now: () => number = Date.now): TickLockStrategy {
  return lockNodes.length === 0 ? inScriptTickLock(main, now) : redlockTickLock(createLocker(lockNodes));
}
