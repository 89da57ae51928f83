import { Cluster, Redis, type ClusterOptions, type RedisOptions } from "ioredis";

/** A connection to the main Redis: one node (standalone or behind Sentinel) or a Redis Cluster. */
export type RedisConnection = Redis | Cluster;

/**
 * TLS to Redis with a private CA or client certificates: PEM contents (not file names) of the CA
 * to trust, the client certificate and its key, and the name the server's certificate must carry
 * (default: the host connected to). Given, it turns TLS on whatever the URL's scheme; absent, a
 * `rediss://` URL uses TLS with the system's trust store.
 */
export interface RedisTls {
  readonly ca?: string | undefined;
  readonly cert?: string | undefined;
  readonly key?: string | undefined;
  readonly servername?: string | undefined;
}

/**
 * Where the main Redis is. The same three modes for the programs (`redis.mode`), the CLI and
 * `createVmcpClient`. `tls` applies to every connection of the target: the node, the Sentinels
 * and the data nodes they name, every Cluster node.
 */
export type RedisTarget =
  /** One node at `url` (redis:// or rediss://, credentials and db in the URL). */
  | { readonly mode: "standalone"; readonly url: string; readonly tls?: RedisTls | undefined }
  /**
   * The master that the Sentinels at `sentinels` (`host:port`) name `name`. `url`, when set,
   * gives the data nodes' credentials, db and TLS (`rediss://`); its host is not used. The
   * Sentinels' own user and password: `sentinelUsername`, `sentinelPassword` (default: the data
   * nodes' password, as many charts set them).
   */
  | {
      readonly mode: "sentinel";
      readonly sentinels: readonly string[];
      readonly name: string;
      readonly url?: string | undefined;
      readonly tls?: RedisTls | undefined;
      readonly sentinelUsername?: string | undefined;
      readonly sentinelPassword?: string | undefined;
    }
  /** A Redis Cluster reached through the seed nodes `nodes` (redis:// or rediss:// URLs). */
  | { readonly mode: "cluster"; readonly nodes: readonly string[]; readonly tls?: RedisTls | undefined };

/** ioredis/Node TLS options of a {@link RedisTls}. */
function tlsOptions(tls: RedisTls): NonNullable<RedisOptions["tls"]> {
  return {
    ...(tls.ca !== undefined ? { ca: tls.ca } : {}),
    ...(tls.cert !== undefined ? { cert: tls.cert } : {}),
    ...(tls.key !== undefined ? { key: tls.key } : {}),
    ...(tls.servername !== undefined ? { servername: tls.servername } : {}),
  };
}

export type RedisRole =
  /** Blocking BullMQ consumers: must retry forever (`maxRetriesPerRequest: null`, BullMQ requires it). */
  | "consumer"
  /** Producers and state reads/writes: fail a command fast while Redis is away instead of queueing it forever. */
  | "client";

const backoff = (times: number) => Math.min(100 * 2 ** Math.min(times, 6), 2_000);

/**
 * Client-side deadline of a blocking command (BullMQ's BZPOPMIN on a queue's marker) beyond its
 * own server-side timeout. After a Redis Cluster master is SIGKILLed, a BZPOPMIN sent to it can
 * stay unanswered. BullMQ's own watchdog then gives up on it after timeout + 1 s and resets the
 * blocking connection — and on a Cluster that reset can hang for good (`reconnectBlocking` stays
 * pending while the cluster client says `ready`), so the shard's consumer would never take a job
 * again while its jobs pile up in `wait`. With this grace (below BullMQ's 1 s) ioredis settles
 * the stuck command first, as an ordinary empty wait; the consumer simply asks again, on the
 * promoted node. test/cluster.test.ts kills a master under load and holds that no pair is lost.
 */
export const BLOCKING_GRACE_MS = 500;
/** Client-side deadline of a blocking command that blocks without a timeout of its own. */
export const BLOCKING_TIMEOUT_MS = 10_000;

/** host:port of a `host:port` string or a redis URL (port 6379 when the URL has none); throws naming the bad entry. */
export function parseHostPort(entry: string): { host: string; port: number } {
  const url = /^rediss?:\/\//.test(entry) ? new URL(entry) : undefined;
  const text = url ? `${url.hostname}:${url.port || "6379"}` : entry;
  const m = /^(\[[^\]]+\]|[^:]+):(\d{1,5})$/.exec(text);
  const port = m ? Number(m[2]) : NaN;
  if (!m || !(port > 0 && port < 65_536)) throw new RangeError(`${JSON.stringify(entry)} is not host:port`);
  return { host: m[1]!.replace(/^\[|\]$/g, ""), port };
}

/** Credentials, db and TLS of a redis URL as ioredis options. */
function urlOptions(url: string | undefined): RedisOptions {
  if (!url) return {};
  const u = new URL(url);
  const options: RedisOptions = {};
  if (u.username) options.username = decodeURIComponent(u.username);
  if (u.password) options.password = decodeURIComponent(u.password);
  const db = u.pathname.replace(/^\//, "");
  if (db) options.db = Number(db);
  if (u.protocol === "rediss:") options.tls = {};
  return options;
}

/**
 * Creates an ioredis connection for one role. Reconnects forever with capped backoff so a Redis
 * outage never kills the process; callers see errors (client role) or waits (consumer role).
 * A Sentinel connection follows the master through failovers; a Cluster connection follows slot
 * moves and replica promotions.
 */
export function createRedis(url: string, role: RedisRole, name: string, extra?: RedisOptions): Redis;
export function createRedis(target: string | RedisTarget, role: RedisRole, name: string, extra?: RedisOptions): RedisConnection;
export function createRedis(target: string | RedisTarget, role: RedisRole, name: string, extra: RedisOptions = {}): RedisConnection {
  const resolved: RedisTarget = typeof target === "string" ? { mode: "standalone", url: target } : target;
  const options: RedisOptions = {
    connectionName: name,
    lazyConnect: false,
    enableReadyCheck: true,
    retryStrategy: backoff,
    reconnectOnError: () => false,
    maxRetriesPerRequest: role === "consumer" ? null : 2,
    ...(role === "consumer" ? { blockingTimeout: BLOCKING_TIMEOUT_MS, blockingTimeoutGrace: BLOCKING_GRACE_MS } : {}),
    ...extra,
  };
  const tls = resolved.tls ? tlsOptions(resolved.tls) : undefined;
  let redis: RedisConnection;
  if (resolved.mode === "cluster") {
    // Per-node options: the cluster retries and queues itself (retryStrategy, offline queue).
    const { lazyConnect, enableOfflineQueue, retryStrategy: _retry, ...nodeOptions } = options;
    const first = resolved.nodes[0];
    const clusterOptions: ClusterOptions = {
      redisOptions: { ...urlOptions(first), ...(tls ? { tls } : {}), ...nodeOptions },
      clusterRetryStrategy: backoff,
      enableReadyCheck: true,
      scaleReads: "master",
      // A failover: the cluster says CLUSTERDOWN until a replica is promoted (a few seconds after
      // cluster-node-timeout), then MOVED. Each retry counts as a redirection: 50 × 300 ms lets a
      // command ride out a failover of up to 15 s instead of failing after ioredis's default 16.
      maxRedirections: 50,
      retryDelayOnFailover: 300,
      retryDelayOnClusterDown: 300,
      retryDelayOnTryAgain: 300,
      slotsRefreshTimeout: 2_000,
      ...(lazyConnect !== undefined ? { lazyConnect } : {}),
      ...(enableOfflineQueue !== undefined ? { enableOfflineQueue } : {}),
    };
    redis = new Cluster(
      resolved.nodes.map((u) => parseHostPort(u)),
      clusterOptions as ClusterOptions & { redisOptions: { replyMapping?: "legacy" } },
    );
  } else if (resolved.mode === "sentinel") {
    const dataNode = urlOptions(resolved.url);
    const sentinelOptions = {
      ...dataNode,
      // Sentinels usually share the data nodes' password (e.g. the Bitnami chart), unless told otherwise.
      ...(dataNode.password !== undefined ? { sentinelPassword: dataNode.password } : {}),
      ...(resolved.sentinelUsername !== undefined ? { sentinelUsername: resolved.sentinelUsername } : {}),
      ...(resolved.sentinelPassword !== undefined ? { sentinelPassword: resolved.sentinelPassword } : {}),
      // TLS to the Sentinels and to the data nodes they name.
      ...(tls ? { tls, sentinelTLS: tls, enableTLSForSentinelMode: true } : {}),
      ...options,
      sentinels: resolved.sentinels.map((s) => parseHostPort(s)),
      name: resolved.name,
      sentinelRetryStrategy: backoff,
      // After a failover, the old master (now a replica) answers READONLY: reconnect to the new one.
      reconnectOnError: (err: Error) => err.message.startsWith("READONLY"),
    };
    redis = new Redis(sentinelOptions as RedisOptions & { replyMapping?: "legacy" });
  } else {
    // ioredis 6's overloads add `replyMapping?: "legacy"`, which exactOptionalPropertyTypes rejects.
    redis = new Redis(resolved.url, { ...options, ...(tls ? { tls } : {}) } as RedisOptions & { replyMapping?: "legacy" });
  }
  // ioredis emits 'error' on every failed reconnect; without a listener Node would crash the process.
  redis.on("error", () => {});
  return redis;
}

/**
 * A new connection to the same Redis as `redis`, for another role (e.g. the blocking connection
 * of a BullMQ consumer made from a caller's connection). The caller owns and closes it.
 */
export function duplicateRedis(redis: RedisConnection, role: RedisRole, name: string): RedisConnection {
  const roleOptions =
    role === "consumer" ? { maxRetriesPerRequest: null, blockingTimeout: BLOCKING_TIMEOUT_MS, blockingTimeoutGrace: BLOCKING_GRACE_MS } : { maxRetriesPerRequest: 2, blockingTimeout: undefined };
  const copy =
    redis instanceof Cluster
      ? redis.duplicate(undefined, { redisOptions: { ...redis.options.redisOptions, ...roleOptions, connectionName: name } } as ClusterOptions & { redisOptions: { replyMapping?: "legacy" } })
      : redis.duplicate({ ...roleOptions, connectionName: name });
  copy.on("error", () => {});
  return copy;
}

/** Where a target points, for logs: the URL without credentials, the sentinels or the seed nodes. */
export function describeRedisTarget(target: RedisTarget): string {
  const redact = (u: string) => {
    try {
      const url = new URL(u);
      if (url.password) url.password = "***";
      return url.toString();
    } catch {
      return u;
    }
  };
  if (target.mode === "cluster") return `cluster ${target.nodes.map(redact).join(",")}`;
  if (target.mode === "sentinel") return `sentinel ${target.name}@${target.sentinels.join(",")}`;
  return redact(target.url);
}

/**
 * Closes a connection: QUIT when connected (at most `quitTimeoutMs`), disconnect otherwise or
 * after that. Never throws, never hangs: a Cluster whose pool still holds a node that died in a
 * failover would queue its QUIT to that node forever.
 */
export async function closeRedis(redis: RedisConnection, quitTimeoutMs = 2_000): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  try {
    if (redis.status === "ready") {
      await Promise.race([
        redis.quit(),
        new Promise<void>((resolve) => {
          timer = setTimeout(resolve, quitTimeoutMs);
        }),
      ]);
    }
  } catch {
    // Disconnected below.
  } finally {
    clearTimeout(timer);
  }
  if (redis.status !== "end") redis.disconnect();
}

/**
 * Waits until a connection is ready, at most `timeoutMs`; false when it is not by then (it keeps
 * reconnecting). Start-up waits on this so that a process that says "started" is ready, not
 * still connecting.
 */
export async function whenReady(redis: RedisConnection, timeoutMs: number): Promise<boolean> {
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

/** The masters of a connection: the cluster's master nodes, or the connection itself. */
export function masterNodes(redis: RedisConnection): Redis[] {
  return redis instanceof Cluster ? redis.nodes("master") : [redis];
}

/**
 * Every key matching `pattern` on every master (SCAN; a Cluster is scanned node by node). Keys
 * may repeat (SCAN's guarantee); callers deduplicate when it matters.
 */
export async function* scanKeys(redis: RedisConnection, pattern: string, count = 1_000): AsyncGenerator<string[]> {
  for (const node of masterNodes(redis)) {
    let cursor = "0";
    do {
      const [next, batch] = await node.scan(cursor, "MATCH", pattern, "COUNT", count);
      cursor = next;
      if (batch.length > 0) yield batch;
    } while (cursor !== "0");
  }
}
