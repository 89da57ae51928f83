import { QUEUE_EVENTS, QUEUE_KEEPALIVE, QUEUE_SESSIONS, STREAM_SESSION_EVENTS, STREAM_SESSION_MESSAGES } from "../names.js";
import { hashSlot } from "./hash-slot.js";

/** Number of Redis Cluster hash slots. */
export const CLUSTER_SLOTS = 16_384;

/** Default `keepalive.shards` on a Redis Cluster (1 elsewhere). */
export const DEFAULT_CLUSTER_SHARDS = 16;

/** Most keepalive shards (`keepalive.shards`). */
export const MAX_SHARDS = 1_024;

/** Where a BullMQ queue lives: its name and its key prefix. */
export interface QueueLocation {
  readonly name: string;
  readonly prefix: string;
}

/**
 * Every Redis key this project writes (besides BullMQ's own, which live under the queue prefixes
 * below). Documented for other-language vMCPs in docs/contract.md; keep the two in step.
 *
 * Pairs go to one of `shards` keepalive shards by the hash of their session id
 * ({@link shardOfSession}). A shard's keepalive queue, its sessions, pairs, pair locks and session
 * mutexes share one key prefix; when `tagged`, that prefix carries a Redis Cluster hash tag, so
 * every key of a shard sits in one hash slot and no script crosses slots. A backend's breaker hash
 * and the sessions and events queues have hash tags of their own. Untagged with one shard (the
 * standalone default) is the original single-prefix layout.
 */
export interface Keys {
  readonly prefix: string;
  /** Number of keepalive shards (1 = no sharding). */
  readonly shards: number;
  /** True when keys carry hash tags (cluster mode, or more than one shard). */
  readonly tagged: boolean;
  /** The shard of a session (every pair of the session lives in it). */
  shardOf(sessionId: string): number;
  /** Key prefix of one shard: `<prefix>` untagged, `<prefix>:{<tag>}` tagged. */
  shardPrefix(shard: number): string;
  /** Hash: one vMCP session (sequence, TTL, expiry, and a `b:<backendId>` field per registered backend). */
  session(sessionId: string): string;
  /**
   * String: how many live sessions one shard holds (`vmk_registered_sessions`), kept by the
   * scheduler's scripts as they create and end sessions. The reaper finds expired sessions by
   * SCAN, not through an index: an index entry would cost Redis bytes per session.
   */
  sessionCount(shard: number): string;
  /** String: whose turn it is to run the reaper's pass (a lock one scheduler holds for most of an interval). */
  readonly reaperPass: string;
  /** Hash: one session×backend pair (backend session id, protocol version, epoch, last outcome). */
  pair(sessionId: string, backendId: string): string;
  /** Redlock resource of a pair (contract: `<shard prefix>:lock:<sessionId>:<backendId>`). */
  pairLock(sessionId: string, backendId: string): string;
  /** Short mutex that serializes one session's lifecycle messages across scheduler processes. */
  sessionMutex(sessionId: string): string;
  /**
   * Hash: one backend's shared state — circuit breaker and learned keepalive method. Field
   * `state` is `closed` (or absent), `open`, or `probing`. The field names are BACKEND_FIELDS
   * (state/backend-state.ts; docs/keepalive-policy.md lists them); only the worker's tick scripts
   * (packages/worker/lua/) write them. The metrics gauge reads `state` only.
   * Tagged: in a slot of its own, so the breaker is one for the whole cluster.
   */
  backend(backendId: string): string;
  /** SCAN pattern of every pair key of every shard (`patterns.pair`). */
  readonly pairPattern: string;
  /**
   * Glob patterns (Redis `SCAN MATCH` and ACL `~` syntax) matching every key of each kind, in
   * every shard: built by the same templates as the keys themselves, with `*` for each id and,
   * when tagged, for the shard's hash tag. The ACL rules (`vmcp-keepalive acl`) are made of them.
   */
  readonly patterns: KeyPatterns;
  /** SCAN pattern of every session hash of every shard (`patterns.session`). */
  readonly sessionPattern: string;
  /** The session a session hash key names (any shard), or undefined for any other key. */
  parseSessionKey(key: string): string | undefined;
  /** The pair a pair key names (any shard), or undefined for any other key. */
  parsePairKey(key: string): { sessionId: string; backendId: string } | undefined;
  /** The keepalive queue of one shard (`keepalive`, or `keepalive-<n>` when sharded). */
  keepaliveQueue(shard: number): QueueLocation;
  /** The `vmcp-sessions` queue (lifecycle messages from vMCPs). */
  readonly sessionsQueue: QueueLocation;
  /** The `vmcp-events` queue (events for vMCPs). */
  readonly eventsQueue: QueueLocation;
  /**
   * Stream: lifecycle messages from vMCPs that do not use BullMQ, one per entry in field
   * `message` (`<sessions prefix>:session-messages`, beside the `vmcp-sessions` queue's keys).
   */
  readonly sessionMessagesStream: string;
  /** Stream: ingress entries the schedulers rejected or gave up on, capped (fields `message`, `reason`, `detail`, `id`). */
  readonly sessionMessagesRejectedStream: string;
  /** Stream: every event for vMCPs, field `event`, capped (`<events prefix>:session-events`). */
  readonly sessionEventsStream: string;
}

/**
 * Glob patterns of the key kinds of {@link Keys}. Prefixes and ids hold none of the glob
 * characters (`* ? [ ] \`), and ids no `{ }`; the only hash tags are `{<shard>.<k>}`,
 * `{sessions}`, `{events}` and `{<backend id>}`. So the `{*}` of a tagged pattern stands for a
 * shard tag and cannot reach into a key of another kind: a `*` matches any characters, but what
 * follows it (`}:pair:`, `}:lock:`, …) occurs in no key of another kind.
 */
export interface KeyPatterns {
  /** Session hashes (and the legacy backend sets of 0.1.0, `<session>:backends`). */
  readonly session: string;
  /** The live-session counters, one per shard. */
  readonly sessionCount: string;
  /** The reaper's turn lock. */
  readonly reaperPass: string;
  readonly pair: string;
  readonly pairLock: string;
  readonly sessionMutex: string;
  readonly backend: string;
  /** Every BullMQ key of every shard's keepalive queue. */
  readonly keepaliveQueues: string;
  /** BullMQ's wait list of every shard's keepalive queue: jobs due and not yet taken (the backlog). */
  readonly keepaliveWaitLists: string;
  /** Every BullMQ key of the `vmcp-sessions` queue. */
  readonly sessionsQueue: string;
  /** Every BullMQ key of the `vmcp-events` queue. */
  readonly eventsQueue: string;
}

export interface KeyLayoutOptions {
  /** Keepalive shards. @defaultValue 1 */
  readonly shards?: number;
  /** Hash-tag the keys (required on a Redis Cluster). @defaultValue true when `shards` > 1 */
  readonly tagged?: boolean;
}

/** The layout of a deployment: `shards` (default 16 on a Cluster, else 1); tagged on a Cluster or when sharded. */
export function keyLayout(cluster: boolean, shards?: number): Required<KeyLayoutOptions> {
  const n = shards ?? (cluster ? DEFAULT_CLUSTER_SHARDS : 1);
  return { shards: n, tagged: cluster || n > 1 };
}

/**
 * The shard of a session: the shard whose share of the slot range holds the session id's own
 * hash slot (`CLUSTER KEYSLOT`), `⌊slot × shards / 16384⌋`. CRC16's high bits spread sequential
 * ids evenly (6,000 ids `cl-0`…: 365-385 per shard of 16), its low bits do not (324-436 with
 * `slot mod 16`).
 */
export function shardOfSession(sessionId: string, shards: number): number {
  return shards <= 1 ? 0 : Math.floor((hashSlot(sessionId) * shards) / CLUSTER_SLOTS);
}

/**
 * The hash tag of shard `shard` of `shards`: the first string `<shard>.<k>` (k = 0, 1, …) whose
 * hash slot falls in the shard's equal share of the slot range, so that shards spread evenly
 * over masters that own equal contiguous slot ranges (what `redis-cli --cluster create` assigns).
 */
export function shardTag(shard: number, shards: number): string {
  const from = Math.floor((shard * CLUSTER_SLOTS) / shards);
  const to = Math.floor(((shard + 1) * CLUSTER_SLOTS) / shards);
  for (let k = 0; ; k++) {
    const tag = `${shard}.${k}`;
    const slot = hashSlot(tag);
    if (slot >= from && slot < to) return tag;
  }
}

export function createKeys(prefix: string, options: KeyLayoutOptions = {}): Keys {
  const shards = options.shards ?? 1;
  if (!Number.isInteger(shards) || shards < 1 || shards > MAX_SHARDS) throw new RangeError(`shards must be an integer 1-${MAX_SHARDS}, got ${shards}`);
  const tagged = options.tagged ?? shards > 1;
  if (tagged && /[{}]/.test(prefix)) throw new RangeError(`prefix ${JSON.stringify(prefix)}: no { } when keys are hash-tagged (cluster mode or keepalive.shards > 1); the layout adds its own tags`);
  const shardPrefixes = Array.from({ length: shards }, (_, i) => (tagged ? `${prefix}:{${shardTag(i, shards)}}` : prefix));
  const shardOf = (sessionId: string) => shardOfSession(sessionId, shards);
  const of = (sessionId: string) => shardPrefixes[shardOf(sessionId)]!;
  const shardPrefix = (shard: number) => {
    const p = shardPrefixes[shard];
    if (p === undefined) throw new RangeError(`shard ${shard} out of range 0-${shards - 1}`);
    return p;
  };
  // One template per key kind, used for the keys and, with `*` for ids and tags, for the patterns.
  const anyShard = tagged ? `${prefix}:{*}` : prefix;
  const sessionKey = (sp: string, s: string) => `${sp}:session:${s}`;
  const sessionCountKey = (sp: string) => `${sp}:session-count`;
  const pairKeyOf = (sp: string, s: string, b: string) => `${sp}:pair:${s}:${b}`;
  const lockKey = (sp: string, s: string, b: string) => `${sp}:lock:${s}:${b}`;
  const mutexKey = (sp: string, s: string) => `${sp}:smutex:${s}`;
  const backendKey = (b: string) => (tagged ? `${prefix}:backend:{${b}}` : `${prefix}:backend:${b}`);
  const keepaliveName = (shard: number | "*") => (shards === 1 ? QUEUE_KEEPALIVE : `${QUEUE_KEEPALIVE}-${shard}`);
  const queueKeys = (q: QueueLocation, suffix: string) => `${q.prefix}:${q.name}:${suffix}`;
  const escaped = prefix.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const sessionKeyRe = new RegExp(`^${escaped}${tagged ? ":\\{[^}]*\\}" : ""}:session:([^:]+)$`);
  const pairKey = new RegExp(`^${escaped}${tagged ? ":\\{[^}]*\\}" : ""}:pair:([^:]+):([^:]+)$`);
  const sessionsPrefix = tagged ? `${prefix}:{sessions}` : prefix;
  const eventsPrefix = tagged ? `${prefix}:{events}` : prefix;
  const reaperPass = `${sessionsPrefix}:reaper-pass`;
  const keepaliveQueues = shardPrefixes.map((p, i) => ({ name: keepaliveName(i), prefix: p }));
  const sessionsQueue = { name: QUEUE_SESSIONS, prefix: sessionsPrefix };
  const eventsQueue = { name: QUEUE_EVENTS, prefix: eventsPrefix };
  const anyKeepaliveQueue = { name: keepaliveName("*"), prefix: anyShard };
  const patterns: KeyPatterns = {
    session: sessionKey(anyShard, "*"),
    sessionCount: sessionCountKey(anyShard),
    reaperPass,
    pair: pairKeyOf(anyShard, "*", "*"),
    pairLock: lockKey(anyShard, "*", "*"),
    sessionMutex: mutexKey(anyShard, "*"),
    backend: backendKey("*"),
    keepaliveQueues: queueKeys(anyKeepaliveQueue, "*"),
    keepaliveWaitLists: queueKeys(anyKeepaliveQueue, "wait"),
    sessionsQueue: queueKeys(sessionsQueue, "*"),
    eventsQueue: queueKeys(eventsQueue, "*"),
  };
  return {
    prefix,
    shards,
    tagged,
    shardOf,
    shardPrefix,
    session: (s) => sessionKey(of(s), s),
    sessionCount: (shard) => sessionCountKey(shardPrefix(shard)),
    reaperPass,
    pair: (s, b) => pairKeyOf(of(s), s, b),
    pairLock: (s, b) => lockKey(of(s), s, b),
    sessionMutex: (s) => mutexKey(of(s), s),
    pairPattern: patterns.pair,
    sessionPattern: patterns.session,
    patterns,
    parseSessionKey: (key) => sessionKeyRe.exec(key)?.[1],
    parsePairKey: (key) => {
      const m = pairKey.exec(key);
      return m ? { sessionId: m[1]!, backendId: m[2]! } : undefined;
    },
    backend: backendKey,
    keepaliveQueue: (shard) => {
      shardPrefix(shard);
      return keepaliveQueues[shard]!;
    },
    sessionsQueue,
    eventsQueue,
    sessionMessagesStream: `${sessionsPrefix}:${STREAM_SESSION_MESSAGES}`,
    sessionMessagesRejectedStream: `${sessionsPrefix}:${STREAM_SESSION_MESSAGES}:rejected`,
    sessionEventsStream: `${eventsPrefix}:${STREAM_SESSION_EVENTS}`,
  };
}
