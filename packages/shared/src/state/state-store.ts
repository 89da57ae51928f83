import type { Redis } from "ioredis";
import type { OffReason } from "../errors/reasons.js";
import type { SessionEnded, SessionRegistered, SessionTouched } from "../messages/schema.js";
import type { Keys } from "../redis/keys.js";
import { decodePair, outcomeLabel, type KeepaliveOutcome, type PairState, type PairStatus } from "./pair-state.js";
import { APPLY_ENDED, APPLY_REGISTERED, APPLY_TOUCHED, REAP_SESSION, RECORD_OUTCOME, REINITIALIZE_PAIR } from "./scripts.js";

/** What the scheduler decided for one registered pair before storing it. */
export interface PairDecision {
  readonly backendId: string;
  readonly backendSessionId: string | undefined;
  readonly protocolVersion: string | undefined;
  readonly status: Exclude<PairStatus, "expired">;
  readonly offReason: OffReason | undefined;
}

export type ApplyStatus = "applied" | "stale" | "ended" | "unknown";

export interface SessionRecord {
  readonly sessionId: string;
  readonly state: "active" | "ended";
  readonly sequence: number;
  readonly replicaId: string | undefined;
  readonly sessionTtlMs: number | undefined;
  readonly maxLifetimeMs: number | undefined;
  readonly createdAt: number | undefined;
  readonly activeAt: number | undefined;
  readonly expiresAt: number | undefined;
}

export type RecordResult =
  | { readonly written: true; readonly consecutiveFailures: number }
  | { readonly written: false; readonly why: "fenced" | "gone" };

/** Result of storing a re-initialized backend session (see REINITIALIZE_PAIR). */
export type ReinitializeStateResult =
  | { readonly status: "applied"; readonly epoch: number; readonly previousStatus: PairStatus }
  /** No such pair: the session ended, was reaped, or was never registered with this backend. */
  | { readonly status: "unknown" };

/** Result of one reap attempt: ended now (with its backends), still alive (touched meanwhile), or already gone. */
export type ReapResult = { readonly status: "applied"; readonly backends: string[] } | { readonly status: "alive" | "gone" };

/** How long an ended session's tombstone stays (blocks late duplicates). @defaultValue 24 h */
export const DEFAULT_TOMBSTONE_MS = 86_400_000;

export interface StateStore {
  readonly keys: Keys;
  applyRegistered(message: SessionRegistered, pairs: readonly PairDecision[], now: number): Promise<{ status: ApplyStatus; removedBackends: string[] }>;
  applyTouched(message: SessionTouched, now: number): Promise<ApplyStatus>;
  /** Ends a session (message, or the reaper with reason `expired`); returns the backends it had. */
  applyEnded(message: Pick<SessionEnded, "sessionId" | "sequence" | "reason">, now: number): Promise<{ status: ApplyStatus; backends: string[] }>;
  /**
   * Stores a re-initialized backend session and bumps the pair epoch (the caller holds the pair
   * lock). Never creates a pair.
   */
  reinitializePair(sessionId: string, backendId: string, backendSessionId: string, protocolVersion: string | undefined, now: number): Promise<ReinitializeStateResult>;
  /** Session ids whose expiry (sliding TTL / max lifetime) is at or before `now`, oldest first. */
  expiredSessions(now: number, limit: number): Promise<string[]>;
  /** Ends one expired session if it is still expired (atomic check); the reaper's write. */
  reapSession(sessionId: string, now: number): Promise<ReapResult>;
  readPair(sessionId: string, backendId: string): Promise<PairState | undefined>;
  readSession(sessionId: string): Promise<SessionRecord | undefined>;
  recordOutcome(
    pair: Pick<PairState, "sessionId" | "backendId" | "epoch">,
    outcome: KeepaliveOutcome,
    now: number,
    options?: { latencyMs?: number; status?: PairStatus },
  ): Promise<RecordResult>;
  /** Every pair (SCAN; for the status CLI and tests, not for hot paths). */
  listPairs(): Promise<PairState[]>;
}

export function createStateStore(redis: Redis, keys: Keys, options: { tombstoneMs?: number } = {}): StateStore {
  const tombstoneMs = options.tombstoneMs ?? DEFAULT_TOMBSTONE_MS;
  const pairPrefix = (sessionId: string) => keys.pair(sessionId, "");

  return {
    keys,
    async applyRegistered(m, pairs, now) {
      const args: (string | number)[] = [
        m.sessionId, m.sequence, now, m.replicaId, m.sessionTtlMs, m.maxLifetimeMs ?? "", pairPrefix(m.sessionId), pairs.length,
      ];
      for (const p of pairs) args.push(p.backendId, p.backendSessionId ?? "", p.protocolVersion ?? "", p.status, p.offReason ?? "");
      const reply = (await APPLY_REGISTERED.run(
        redis,
        [keys.session(m.sessionId), keys.sessionBackends(m.sessionId), keys.sessionsByExpiry()],
        args,
      )) as string[];
      return { status: reply[0] as ApplyStatus, removedBackends: reply.slice(1) };
    },
    async applyTouched(m, now) {
      return (await APPLY_TOUCHED.run(redis, [keys.session(m.sessionId), keys.sessionsByExpiry()], [m.sessionId, m.sequence, now])) as ApplyStatus;
    },
    async applyEnded(m, now) {
      const reply = (await APPLY_ENDED.run(
        redis,
        [keys.session(m.sessionId), keys.sessionBackends(m.sessionId), keys.sessionsByExpiry()],
        [m.sessionId, m.sequence, now, pairPrefix(m.sessionId), tombstoneMs, m.reason ?? ""],
      )) as string[];
      return { status: reply[0] as ApplyStatus, backends: reply.slice(1) };
    },
    async reinitializePair(sessionId, backendId, backendSessionId, protocolVersion, now) {
      const reply = (await REINITIALIZE_PAIR.run(redis, [keys.pair(sessionId, backendId)], [backendSessionId, protocolVersion ?? "", now])) as (
        | string
        | number
      )[];
      if (reply[0] !== "applied") return { status: "unknown" };
      return { status: "applied", epoch: Number(reply[1]), previousStatus: String(reply[2]) as PairStatus };
    },
    async expiredSessions(now, limit) {
      return redis.zrangebyscore(keys.sessionsByExpiry(), "-inf", now, "LIMIT", 0, limit);
    },
    async reapSession(sessionId, now) {
      const reply = (await REAP_SESSION.run(
        redis,
        [keys.session(sessionId), keys.sessionBackends(sessionId), keys.sessionsByExpiry()],
        [sessionId, now, pairPrefix(sessionId), tombstoneMs],
      )) as string[];
      if (reply[0] === "applied") return { status: "applied", backends: reply.slice(1) };
      return { status: reply[0] === "alive" ? "alive" : "gone" };
    },
    async readPair(sessionId, backendId) {
      return decodePair(await redis.hgetall(keys.pair(sessionId, backendId)));
    },
    async readSession(sessionId) {
      const h = await redis.hgetall(keys.session(sessionId));
      if (!h["sid"]) return undefined;
      const n = (v: string | undefined) => (v === undefined ? undefined : Number(v));
      return {
        sessionId: h["sid"],
        state: h["state"] === "ended" ? "ended" : "active",
        sequence: Number(h["seq"] ?? -1),
        replicaId: h["replica"],
        sessionTtlMs: n(h["ttl"]),
        maxLifetimeMs: n(h["maxLife"]),
        createdAt: n(h["createdAt"]),
        activeAt: n(h["activeAt"]),
        expiresAt: n(h["expiresAt"]),
      };
    },
    async recordOutcome(pair, outcome, now, options = {}) {
      const reply = Number(
        await RECORD_OUTCOME.run(redis, [keys.pair(pair.sessionId, pair.backendId)], [
          pair.epoch,
          now,
          outcome.kind,
          outcome.kind === "success" ? "" : outcome.reason,
          options.latencyMs === undefined ? "" : Math.round(options.latencyMs),
          outcomeLabel(outcome),
          options.status ?? "",
        ]),
      );
      if (reply === -1) return { written: false, why: "fenced" };
      if (reply === -2) return { written: false, why: "gone" };
      return { written: true, consecutiveFailures: reply };
    },
    async listPairs() {
      const out: PairState[] = [];
      let cursor = "0";
      do {
        const [next, batch] = await redis.scan(cursor, "MATCH", `${keys.prefix}:pair:*`, "COUNT", 1000);
        cursor = next;
        if (batch.length === 0) continue;
        const pipe = redis.pipeline();
        for (const k of batch) pipe.hgetall(k);
        const replies = (await pipe.exec()) ?? [];
        for (const [err, h] of replies) {
          if (err) continue;
          const p = decodePair(h as Record<string, string>);
          if (p) out.push(p);
        }
      } while (cursor !== "0");
      return out.sort((a, b) => a.sessionId.localeCompare(b.sessionId) || a.backendId.localeCompare(b.backendId));
    },
  };
}
