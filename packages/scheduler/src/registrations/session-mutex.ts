import { randomUUID } from "node:crypto";
import type { Redis } from "ioredis";
import { LuaScript, type Keys } from "@vmcp-keepalive/shared";

const RELEASE = new LuaScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`);

/**
 * Serializes the lifecycle messages of one session across every scheduler process, so that a
 * `session.ended` handled by one process cannot interleave with a `session.registered` handled by
 * another between "state written" and "job schedulers upserted" (which would leave an orphan
 * scheduler). Held for milliseconds; the TTL only matters if a process dies holding it.
 */
export async function withSessionMutex<T>(redis: Redis, keys: Keys, sessionId: string, fn: () => Promise<T>, waitMs = 5_000): Promise<T> {
  const key = keys.sessionMutex(sessionId);
  const token = randomUUID();
  const deadline = Date.now() + waitMs;
  for (;;) {
    const ok = await redis.set(key, token, "PX", 10_000, "NX");
    if (ok === "OK") break;
    if (Date.now() > deadline) throw new Error(`session ${sessionId} is busy in another scheduler for over ${waitMs} ms`);
    await new Promise((r) => setTimeout(r, 5 + Math.random() * 20));
  }
  try {
    return await fn();
  } finally {
    await RELEASE.run(redis, [key], [token]).catch(() => {});
  }
}
