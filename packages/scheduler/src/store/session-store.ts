import type { RedisConnection } from "@vmcp-keepalive/shared";
import {
  decodePair,
  scanKeys,
  SESSION_FIELDS,
  type Keys,
  type OffReason,
  type PairState,
  type PairStatus,
  type SealedCredentials,
  type SessionCredentialsUpdated,
  type SessionEnded,
  type SessionRegistered,
  type SessionTouched,
} from "@vmcp-keepalive/shared";
import { APPLY_ENDED, APPLY_REGISTERED, APPLY_TOUCHED, REAP_SESSION } from "./scripts.js";

/** What the scheduler decided for one registered pair before storing it. */
export interface PairDecision {
  readonly backendId: string;
  readonly backendSessionId: string | undefined;
  readonly protocolVersion: string | undefined;
  readonly status: Exclude<PairStatus, "expired">;
  readonly offReason: OffReason | undefined;
  /** The sealed credentials the registration carried for the pair, stored as they came. */
  readonly credentials?: SealedCredentials | undefined;
  /** The backend authenticates every session (`auth: session`): without credentials stored, the pair is off (`no_credentials`). */
  readonly needsCredentials?: boolean;
}

/**
 * What applying a message did: `applied`; `duplicate` (this very message was applied before — a
 * redelivery — so only its side effects are completed); `stale` (a newer one was applied);
 * `ended` (the session is over); `unknown` (a touch for a session not registered).
 */
export type ApplyStatus = "applied" | "duplicate" | "stale" | "ended" | "unknown";

export interface SessionRecord {
  readonly sessionId: string;
  readonly state: "active" | "ended";
  readonly sequence: number;
  readonly sessionTtlMs: number | undefined;
  readonly maxLifetimeMs: number | undefined;
  /** First registration (ms), stored only beside a maximum lifetime. */
  readonly createdAt: number | undefined;
  readonly expiresAt: number | undefined;
}

/** Result of one reap attempt: ended now (with its backends), still alive (touched meanwhile), or already gone. */
export type ReapResult = { readonly status: "applied"; readonly backends: string[] } | { readonly status: "alive" | "gone" };

/** How long an ended session's tombstone stays (blocks late duplicates). @defaultValue 24 h */
export const DEFAULT_TOMBSTONE_MS = 86_400_000;

/** Session and pair state as the scheduler writes it (scripts in packages/scheduler/lua/). */
export interface SessionStore {
  readonly keys: Keys;
  /**
   * `removedBackends`: backends the session no longer lists (applied); `activeBackends`: pairs
   * active now (duplicate: the side effects to complete); `offBackends`: the pairs stored off, with
   * their reason (applied).
   */
  applyRegistered(
    message: SessionRegistered,
    pairs: readonly PairDecision[],
    now: number,
  ): Promise<{ status: ApplyStatus; removedBackends: string[]; activeBackends: string[]; offBackends: Record<string, OffReason> }>;
  /**
   * A touch, or a credentials update (which does not slide the session's expiry).
   * `unknown_backends`: the message names backends the session did not register; nothing was
   * written. `revivedBackends`: pairs off for their credentials that new ones turned back on.
   */
  applyTouched(message: SessionTouched | SessionCredentialsUpdated, now: number): Promise<{ status: ApplyStatus | "unknown_backends"; unknownBackends: string[]; revivedBackends: string[] }>;
  /** Ends a session (message, or the reaper with reason `expired`); returns the backends it had (also on a duplicate, from the tombstone). */
  applyEnded(message: Pick<SessionEnded, "sessionId" | "sequence" | "reason">, now: number): Promise<{ status: ApplyStatus; backends: string[] }>;
  /**
   * Session ids whose expiry (sliding TTL / max lifetime) is at or before `now`, in batches, from
   * one SCAN of every session hash (no index: an index entry per session would cost Redis bytes
   * per pair). A session that expires during the scan may be found by the next one.
   */
  expiredSessions(now: number): AsyncGenerator<string[]>;
  /** Ends one expired session if it is still expired (atomic check); the reaper's write. */
  reapSession(sessionId: string, now: number): Promise<ReapResult>;
  readPair(sessionId: string, backendId: string): Promise<PairState | undefined>;
  readSession(sessionId: string): Promise<SessionRecord | undefined>;
  /** Every pair (SCAN; for the status CLI and tests, not for hot paths). */
  listPairs(): Promise<PairState[]>;
}

export function createSessionStore(redis: RedisConnection, keys: Keys, options: { tombstoneMs?: number } = {}): SessionStore {
  const tombstoneMs = options.tombstoneMs ?? DEFAULT_TOMBSTONE_MS;
  const pairPrefix = (sessionId: string) => keys.pair(sessionId, "");

  return {
    keys,
    async applyRegistered(m, pairs, now) {
      const args: (string | number)[] = [m.sessionId, m.sequence, now, m.sessionTtlMs, m.maxLifetimeMs ?? "", pairPrefix(m.sessionId), pairs.length];
      for (const p of pairs) {
        args.push(p.backendId, p.backendSessionId ?? "", p.protocolVersion ?? "", p.status, p.offReason ?? "");
        args.push(p.credentials ? JSON.stringify(p.credentials) : "", p.credentials?.expiresAt ?? "", p.needsCredentials ? "1" : "0");
      }
      const reply = (await APPLY_REGISTERED.run(redis, [keys.session(m.sessionId), keys.sessionCount(keys.shardOf(m.sessionId))], args)) as [string, string[]?, string[]?, string[]?];
      const [status, removed = [], active = [], offs = []] = reply;
      const offBackends: Record<string, OffReason> = {};
      for (let i = 0; i + 1 < offs.length; i += 2) offBackends[offs[i]!] = offs[i + 1] as OffReason;
      return { status: status as ApplyStatus, removedBackends: removed, activeBackends: active, offBackends };
    },
    async applyTouched(m, now) {
      const touch = m.type === "session.touched";
      const traffic = touch ? (m.backendIds ?? []) : [];
      const credentials = touch ? Object.entries(m.credentials ?? {}) : [[m.backendId, m.credentials] as const];
      const args: (string | number)[] = [m.sessionId, m.sequence, now, pairPrefix(m.sessionId), Date.parse(m.occurredAt) || now, touch ? "1" : "0", traffic.length, ...traffic];
      for (const [backendId, sealed] of credentials) args.push(backendId, JSON.stringify(sealed), sealed.expiresAt ?? "");
      const reply = (await APPLY_TOUCHED.run(redis, [keys.session(m.sessionId)], args)) as string[];
      if (reply[0] === "unknown_backends") return { status: "unknown_backends", unknownBackends: reply.slice(1), revivedBackends: [] };
      return { status: reply[0] as ApplyStatus, unknownBackends: [], revivedBackends: reply[0] === "applied" ? reply.slice(1) : [] };
    },
    async applyEnded(m, now) {
      const reply = (await APPLY_ENDED.run(
        redis,
        [keys.session(m.sessionId), keys.sessionCount(keys.shardOf(m.sessionId))],
        [m.sessionId, m.sequence, now, pairPrefix(m.sessionId), tombstoneMs, m.reason ?? ""],
      )) as string[];
      return { status: reply[0] as ApplyStatus, backends: reply.slice(1) };
    },
    async *expiredSessions(now) {
      const F = SESSION_FIELDS;
      for await (const batch of scanKeys(redis, keys.sessionPattern)) {
        const expired: string[] = [];
        // One pipeline per shard: its keys share a hash slot (a Cluster pipeline must not cross nodes).
        for (const group of groupSessionsByShard(keys, batch)) {
          const pipe = redis.pipeline();
          for (const sessionId of group) pipe.hmget(keys.session(sessionId), F.state, F.expiresAt);
          const replies = (await pipe.exec()) ?? [];
          replies.forEach(([err, fields], i) => {
            const [state, expiresAt] = (fields ?? []) as (string | null)[];
            if (!err && state !== "ended" && expiresAt && Number(expiresAt) <= now) expired.push(group[i]!);
          });
        }
        if (expired.length > 0) yield expired;
      }
    },
    async reapSession(sessionId, now) {
      const reply = (await REAP_SESSION.run(redis, [keys.session(sessionId), keys.sessionCount(keys.shardOf(sessionId))], [sessionId, now, pairPrefix(sessionId), tombstoneMs])) as string[];
      if (reply[0] === "applied") return { status: "applied", backends: reply.slice(1) };
      return { status: reply[0] === "alive" ? "alive" : "gone" };
    },
    async readPair(sessionId, backendId) {
      return decodePair(await redis.hgetall(keys.pair(sessionId, backendId)), sessionId, backendId);
    },
    async readSession(sessionId) {
      const h = await redis.hgetall(keys.session(sessionId));
      const F = SESSION_FIELDS;
      if (!h[F.sequence]) return undefined;
      const n = (v: string | undefined) => (v === undefined ? undefined : Number(v));
      return {
        sessionId,
        state: h[F.state] === "ended" ? "ended" : "active",
        sequence: Number(h[F.sequence] ?? -1),
        sessionTtlMs: n(h[F.sessionTtlMs]),
        maxLifetimeMs: n(h[F.maxLifetimeMs]),
        createdAt: n(h[F.createdAt]),
        expiresAt: n(h[F.expiresAt]),
      };
    },
    async listPairs() {
      const out: PairState[] = [];
      for await (const batch of scanKeys(redis, keys.pairPattern)) {
        // One pipeline per shard: its keys share a hash slot (a Cluster pipeline must not cross nodes).
        for (const group of groupByShard(keys, batch)) {
          const pipe = redis.pipeline();
          for (const k of group) pipe.hgetall(k);
          const replies = (await pipe.exec()) ?? [];
          replies.forEach(([err, h], i) => {
            const ids = keys.parsePairKey(group[i]!);
            const p = err || !ids ? undefined : decodePair(h as Record<string, string>, ids.sessionId, ids.backendId);
            if (p) out.push(p);
          });
        }
      }
      return out.sort((a, b) => a.sessionId.localeCompare(b.sessionId) || a.backendId.localeCompare(b.backendId));
    },
  };
}

/** `items` grouped by the shard of the session each names (items naming none are left out). */
function groupBySessionShard<T>(keys: Keys, items: readonly T[], sessionOf: (item: T) => string | undefined): T[][] {
  const groups = new Map<number, T[]>();
  for (const item of items) {
    const sessionId = sessionOf(item);
    if (sessionId === undefined) continue;
    const shard = keys.shardOf(sessionId);
    let group = groups.get(shard);
    if (!group) groups.set(shard, (group = []));
    group.push(item);
  }
  return [...groups.values()];
}

/** The session ids of session hash keys, grouped by their shard (other keys left out). */
function groupSessionsByShard(keys: Keys, sessionKeys: readonly string[]): string[][] {
  const ids = sessionKeys.flatMap((k) => keys.parseSessionKey(k) ?? []);
  return groupBySessionShard(keys, ids, (id) => id);
}

/** Pair keys grouped by their shard (keys that are not pair keys are left out). */
export function groupByShard(keys: Keys, pairKeys: readonly string[]): string[][] {
  return groupBySessionShard(keys, pairKeys, (k) => keys.parsePairKey(k)?.sessionId);
}
