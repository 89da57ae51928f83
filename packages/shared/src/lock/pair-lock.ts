import type { Redis } from "ioredis";
import Redlock, { ExecutionError, ResourceLockedError, type Lock } from "redlock";
import type { Keys } from "../redis/keys.js";

/** A held pair lock. `release` never throws: an unreleased lock simply expires. */
export interface HeldLock {
  readonly resource: string;
  /** Epoch-independent expiry (ms since epoch) after which the lock may belong to someone else. */
  readonly expiresAt: number;
  release(): Promise<void>;
}

export type TryLockResult =
  | { readonly acquired: true; readonly lock: HeldLock }
  /** Someone else (a worker, or a vMCP re-initializing) holds the pair. */
  | { readonly acquired: false; readonly reason: "locked" }
  /** The lock nodes could not form a quorum (Redis down): not a backend failure. */
  | { readonly acquired: false; readonly reason: "lock_unavailable"; readonly error: Error };

/** The narrow surface workers and the vMCP client need; Redlock stays behind it. */
export interface PairLocker {
  /** One attempt, no retries. */
  tryLock(sessionId: string, backendId: string, ttlMs: number): Promise<TryLockResult>;
  /** Retries until `waitMs` has passed; used by `reinitializeBackend`. */
  lock(sessionId: string, backendId: string, ttlMs: number, waitMs: number): Promise<TryLockResult>;
  close(): Promise<void>;
}

/** True when every vote against was "already locked" (contention), false when a node errored. */
function isContention(error: unknown): boolean {
  if (!(error instanceof ExecutionError)) return false;
  return error.attempts.length > 0;
}

async function classify(error: unknown): Promise<"locked" | "lock_unavailable"> {
  if (!isContention(error)) return "lock_unavailable";
  const attempts = (error as ExecutionError).attempts;
  const last = await attempts[attempts.length - 1];
  if (!last) return "lock_unavailable";
  const errors = [...last.votesAgainst.values()];
  const locked = errors.filter((e) => e instanceof ResourceLockedError).length;
  // Locked on at least a quorum of the nodes ⇒ somebody holds it; otherwise nodes are failing.
  return locked >= last.quorumSize ? "locked" : "lock_unavailable";
}

/**
 * Builds a {@link PairLocker} over one or more independent Redis nodes (a Redlock quorum). The
 * clients should fail fast (`maxRetriesPerRequest` small, offline queue off) so that a down node
 * votes against at once instead of stalling the tick.
 */
export function createPairLocker(clients: readonly Redis[], keys: Keys): PairLocker {
  const redlock = new Redlock([...clients], { retryCount: 0, driftFactor: 0.01, automaticExtensionThreshold: 0 });
  // Redlock re-emits every per-node error; we classify them from the ExecutionError instead.
  redlock.on("error", () => {});

  const wrap = (lock: Lock, resource: string): HeldLock => ({
    resource,
    expiresAt: lock.expiration,
    async release() {
      try {
        await lock.release();
      } catch {
        // Expires on its own after ttl.
      }
    },
  });

  const attempt = async (sessionId: string, backendId: string, ttlMs: number, retryCount: number, retryDelay: number): Promise<TryLockResult> => {
    const resource = keys.pairLock(sessionId, backendId);
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
    tryLock: (s, b, ttl) => attempt(s, b, ttl, 0, 0),
    lock: (s, b, ttl, waitMs) => {
      // A keepalive holds the lock for one call, typically a few ms: a 50 ms retry step made a
      // re-initialize wait ~60 ms on every collision (measured in the 1,000-round race test);
      // 10 ms (+ up to 5 ms jitter) costs at most a few hundred SET NX per wait.
      const retryDelay = 10;
      return attempt(s, b, ttl, Math.max(0, Math.ceil(waitMs / retryDelay)), retryDelay);
    },
    async close() {
      // Clients are owned by the caller.
    },
  };
}
