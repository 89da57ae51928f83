import type { RedisConnection } from "../redis/connection.js";
import Redlock, { ExecutionError, ResourceLockedError, type Lock } from "redlock";

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

/**
 * Builds a {@link Locker} over one or more independent Redis nodes (a Redlock quorum). The
 * clients should fail fast (`maxRetriesPerRequest` small, offline queue off) so that a down node
 * votes against at once instead of stalling the caller. The clients stay the caller's to close.
 */
export function createLocker(clients: readonly RedisConnection[]): Locker {
  const redlock = new Redlock([...clients], { retryCount: 0, driftFactor: 0.01, automaticExtensionThreshold: 0 });
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
    // Holders keep a lock for milliseconds (one keepalive call, one message): a short retry step
    // keeps a waiter's delay small at the cost of a few hundred SET NX per wait.
    lock: (resource, ttl, waitMs) => attempt(resource, ttl, Math.max(0, Math.ceil(waitMs / 10)), 10),
  };
}
