import { createHash } from "node:crypto";
import type { Keys } from "@vmcp-keepalive/shared";

/**
 * Least-privilege Redis ACL users, one per role, made from the key layout (`Keys.patterns`, the
 * same templates the keys are built with) so that they cannot drift from it. docs/operations.md,
 * "Redis users", says what each role may and may not do; test/redis-acl.test.ts runs every
 * program and both clients under them and holds that table to what it tried.
 */

export const ACL_ROLES = ["vmcp", "scheduler", "worker", "operator"] as const;
export type AclRole = (typeof ACL_ROLES)[number];

/** `%R~` (read), `%W~` (write) or `~` (both), as Redis 7 ACL selectors write it. */
export type KeyAccess = "read" | "write" | "read-write";

export interface AclKeyGrant {
  /** What the keys are, for people (docs and errors). */
  readonly what: string;
  readonly pattern: string;
  readonly access: KeyAccess;
}

export interface AclRoleRules {
  readonly role: AclRole;
  readonly keys: readonly AclKeyGrant[];
  /** Commands, lower case; `container|subcommand` for one subcommand. */
  readonly commands: readonly string[];
}

export type RedisMode = "standalone" | "sentinel" | "cluster";

/**
 * What every connection sends besides its work: INFO (ioredis's ready check, BullMQ's version
 * check), CLIENT SETNAME (connection names), PING (health checks, the Go client's pool) and SELECT
 * (a db other than 0 in the URL; refused, ioredis would carry on in db 0). AUTH, HELLO and QUIT
 * need no grant.
 */
export const CONNECTION_COMMANDS = ["info", "client|setname", "ping", "select"] as const;

/**
 * On a Redis Cluster: the slot map and ready check of ioredis (CLUSTER SLOTS, CLUSTER INFO) and of
 * redisc (CLUSTER SLOTS), and READONLY / READWRITE, which ioredis sends to a node whose role
 * changed in a failover.
 */
export const CLUSTER_COMMANDS = ["cluster|slots", "cluster|info", "readonly", "readwrite"] as const;

/**
 * BullMQ 6, for every role that uses a queue: what its Lua scripts call (a script's commands are
 * checked against the caller's user, keys included) and what its Queue and Worker send
 * themselves. Data commands only, and every one limited to the role's keys. SCAN and XREAD (used
 * only by Queue methods none of our programs call) are left out. test/redis-acl.test.ts checks
 * this list against the scripts of the installed BullMQ.
 */
export const BULLMQ_COMMANDS = [
  // Sent by Queue and Worker (redis-queue-backend.js).
  "evalsha",
  "eval",
  "bzpopmin",
  "multi",
  "exec",
  // Called by its scripts, some also sent directly (job data, queue meta, logs, getters).
  "del",
  "exists",
  "get",
  "set",
  "incr",
  "incrby",
  "unlink",
  "rename",
  "type",
  "persist",
  "pexpire",
  "pexpireat",
  "pttl",
  "time",
  "hdel",
  "hexists",
  "hget",
  "hgetall",
  "hincrby",
  "hlen",
  "hmget",
  "hmset",
  "hscan",
  "hset",
  "lindex",
  "llen",
  "lpop",
  "lpos",
  "lpush",
  "lrange",
  "lrem",
  "lset",
  "ltrim",
  "rpop",
  "rpoplpush",
  "rpush",
  "sadd",
  "scard",
  "sismember",
  "smembers",
  "srem",
  "sscan",
  "xadd",
  "xdel",
  "xlen",
  "xrange",
  "xread",
  "xtrim",
  "zadd",
  "zcard",
  "zcount",
  "zlexcount",
  "zpopmin",
  "zrange",
  "zrangebylex",
  "zrangebyscore",
  "zrem",
  "zremrangebyrank",
  "zremrangebyscore",
  "zrevrange",
  "zrevrangebyscore",
  "zscore",
] as const;

/** The role's own commands: what our code sends, and what our Lua scripts and Redlock's call. */
const OWN_COMMANDS: Record<AclRole, readonly string[]> = {
  // Lifecycle messages (XADD, or BullMQ), the event stream as a consumer group (XGROUP CREATE …
  // MKSTREAM, XREADGROUP, XACK, XAUTOCLAIM), the pair lock (SET NX PX; release-lock-1.lua: GET,
  // DEL; Redlock over lock nodes: EXISTS, SET, GET, DEL) and reinitialize-pair-1.lua (HMGET,
  // HINCRBY, HDEL, HSET).
  vmcp: ["xadd", "xgroup|create", "xreadgroup", "xack", "xautoclaim", "set", "get", "exists", "del", "evalsha", "eval", "hmget", "hincrby", "hdel", "hset"],
  // The ingress stream's consumer group (and XINFO CONSUMERS / XGROUP DELCONSUMER for consumers
  // gone for an hour), the rejected stream, the scripts of packages/scheduler/lua (with the
  // live-session counts: INCR, DECR), the session mutex, the reaper (SCAN, HMGET), the reconciler
  // and status reads (SCAN, HGETALL, ZSCAN, ZSCORE), and /metrics (XLEN, XPENDING, GET of the
  // session counts, ZCARD, HGET of each breaker).
  scheduler: [
    "xgroup|create",
    "xgroup|delconsumer",
    "xreadgroup",
    "xack",
    "xdel",
    "xautoclaim",
    "xpending",
    "xinfo|consumers",
    "xlen",
    "xadd",
    "evalsha",
    "eval",
    "set",
    "get",
    "del",
    "exists",
    "hexists",
    "hget",
    "hgetall",
    "hkeys",
    "hmget",
    "hset",
    "hdel",
    "hincrby",
    "incr",
    "decr",
    "pexpire",
    "smembers",
    "zscore",
    "zscan",
    "zcard",
    "scan",
    "multi",
    "exec",
  ],
  // The tick scripts of packages/worker/lua (the pair lock taken inside them, or Redlock over lock
  // nodes), HMGET of a pair, and events added to the event stream (XADD … MAXLEN ~).
  worker: ["evalsha", "eval", "set", "get", "exists", "del", "hget", "hgetall", "hmget", "hincrby", "hset", "hdel", "xadd"],
  // `vmcp-keepalive status` (SCAN, HGETALL of each pair), KEDA's redis scaler (LLEN of the
  // keepalive wait lists) and reading rejected ingress entries (XRANGE, XREVRANGE).
  operator: ["scan", "hgetall", "llen", "xrange", "xrevrange"],
};

const USES_BULLMQ: Record<AclRole, boolean> = { vmcp: true, scheduler: true, worker: true, operator: false };

/** The key grants of each role. */
function keyGrants(keys: Keys): Record<AclRole, AclKeyGrant[]> {
  const p = keys.patterns;
  const rw = (what: string, pattern: string): AclKeyGrant => ({ what, pattern, access: "read-write" });
  const r = (what: string, pattern: string): AclKeyGrant => ({ what, pattern, access: "read" });
  const w = (what: string, pattern: string): AclKeyGrant => ({ what, pattern, access: "write" });
  return {
    vmcp: [
      rw("vmcp-sessions queue", p.sessionsQueue),
      w("ingress stream", keys.sessionMessagesStream),
      rw("vmcp-events queue", p.eventsQueue),
      rw("event stream", keys.sessionEventsStream),
      rw("pair locks", p.pairLock),
      rw("pair hashes", p.pair),
    ],
    scheduler: [
      rw("vmcp-sessions queue", p.sessionsQueue),
      rw("ingress stream", keys.sessionMessagesStream),
      rw("rejected stream", keys.sessionMessagesRejectedStream),
      rw("keepalive queues", p.keepaliveQueues),
      rw("vmcp-events queue", p.eventsQueue),
      r("event stream", keys.sessionEventsStream),
      rw("session hashes", p.session),
      rw("live-session counts", p.sessionCount),
      rw("reaper turn", p.reaperPass),
      rw("session mutexes", p.sessionMutex),
      rw("pair hashes", p.pair),
      r("backend hashes", p.backend),
    ],
    worker: [
      rw("keepalive queues", p.keepaliveQueues),
      rw("vmcp-events queue", p.eventsQueue),
      w("event stream", keys.sessionEventsStream),
      rw("pair hashes", p.pair),
      rw("pair locks", p.pairLock),
      rw("backend hashes", p.backend),
    ],
    operator: [r("pair hashes", p.pair), r("keepalive wait lists", p.keepaliveWaitLists), r("rejected stream", keys.sessionMessagesRejectedStream)],
  };
}

/** The rules of every role for a deployment's key layout and Redis mode. */
export function aclRules(keys: Keys, mode: RedisMode): readonly AclRoleRules[] {
  const grants = keyGrants(keys);
  return ACL_ROLES.map((role) => {
    const commands = new Set<string>([
      ...CONNECTION_COMMANDS,
      ...(mode === "cluster" ? CLUSTER_COMMANDS : []),
      // The Go client checks that a Sentinel's master is one with ROLE (redigo's sentinel.TestRole).
      ...(mode === "sentinel" && role === "vmcp" ? ["role"] : []),
      ...(USES_BULLMQ[role] ? BULLMQ_COMMANDS : []),
      ...OWN_COMMANDS[role],
    ]);
    return { role, keys: grants[role], commands: [...commands] };
  });
}

/** The environment variable that holds a role's password. */
export function aclPasswordVariable(role: AclRole): string {
  return `VMK_ACL_${role.toUpperCase()}_PASSWORD`;
}

const SELECTOR: Record<KeyAccess, string> = { read: "%R~", write: "%W~", "read-write": "~" };

/**
 * One line of a Redis ACL file for a role: `user <role> on #<sha256 of the password>
 * resetchannels <keys> -@all <commands>`. Only the password's SHA-256 is written. The line also
 * works as `ACL SETUSER <role> reset <the rest>`.
 */
export function aclUserLine(rules: AclRoleRules, password: string): string {
  const sha = createHash("sha256").update(password, "utf8").digest("hex");
  const keys = rules.keys.map((k) => `${SELECTOR[k.access]}${k.pattern}`);
  return ["user", rules.role, "on", `#${sha}`, "resetchannels", ...keys, "-@all", ...rules.commands.map((c) => `+${c}`)].join(" ");
}
