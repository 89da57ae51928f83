import type { Queue } from "bullmq";
import type { RedisConnection } from "@vmcp-keepalive/shared";
import { PAIR_FIELDS, parseSchedulerId, scanKeys, schedulerId, type Keys, type Locker } from "@vmcp-keepalive/shared";
import { findBackend, type KeepaliveConfig, type Logger, type TypedEmitter } from "@vmcp-keepalive/runtime";
import type { RegistrationEventMap } from "../registrations/registration-events.js";
import { withSessionMutex } from "../registrations/session-mutex.js";
import { createPeriodic } from "../periodic.js";
import type { PairScheduler } from "../scheduling/pair-scheduler.js";
import { groupByShard } from "../store/session-store.js";

/** What a reconcile pass repairs: the label set of `vmk_reconciled_total{kind}`. */
export const RECONCILE_KINDS = [
  /** An active pair had no job scheduler: one was added. */
  "scheduler_added",
  /** A job scheduler had no active pair (gone, ended, expired or off): it was removed. */
  "scheduler_removed",
] as const;
export type ReconcileKind = (typeof RECONCILE_KINDS)[number];

export interface Reconciler {
  /** Starts the periodic pass (the first after one jittered interval). */
  start(): void;
  /** Stops the timer and waits for a pass in progress. Idempotent. */
  stop(): Promise<void>;
  /** One pass over every pair and every job scheduler; returns the repairs this process made. */
  reconcileOnce(): Promise<Record<ReconcileKind, number>>;
}

export interface ReconcilerDeps {
  readonly config: KeepaliveConfig;
  readonly redis: RedisConnection;
  readonly keys: Keys;
  /** Each shard's keepalive queue (index = shard). */
  readonly keepaliveQueues: readonly Queue[];
  readonly scheduler: PairScheduler;
  readonly locker: Locker;
  readonly events: TypedEmitter<RegistrationEventMap>;
  readonly log: Logger;
  /** `sessions.reconcile_interval`. */
  readonly intervalMs: number;
  /** Keys read per SCAN / ZSCAN step. @defaultValue 500 */
  readonly batchSize?: number;
  /** Source of the interval jitter. @defaultValue Math.random */
  readonly random?: () => number;
}

/**
 * Brings job schedulers and pairs back in step, both ways, whatever was cut short: a scheduler
 * killed between a state write and an upsert, a Redis failover or restore that lost some writes.
 * Every pair that should be kept alive gets its job scheduler; every job scheduler without such a
 * pair goes. Cost is bounded per step (SCAN / ZSCAN batches, one pipeline per batch, no KEYS), and
 * each repair re-checks the pair under the session mutex the registration consumer and the reaper
 * take, so any number of schedulers may reconcile at once: a repair is idempotent, and one that
 * lost a race to a message changes nothing.
 */
export function createReconciler(deps: ReconcilerDeps): Reconciler {
  const { redis, keys, log, config } = deps;
  const batch = deps.batchSize ?? 500;
  const random = deps.random ?? Math.random;
  // The job-scheduler index of each shard's queue (a sorted set of scheduler ids).
  const repeatKeys = deps.keepaliveQueues.map((q) => q.keys["repeat"]!);
  const repeatKeyOf = (sessionId: string) => repeatKeys[keys.shardOf(sessionId)]!;
  let halting = false;
  // Jittered (±10 %), so that schedulers started together do not reconcile in step.
  const periodic = createPeriodic(
    () => reconcileOnce(),
    () => Math.round(deps.intervalMs * (0.9 + 0.2 * random())),
    log,
    "reconcile pass",
  );

  /** Whether a pair should have a job scheduler now: it exists, is active, has a backend session, and its backend keeps alive. */
  const keptAlive = (fields: (string | null)[] | undefined, backendId: string): boolean => {
    const [status, bsid] = fields ?? [];
    const backend = findBackend(config, backendId);
    return status === "active" && Boolean(bsid) && backend !== undefined && backend.method.kind !== "none";
  };

  const readPairs = async (pairs: { sessionId: string; backendId: string }[]) => {
    const pipe = redis.pipeline();
    for (const p of pairs) pipe.hmget(keys.pair(p.sessionId, p.backendId), PAIR_FIELDS.status, PAIR_FIELDS.backendSessionId);
    return ((await pipe.exec()) ?? []).map(([err, v]) => (err ? undefined : (v as (string | null)[])));
  };

  /** Under the session's mutex: re-check the pair, then make the job scheduler match. */
  const repair = async (sessionId: string, backendId: string, want: "add" | "remove"): Promise<ReconcileKind | undefined> =>
    withSessionMutex(deps.locker, keys, sessionId, async () => {
      const [fields] = await readPairs([{ sessionId, backendId }]);
      const present = (await redis.zscore(repeatKeyOf(sessionId), schedulerId(sessionId, backendId))) !== null;
      if (want === "add" && keptAlive(fields, backendId) && !present) {
        await deps.scheduler.upsert(sessionId, backendId, findBackend(config, backendId)!.intervalMs);
        log.info({ sessionId, backendId }, "reconcile: active pair had no job scheduler; added");
        return "scheduler_added";
      }
      if (want === "remove" && !keptAlive(fields, backendId) && present) {
        await deps.scheduler.remove(sessionId, backendId);
        log.info({ sessionId, backendId, pairStatus: fields?.[0] ?? "gone" }, "reconcile: job scheduler without an active pair; removed");
        return "scheduler_removed";
      }
      return undefined;
    });

  const reconcileOnce = async (): Promise<Record<ReconcileKind, number>> => {
    const done: Record<ReconcileKind, number> = { scheduler_added: 0, scheduler_removed: 0 };
    const count = (kind: ReconcileKind | undefined) => {
      if (!kind) return;
      done[kind]++;
      deps.events.emit("reconciled", { kind });
    };
    // Pairs → job schedulers: every master's pair keys, one shard (one hash slot) per pipeline.
    for await (const found of scanKeys(redis, keys.pairPattern, batch)) {
      if (halting) break;
      for (const group of groupByShard(keys, found)) {
        const pairs = group.flatMap((k) => keys.parsePairKey(k) ?? []);
        const states = await readPairs(pairs);
        const pipe = redis.pipeline();
        for (const p of pairs) pipe.zscore(repeatKeyOf(p.sessionId), schedulerId(p.sessionId, p.backendId));
        const scores = ((await pipe.exec()) ?? []).map(([, v]) => v);
        for (let i = 0; i < pairs.length; i++) {
          const p = pairs[i]!;
          if (keptAlive(states[i], p.backendId) && scores[i] === null) count(await repair(p.sessionId, p.backendId, "add"));
        }
      }
    }
    // Job schedulers → pairs, shard by shard.
    for (const repeatKey of repeatKeys) {
      let cursor = "0";
      do {
        const [next, flat] = await redis.zscan(repeatKey, cursor, "COUNT", batch);
        cursor = next;
        const ids = flat.filter((_, i) => i % 2 === 0);
        const pairs = ids.flatMap((id) => {
          const p = parseSchedulerId(id);
          return p ? [p] : [];
        });
        if (pairs.length === 0) continue;
        const states = await readPairs(pairs);
        for (let i = 0; i < pairs.length; i++) {
          const p = pairs[i]!;
          if (!keptAlive(states[i], p.backendId)) count(await repair(p.sessionId, p.backendId, "remove"));
        }
      } while (cursor !== "0" && !halting);
      if (halting) break;
    }
    if (done.scheduler_added + done.scheduler_removed > 0) log.info(done, "reconcile pass repaired job schedulers");
    return done;
  };

  return {
    reconcileOnce,
    start() {
      halting = false;
      periodic.start();
    },
    stop() {
      // A pass in progress ends after its current batch.
      halting = true;
      return periodic.stop();
    },
  };
}
