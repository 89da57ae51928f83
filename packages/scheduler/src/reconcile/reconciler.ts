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
  /**
   * A job scheduler of an active pair had lost its next job — the job of its current iteration is
   * gone, or its current iteration is long past (a failover lost the writes that moved it on): the
   * scheduler was upserted again, which adds a next job.
   */
  "next_job_restored",
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
  // The job-scheduler index of each shard's queue (a sorted set: scheduler id → next run, ms).
  const repeatKeys = deps.keepaliveQueues.map((q) => q.keys["repeat"]!);
  /** Key of the job of a scheduler's iteration at `millis` (BullMQ's id `repeat:<scheduler id>:<millis>`). */
  const iterationJobKey = (shard: number, id: string, millis: string) => deps.keepaliveQueues[shard]!.toKey(`repeat:${id}:${millis}`);
  /**
   * A scheduler whose current iteration is this long past never moved on: its job was lost or is
   * stuck where no worker will take it (a failover lost the job's later writes). Half an interval
   * (at least 5 s) past the next one: a backlog that long means the workers are far behind anyway.
   */
  const stale = (backendId: string, millis: string, now: number) => {
    const intervalMs = findBackend(config, backendId)?.intervalMs ?? config.keepalive.intervalMs;
    return Number(millis) < now - intervalMs - Math.max(5_000, intervalMs / 2);
  };
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
    const backend = findBackend(config, backendId);
    return pairStatus(fields) === "active" && Boolean(fields?.[1]) && backend !== undefined && backend.method.kind !== "none";
  };
  /** The pair's status from [status, bsid, epoch]: `gone` when it does not exist, `active` when the field is absent (its default). */
  const pairStatus = (fields: (string | null)[] | undefined): string => (fields?.[2] == null ? "gone" : (fields[0] ?? "active"));

  const readPairs = async (pairs: { sessionId: string; backendId: string }[]) => {
    const pipe = redis.pipeline();
    for (const p of pairs) pipe.hmget(keys.pair(p.sessionId, p.backendId), PAIR_FIELDS.status, PAIR_FIELDS.backendSessionId, PAIR_FIELDS.epoch);
    return ((await pipe.exec()) ?? []).map(([err, v]) => (err ? undefined : (v as (string | null)[])));
  };

  /** Under the session's mutex: re-check the pair, then make the job scheduler match. */
  const repair = async (sessionId: string, backendId: string, want: "add" | "remove" | "restore"): Promise<ReconcileKind | undefined> =>
    withSessionMutex(deps.locker, keys, sessionId, async () => {
      const [fields] = await readPairs([{ sessionId, backendId }]);
      const id = schedulerId(sessionId, backendId);
      const next = await redis.zscore(repeatKeyOf(sessionId), id);
      const present = next !== null;
      if (
        want === "restore" &&
        keptAlive(fields, backendId) &&
        next !== null &&
        (stale(backendId, next, Date.now()) || (await redis.exists(iterationJobKey(keys.shardOf(sessionId), id, next))) === 0)
      ) {
        await deps.scheduler.upsert(sessionId, backendId, findBackend(config, backendId)!.intervalMs);
        log.info({ sessionId, backendId, lostIteration: Number(next) }, "reconcile: job scheduler had lost its next job (gone or long past); restored");
        return "next_job_restored";
      }
      if (want === "add" && keptAlive(fields, backendId) && !present) {
        await deps.scheduler.upsert(sessionId, backendId, findBackend(config, backendId)!.intervalMs);
        log.info({ sessionId, backendId }, "reconcile: active pair had no job scheduler; added");
        return "scheduler_added";
      }
      if (want === "remove" && !keptAlive(fields, backendId) && present) {
        await deps.scheduler.remove(sessionId, backendId);
        log.info({ sessionId, backendId, pairStatus: pairStatus(fields) }, "reconcile: job scheduler without an active pair; removed");
        return "scheduler_removed";
      }
      return undefined;
    });

  const reconcileOnce = async (): Promise<Record<ReconcileKind, number>> => {
    const done: Record<ReconcileKind, number> = { scheduler_added: 0, scheduler_removed: 0, next_job_restored: 0 };
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
    // Job schedulers → pairs, shard by shard; and each kept scheduler's next job is there.
    for (const [shard, repeatKey] of repeatKeys.entries()) {
      let cursor = "0";
      do {
        const [next, flat] = await redis.zscan(repeatKey, cursor, "COUNT", batch);
        cursor = next;
        const found: { sessionId: string; backendId: string; id: string; millis: string }[] = [];
        for (let i = 0; i + 1 < flat.length; i += 2) {
          const p = parseSchedulerId(flat[i]!);
          if (p) found.push({ ...p, id: flat[i]!, millis: flat[i + 1]! });
        }
        if (found.length === 0) continue;
        const states = await readPairs(found);
        const pipe = redis.pipeline();
        for (const p of found) pipe.exists(iterationJobKey(shard, p.id, p.millis));
        const jobThere = ((await pipe.exec()) ?? []).map(([err, v]) => err !== null || v === 1);
        for (let i = 0; i < found.length; i++) {
          const p = found[i]!;
          if (!keptAlive(states[i], p.backendId)) count(await repair(p.sessionId, p.backendId, "remove"));
          else if (!jobThere[i] || stale(p.backendId, p.millis, Date.now())) count(await repair(p.sessionId, p.backendId, "restore"));
        }
      } while (cursor !== "0" && !halting);
      if (halting) break;
    }
    if (done.scheduler_added + done.scheduler_removed + done.next_job_restored > 0) log.info(done, "reconcile pass repaired job schedulers");
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
