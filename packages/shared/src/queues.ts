import type { QueueOptions } from "bullmq";
import type { QueueLocation } from "./redis/keys.js";

/**
 * Retention of finished keepalive jobs, applied as options of the keepalive Worker (not stored in
 * each job, which would cost Redis memory per pair): bounded by count so Redis memory does not grow with
 * time, with enough recent history to read in Bull Board. A keepalive job never fails because a
 * backend failed (the outcome is its return value), so failed jobs are rare and kept longer.
 */
export const KEEPALIVE_JOB_OPTIONS = {
  removeOnComplete: { count: 1_000 },
  removeOnFail: { count: 1_000 },
  attempts: 1,
} as const;

/** Events stream cap shared by every queue we create (BullMQ's default is 10,000 entries). */
export const EVENTS_MAX_LEN = 1_000;

/** Queue options for one of our queues: under a key prefix, or at a {@link QueueLocation} (its prefix). */
export function queueOptions(connection: QueueOptions["connection"], where: string | QueueLocation): QueueOptions {
  const prefix = typeof where === "string" ? where : where.prefix;
  return { connection, prefix, streams: { events: { maxLen: EVENTS_MAX_LEN } } };
}
