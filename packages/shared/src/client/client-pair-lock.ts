import { Cluster, type ClusterOptions, type RedisOptions } from "ioredis";
import { closeInOrder } from "../close-in-order.js";
import { createLocker, type Locker, type TryLockResult } from "../lock/locker.js";
import { closeRedis, createRedis, describeRedisTarget, type RedisConnection, type RedisTarget, type RedisTls } from "../redis/connection.js";

/** No offline queue, no retries: a command to a Redis that is away fails at once instead of waiting for it to come back. */
const FAIL_FAST = { enableOfflineQueue: false, maxRetriesPerRequest: 0 } as const;

export interface ClientPairLockOptions {
  /** The main Redis: a target to connect to, or the caller's connection to copy. */
  readonly main: { readonly target: RedisTarget } | { readonly connection: RedisConnection };
  /** Independent lock nodes (a Redlock quorum); empty: the lock lives on the main Redis. */
  readonly lockRedisUrls: readonly string[];
  /** TLS to the lock nodes. */
  readonly lockTls?: RedisTls | undefined;
  /** Key prefix, for connection names. */
  readonly prefix: string;
  /** How long `tryLock` waits for connections still making their first connection. */
  readonly connectWaitMs: number;
}

/**
 * The pair lock of `reinitializeBackend` on connections of its own that fail fast (as the
 * workers' lock nodes): while a lock node or the main Redis is down, taking the lock and writing
 * under it fail at once rather than sit in an offline queue until the connection gives up.
 *
 * A connection still making its first connection (a client just created) is waited for, at most
 * `connectWaitMs` (`tryLock`) or `waitMs` (`lock`); one that is reconnecting counts as down.
 * Fewer reachable lock nodes than a quorum answers `lock_unavailable` with an error naming them.
 */
export interface ClientPairLock {
  readonly locker: Locker;
  /** The main Redis, failing fast, for the writes made under the lock. */
  readonly connection: RedisConnection;
  /** Closes the connections it opened. */
  close(): Promise<void>;
}

interface Node {
  readonly redis: RedisConnection;
  readonly label: string;
}

export function openClientPairLock(options: ClientPairLockOptions): ClientPairLock {
  const { prefix } = options;
  const main: Node =
    "target" in options.main
      ? { redis: createRedis(options.main.target, "client", `vmk-vmcp-lock@${prefix}`, FAIL_FAST), label: describeRedisTarget(options.main.target) }
      : { redis: failFastCopy(options.main.connection, `vmk-vmcp-lock@${prefix}`), label: "the main Redis" };
  const nodes: Node[] =
    options.lockRedisUrls.length === 0
      ? [main]
      : options.lockRedisUrls.map((url, i) => ({
          redis: createRedis({ mode: "standalone", url, tls: options.lockTls }, "client", `vmk-vmcp-lock-${i}@${prefix}`, FAIL_FAST),
          label: describeRedisTarget({ mode: "standalone", url }),
        }));
  const opened = nodes[0] === main ? [main] : [main, ...nodes];
  const inner = createLocker(nodes.map((n) => n.redis));
  const quorum = Math.floor(nodes.length / 2) + 1;

  /** Waits for first connections; undefined when a quorum of lock nodes is reachable, else the answer. */
  const unreachable = async (waitMs: number): Promise<TryLockResult | undefined> => {
    const reachable = await Promise.all(opened.map((n) => firstConnection(n.redis, waitMs)));
    const down = nodes.filter((n) => !reachable[opened.indexOf(n)]);
    if (nodes.length - down.length >= quorum) return undefined;
    const error = new Error(`pair lock unavailable: ${down.map((n) => n.label).join(", ")} not reachable (${nodes.length - down.length} of ${nodes.length} lock nodes, ${quorum} needed)`);
    return { acquired: false, reason: "lock_unavailable", error };
  };

  return {
    locker: {
      async tryLock(resource, ttlMs) {
        return (await unreachable(options.connectWaitMs)) ?? inner.tryLock(resource, ttlMs);
      },
      async lock(resource, ttlMs, waitMs) {
        const started = Date.now();
        return (await unreachable(waitMs)) ?? inner.lock(resource, ttlMs, Math.max(0, waitMs - (Date.now() - started)));
      },
    },
    connection: main.redis,
    close: () => closeInOrder(opened.map((n) => () => closeRedis(n.redis))),
  };
}

/** A failing-fast copy of the caller's connection (same Redis, same credentials). */
function failFastCopy(redis: RedisConnection, name: string): RedisConnection {
  const copy =
    redis instanceof Cluster
      ? redis.duplicate(undefined, {
          enableOfflineQueue: false,
          lazyConnect: false,
          redisOptions: { ...redis.options.redisOptions, maxRetriesPerRequest: 0, connectionName: name },
        } as ClusterOptions & { redisOptions: { replyMapping?: "legacy" } })
      : redis.duplicate({ ...FAIL_FAST, lazyConnect: false, connectionName: name } as RedisOptions & { replyMapping?: "legacy" });
  copy.on("error", () => {});
  return copy;
}

/** Statuses of a connection whose (first) connection attempt is still under way. */
const CONNECTING = new Set(["wait", "connecting", "connect"]);

/** True once `redis` is ready; false at once when it is reconnecting or closed, or when the attempt under way fails or outlasts `waitMs`. */
function firstConnection(redis: RedisConnection, waitMs: number): Promise<boolean> {
  if (redis.status === "ready") return Promise.resolve(true);
  if (!CONNECTING.has(redis.status) || waitMs <= 0) return Promise.resolve(false);
  return new Promise<boolean>((resolve) => {
    const settle = (ok: boolean) => () => {
      clearTimeout(timer);
      redis.off("ready", ready).off("close", down).off("reconnecting", down).off("end", down);
      resolve(ok);
    };
    const ready = settle(true);
    const down = settle(false);
    const timer = setTimeout(down, waitMs);
    redis.on("ready", ready).on("close", down).on("reconnecting", down).on("end", down);
  });
}
