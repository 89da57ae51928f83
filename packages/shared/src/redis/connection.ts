import { Redis, type RedisOptions } from "ioredis";

export type RedisRole =
  /** Blocking BullMQ consumers: must retry forever (`maxRetriesPerRequest: null`, BullMQ requires it). */
  | "consumer"
  /** Producers and state reads/writes: fail a command fast while Redis is away instead of queueing it forever. */
  | "client";

/**
 * Creates an ioredis connection for one role. Reconnects forever with capped backoff so a Redis
 * outage never kills the process; callers see errors (client role) or waits (consumer role).
 */
export function createRedis(url: string, role: RedisRole, name: string, extra: RedisOptions = {}): Redis {
  const options: RedisOptions = {
    connectionName: name,
    lazyConnect: false,
    enableReadyCheck: true,
    retryStrategy: (times) => Math.min(100 * 2 ** Math.min(times, 6), 2_000),
    reconnectOnError: () => false,
    maxRetriesPerRequest: role === "consumer" ? null : 2,
    ...extra,
  };
  // ioredis 6's overloads add `replyMapping?: "legacy"`, which exactOptionalPropertyTypes rejects.
  const redis = new Redis(url, options as RedisOptions & { replyMapping?: "legacy" });
  // ioredis emits 'error' on every failed reconnect; without a listener Node would crash the process.
  redis.on("error", () => {});
  return redis;
}

/** Closes a connection: QUIT when connected, disconnect otherwise. Never throws. */
export async function closeRedis(redis: Redis): Promise<void> {
  try {
    if (redis.status === "ready") await redis.quit();
    else redis.disconnect();
  } catch {
    redis.disconnect();
  }
}

/**
 * Waits until a connection is ready, at most `timeoutMs`; false when it is not by then (it keeps
 * reconnecting). Start-up waits on this so that a process that says "started" is ready, not
 * still connecting.
 */
export async function whenReady(redis: Redis, timeoutMs: number): Promise<boolean> {
  if (redis.status === "ready") return true;
  return new Promise<boolean>((resolve) => {
    const done = (ok: boolean) => {
      clearTimeout(timer);
      redis.off("ready", onReady);
      resolve(ok);
    };
    const onReady = () => done(true);
    const timer = setTimeout(() => done(false), timeoutMs);
    redis.on("ready", onReady);
  });
}
