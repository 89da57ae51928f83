import { randomUUID } from "node:crypto";
import { createLocker, releaseLock, type HeldLock, type Locker, type RedisConnection } from "@vmcp-keepalive/shared";

/** Why a tick could not have its pair lock: the skip reasons of the metrics and events. */
export type LockSkip = "locked" | "lock_unavailable";

/** How the tick's scripts see the lock (KEYS and ARGV of lua/begin-tick-3.lua and friends). */
export interface ScriptLock {
  /** The contract resource `<prefix>:lock:<sessionId>:<backendId>`. */
  readonly key: string;
  /** This tick's token: the lock's value when the scripts take it, and the probe-ownership proof. */
  readonly token: string;
  /** TTL for the begin script to take the lock with; 0 when the lock is already held outside the scripts. */
  readonly ttlMs: number;
}

/**
 * One tick's pair lock. The rule for how long it stays held is written once, in
 * lua/includes/pair.lua (KEEPS_LOCK): only while the worker still has work under it (the call and
 * its record; the removal of a job scheduler). The scripts apply it and say whether they still
 * hold the lock; with Redlock the lock is held from `acquire` to `release` whatever they say.
 */
export interface TickLock {
  readonly script: ScriptLock;
  /** The begin script's answer: whether its lock stays held for the rest of the tick. */
  begun(heldByScript: boolean): void;
  /** The finish script's answer: whether its lock stays held (a pair it recorded as expired). */
  finished(heldByScript: boolean): void;
  /** False once the lock may belong to someone else: released, or its TTL (less clock drift) ran out. */
  stillHeld(): boolean;
  /** Releases what is still held (compare-and-delete); never throws: an unreleased lock expires. */
  release(): Promise<void>;
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
 * Redlock does, so it excludes a vMCP's Redlock on the same resource) and the finish script
 * releases it — no round trip of its own per keepalive.
 */
export function inScriptTickLock(redis: RedisConnection, now: () => number = Date.now): TickLockStrategy {
  return {
    kind: "in-script",
    acquire(key, ttlMs) {
      const ttl = Math.max(1, Math.round(ttlMs));
      const token = randomUUID();
      const expiresAt = validUntil(now(), ttl);
      let held = false;
      const lock: TickLock = {
        script: { key, token, ttlMs: ttl },
        begun: (heldByScript) => void (held = heldByScript),
        finished: (heldByScript) => void (held = heldByScript),
        stillHeld: () => held && now() < expiresAt,
        async release() {
          if (!held) return;
          held = false;
          await releaseLock(redis, key, token).catch(() => {});
        },
        unavailable: () => "lock_unavailable",
      };
      return Promise.resolve(lock);
    },
  };
}

/** Several independent lock nodes (`lock.redis_urls`): a Redlock quorum, taken before the scripts run. */
export function redlockTickLock(locker: Locker): TickLockStrategy {
  return {
    kind: "redlock",
    async acquire(key, ttlMs) {
      const result = await locker.tryLock(key, ttlMs);
      if (!result.acquired) return result.reason === "locked" ? { skip: "locked" } : { skip: "lock_unavailable", error: result.error };
      const held: HeldLock = result.lock;
      let released = false;
      return {
        // TTL 0: the scripts neither take it nor find this token on the main Redis to release.
        script: { key, token: randomUUID(), ttlMs: 0 },
        begun: () => {},
        finished: () => {},
        stillHeld: () => !released && held.isValid(),
        async release() {
          if (released) return;
          released = true;
          await held.release();
        },
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
