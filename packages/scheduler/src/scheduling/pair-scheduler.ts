import type { Queue } from "bullmq";
import { KEEPALIVE_JOB_NAME, schedulerId } from "@vmcp-keepalive/shared";
import { phaseOffset } from "./phase-offset.js";

/** Upserts and removes the one job scheduler of a session×backend pair. */
export interface PairScheduler {
  upsert(sessionId: string, backendId: string, everyMs: number): Promise<void>;
  remove(sessionId: string, backendId: string): Promise<void>;
}

/**
 * `queues[shard]`: the keepalive queue of each shard (one when unsharded); a pair's job scheduler
 * lives in its session's shard (`shardOf`).
 */
export function createPairScheduler(queues: readonly Queue[], shardOf: (sessionId: string) => number = () => 0): PairScheduler {
  const queueOf = (sessionId: string): Queue => {
    const queue = queues[shardOf(sessionId)];
    if (!queue) throw new RangeError(`no keepalive queue for shard ${shardOf(sessionId)} of session ${sessionId}`);
    return queue;
  };
  return {
    async upsert(sessionId, backendId, everyMs) {
      // Tiny jobs (docs/benchmarks.md, "Redis bytes per pair"): no data — the worker reads the pair from the
      // scheduler id, which every job carries as `repeatJobKey` — and no per-job options —
      // retention (KEEPALIVE_JOB_OPTIONS) is a worker option. Both would otherwise be stored in
      // the scheduler template and again in every pending job, and a template value over 64
      // bytes makes Redis store the scheduler hash as a hashtable instead of a listpack.
      await queueOf(sessionId).upsertJobScheduler(schedulerId(sessionId, backendId), { every: everyMs, offset: phaseOffset(sessionId, backendId, everyMs) }, { name: KEEPALIVE_JOB_NAME });
    },
    async remove(sessionId, backendId) {
      await queueOf(sessionId).removeJobScheduler(schedulerId(sessionId, backendId));
    },
  };
}
