import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import type { RedisConnection } from "../redis/connection.js";
import { loadLuaScript } from "../redis/lua-script.js";
import Redlock, { ExecutionError, ResourceLockedError, type Lock } from "redlock";

const RELEASE_LOCK = loadLuaScript(new URL("../../lua/", import.meta.url), "release-lock-1.lua");

/** Deletes the lock `resource` if `token` still holds it (compare-and-delete); true when it did. */
export async function releaseLock(redis: RedisConnection, resource: string, token: string): Promise<boolean> {
  return Number(await RELEASE_LOCK.run(redis, [resource], [token])) === 1;
}

/** A held lock. `release` never throws: an unreleased lock simply expires. */
export interface HeldLock {
  readonly resource: string;
  /** False once the TTL (less Redlock's clock-drift allowance) has run out: the lock may belong to someone else. */
  isValid(): boolean;
  release(): Promise<void>;
}

export type TryLockResult =
  | { readonly acquired: true; readonly lock: HeldLock }
  /** Someone else holds it (a worker, a vMCP re-initializing, another scheduler). */
  | { readonly acquired: false; readonly reason: "locked" }
  /** The lock nodes could not form a quorum (Redis down): not a backend failure. */
  | { readonly acquired: false; readonly reason: "lock_unavailable"; readonly error: Error };

/**
 * The project's one lock primitive (Redlock stays behind it): the pair lock of workers and
 * `reinitializeBackend` (resource `keys.pairLock(...)`, the contract), and the schedulers'
 * per-session mutex.
 */
export interface Locker {
  /** One attempt, no retries. */
  tryLock(resource: string, ttlMs: number): Promise<TryLockResult>;
  /** Retries until `waitMs` has passed. */
  lock(resource: string, ttlMs: number, waitMs: number): Promise<TryLockResult>;
}

async function classify(error: unknown): Promise<"locked" | "lock_unavailable"> {
  if (!(error instanceof ExecutionError) || error.attempts.length === 0) return "lock_unavailable";
  const last = await error.attempts[error.attempts.length - 1];
  if (!last) return "lock_unavailable";
  const locked = [...last.votesAgainst.values()].filter((e) => e instanceof ResourceLockedError).length;
  // Locked on at least a quorum of the nodes ⇒ somebody holds it; otherwise nodes are failing.
  return locked >= last.quorumSize ? "locked" : "lock_unavailable";
}

/** Redlock's allowance for clock drift: a lock counts as held until ttl − 1 % − 2 ms after the attempt started. */
const DRIFT_FACTOR = 0.01;
/** Holders keep a lock for milliseconds (one keepalive call, one message): a waiter retries every 10 ms ± 5 ms. */
const RETRY_DELAY_MS = 10;

/**
 * Builds a {@link Locker} over one or more independent Redis nodes (a Redlock quorum). The
 * clients should fail fast (`maxRetriesPerRequest` small, offline queue off) so that a down node
 * votes against at once instead of stalling the caller. The clients stay the caller's to close.
 *
 * On one node it does what a one-node Redlock does — `SET resource token NX PX ttl`, released by
 * compare-and-delete, so it excludes and is excluded by a Redlock on the same resource — without
 * Redlock's machinery (its `randomBytes` token, its quorum bookkeeping), which would otherwise be
 * a large share of a scheduler's CPU per lifecycle message: its per-session mutex takes and
 * releases a lock for every message.
 */
export function createLocker(clients: readonly RedisConnection[]): Locker {
  if (clients.length === 1) return createSingleNodeLocker(clients[0]!);
  const redlock = new Redlock([...clients], { retryCount: 0, driftFactor: DRIFT_FACTOR, automaticExtensionThreshold: 0 });
  // Redlock re-emits every per-node error; we classify them from the ExecutionError instead.
  redlock.on("error", () => {});

  const wrap = (lock: Lock, resource: string): HeldLock => ({
    resource,
    isValid: () => Date.now() < lock.expiration,
    async release() {
      try {
        await lock.release();
      } catch {
        // Expires on its own after ttl.
      }
    },
  });

  const attempt = async (resource: string, ttlMs: number, retryCount: number, retryDelay: number): Promise<TryLockResult> => {
    try {
      const lock = await redlock.acquire([resource], Math.max(1, Math.round(ttlMs)), { retryCount, retryDelay, retryJitter: Math.round(retryDelay / 2) });
      return { acquired: true, lock: wrap(lock, resource) };
    } catch (error) {
      const reason = await classify(error);
      if (reason === "locked") return { acquired: false, reason };
      return { acquired: false, reason, error: error instanceof Error ? error : new Error(String(error)) };
    }
  };

  return {
    tryLock: (resource, ttl) => attempt(resource, ttl, 0, 0),
    // A short retry step keeps a waiter's delay small at the cost of a few hundred SET NX per wait.
    lock: (resource, ttl, waitMs) => attempt(resource, ttl, Math.max(0, Math.ceil(waitMs / RETRY_DELAY_MS)), RETRY_DELAY_MS),
  };
}

function createSingleNodeLocker(redis: RedisConnection): Locker {
  const attempt = async (resource: string, ttlMs: number): Promise<TryLockResult> => {
    const ttl = Math.max(1, Math.round(ttlMs));
    const token = randomUUID();
    const started = Date.now();
    let reply: string | null;
    try {
      reply = await redis.set(resource, token, "PX", ttl, "NX");
    } catch (error) {
      return { acquired: false, reason: "lock_unavailable", error: error instanceof Error ? error : new Error(String(error)) };
    }
    if (reply !== "OK") return { acquired: false, reason: "locked" };
    const validUntil = started + ttl - (Math.round(DRIFT_FACTOR * ttl) + 2);
    return {
      acquired: true,
      lock: {
        resource,
        isValid: () => Date.now() < validUntil,
        async release() {
          try {
            await releaseLock(redis, resource, token);
          } catch {
            // Expires on its own after ttl.
          }
        },
      },
    };
  };
  return {
    tryLock: attempt,
    // Like Redlock's retries: whatever the reason, again until waitMs has passed.
    async lock(resource, ttl, waitMs) {
      const deadline = Date.now() + waitMs;
      for (;;) {
        const result = await attempt(resource, ttl);
        if (result.acquired || Date.now() + RETRY_DELAY_MS > deadline) return result;
        await sleep(RETRY_DELAY_MS + Math.round((Math.random() - 0.5) * RETRY_DELAY_MS));
      }
    },
  };
}
