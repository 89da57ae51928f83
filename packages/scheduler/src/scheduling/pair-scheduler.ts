import type { Queue } from "bullmq";
import { KEEPALIVE_JOB_NAME, schedulerId } from "@vmcp-keepalive/shared";
import { phaseOffset } from "./phase-offset.js";

/** Upserts and removes the one job scheduler of a session×backend pair. */
export interface PairScheduler {
  upsert(sessionId: string, backendId: string, everyMs: number): Promise<void>;
  remove(sessionId: string, backendId: string): Promise<void>;
}

export function createPairScheduler(queue: Queue): PairScheduler {
  return {
    async upsert(sessionId, backendId, everyMs) {
      // Tiny jobs (docs/benchmarks.md, "Memory"): no data — the worker reads the pair from the
      // scheduler id, which every job carries as `repeatJobKey` — and no per-job options —
      // retention (KEEPALIVE_JOB_OPTIONS) is a worker option. Both would otherwise be stored in
      // the scheduler template and again in every pending job, and a template value over 64
      // bytes makes Redis store the scheduler hash as a hashtable instead of a listpack.
      await queue.upsertJobScheduler(schedulerId(sessionId, backendId), { every: everyMs, offset: phaseOffset(sessionId, backendId, everyMs) }, { name: KEEPALIVE_JOB_NAME });
    },
    async remove(sessionId, backendId) {
      await queue.removeJobScheduler(schedulerId(sessionId, backendId));
    },
  };
}
