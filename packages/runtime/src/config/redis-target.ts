import { readFileSync } from "node:fs";
import { createKeys, keyLayout, type Keys, type RedisTarget, type RedisTls } from "@vmcp-keepalive/shared";
import { UsageError } from "../usage-error.js";
import type { KeepaliveConfig } from "./types.js";

/**
 * The main Redis of a config; undefined in standalone mode without `redis.url` (only the dev
 * command runs that way, on its embedded redis-server).
 */
export function redisTargetOf(config: KeepaliveConfig): RedisTarget | undefined {
  const r = config.redis;
  const tls = readTls(r.tls, "redis.tls");
  if (r.mode === "cluster") return { mode: "cluster", nodes: r.nodes, tls };
  if (r.mode === "sentinel") {
    return { mode: "sentinel", sentinels: r.sentinels, name: r.sentinelName ?? "", url: r.url, tls, sentinelUsername: r.sentinelUsername, sentinelPassword: r.sentinelPassword };
  }
  return r.url ? { mode: "standalone", url: r.url, tls } : undefined;
}

/** The lock nodes of a config (`lock.redis_urls`), each with its TLS (`lock.tls`, else `redis.tls`). */
export function lockTargetsOf(config: KeepaliveConfig): RedisTarget[] {
  const tls = readTls(config.lock.tls ?? config.redis.tls, config.lock.tls ? "lock.tls" : "redis.tls");
  return config.lock.redisUrls.map((url) => ({ mode: "standalone", url, tls }));
}

type TlsFiles = KeepaliveConfig["redis"]["tls"];

/**
 * Reads the PEM files a `redis.tls` / `lock.tls` section names, when a program connects. A file
 * that cannot be read, or holds no PEM, is a {@link UsageError} naming the key (exit 2).
 */
function readTls(files: TlsFiles, key: string): RedisTls | undefined {
  if (!files) return undefined;
  const read = (path: string | undefined, name: string): string | undefined => {
    if (path === undefined) return undefined;
    let pem: string;
    try {
      pem = readFileSync(path, "utf8");
    } catch (err) {
      throw new UsageError(`${key}.${name}: cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
    }
    if (!pem.includes("-----BEGIN ")) throw new UsageError(`${key}.${name}: ${path} is not a PEM file (no -----BEGIN line)`);
    return pem;
  };
  return { ca: read(files.caFile, "ca_file"), cert: read(files.certFile, "cert_file"), key: read(files.keyFile, "key_file"), servername: files.servername };
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
