import { redisErrorCause, type RedisConnection } from "@vmcp-keepalive/shared";
import type { Logger } from "./logging/logger.js";

/**
 * The state of a program's Redis connections as an operator needs it: while a connection fails,
 * its cause in one line (TLS, authentication, network — {@link redisErrorCause}), logged once per
 * cause rather than once per reconnect attempt, and shown by `/readyz`; a line again when it
 * connects. The errors BullMQ queues and workers report about the same connections go through
 * {@link RedisHealth.report} and are deduplicated the same way.
 */
export interface RedisHealth {
  /** Follows a connection's `error` and `ready` events under the name `what` ("main Redis", "lock node 0"). */
  watch(redis: RedisConnection, what: string): void;
  /** An error about the connection named `what`: logged when its cause is new. */
  report(what: string, err: unknown): void;
  /** The current cause of every failing connection, by name. */
  causes(): Readonly<Record<string, string>>;
}

export function createRedisHealth(log: Logger): RedisHealth {
  const failing = new Map<string, string>();
  const report = (what: string, err: unknown) => {
    const cause = redisErrorCause(err);
    if (failing.get(what) === cause) return;
    failing.set(what, cause);
    log.error({ redis: what, cause }, `${what}: ${cause}; retrying`);
  };
  return {
    watch(redis, what) {
      redis.on("error", (err: unknown) => report(what, err));
      redis.on("ready", () => {
        if (failing.delete(what)) log.info({ redis: what }, `${what}: connected`);
      });
    },
    report,
    causes: () => Object.fromEntries(failing),
  };
}
