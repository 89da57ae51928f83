import type { Keys, Locker } from "@vmcp-keepalive/shared";

/** How long a session mutex lives if its holder dies holding it. */
const MUTEX_TTL_MS = 10_000;

/**
 * Serializes the lifecycle messages of one session across every scheduler process, so that a
 * `session.ended` handled by one process cannot interleave with a `session.registered` handled by
 * another between "state written" and "job schedulers upserted" (which would leave an orphan
 * scheduler). Held for milliseconds, on the project's one lock primitive.
 */
export async function withSessionMutex<T>(locker: Locker, keys: Keys, sessionId: string, fn: () => Promise<T>, waitMs = 5_000): Promise<T> {
  const taken = await locker.lock(keys.sessionMutex(sessionId), MUTEX_TTL_MS, waitMs);
  if (!taken.acquired) {
    if (taken.reason === "locked") throw new Error(`session ${sessionId} is busy in another scheduler for over ${waitMs} ms`);
    throw taken.error;
  }
  try {
    return await fn();
  } finally {
    await taken.lock.release();
  }
}
