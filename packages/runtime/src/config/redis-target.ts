import { createKeys, keyLayout, type Keys, type RedisTarget } from "@vmcp-keepalive/shared";
import { UsageError } from "../usage-error.js";
import type { KeepaliveConfig } from "./types.js";

/**
 * The main Redis of a config; undefined in standalone mode without `redis.url` (only the dev
 * command runs that way, on its embedded redis-server).
 */
export function redisTargetOf(config: KeepaliveConfig): RedisTarget | undefined {
  const r = config.redis;
  if (r.mode === "cluster") return { mode: "cluster", nodes: r.nodes, tls: r.tls };
  if (r.mode === "sentinel") {
    return { mode: "sentinel", sentinels: r.sentinels, name: r.sentinelName ?? "", url: r.url, tls: r.tls, sentinelUsername: r.sentinelUsername, sentinelPassword: r.sentinelPassword };
  }
  return r.url ? { mode: "standalone", url: r.url, tls: r.tls } : undefined;
}

/** The lock nodes of a config (`lock.redis_urls`), each with its TLS (`lock.tls`, else `redis.tls`). */
export function lockTargetsOf(config: KeepaliveConfig): RedisTarget[] {
  return config.lock.redisUrls.map((url) => ({ mode: "standalone", url, tls: config.lock.tls }));
}

/** The main Redis of a config, or a {@link UsageError} naming the missing key. */
export function requireRedisTarget(config: KeepaliveConfig): RedisTarget {
  const target = redisTargetOf(config);
  if (!target) throw new UsageError("redis.url: not set (set it in the config file or REDIS_URL, or choose redis.mode sentinel/cluster)");
  return target;
}

/** The key layout of a config: its prefix, its shards, hash-tagged on a Cluster or when sharded. */
export function keysOf(config: KeepaliveConfig): Keys {
  return createKeys(config.redis.prefix, keyLayout(config.redis.mode === "cluster", config.keepalive.shards));
}
