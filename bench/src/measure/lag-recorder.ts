import { QueueEvents } from "bullmq";
import type { Redis } from "ioredis";
import { QUEUE_KEEPALIVE } from "@vmcp-keepalive/shared";

export interface LagSample {
  /** When the job became active (Redis time of its `active` event, ms). */
  readonly at: number;
  /** `at` − the scheduled millis in the job id `repeat:ka:<sid>:<bid>:<millis>`. */
  readonly lagMs: number;
}

export interface LagRecorder {
  readonly samples: LagSample[];
  between(from: number, to: number): number[];
  /** Largest lag of the jobs that started in each whole second of [from, to). */
  maxPerSecond(from: number, to: number): number[];
  close(): Promise<void>;
}

/**
 * Schedule lag of every keepalive job, from the queue's `active` events. The event's stream id
 * carries the Redis time at which moveToActive ran (the job's processedOn), and a job-scheduler
 * job's id ends with the millisecond it was scheduled for, so lag needs no cooperation from the
 * worker process and includes BullMQ's own delayed-job promotion.
 */
export async function startLagRecorder(connection: Redis, prefix: string): Promise<LagRecorder> {
  const events = new QueueEvents(QUEUE_KEEPALIVE, { connection, prefix, autorun: false });
  events.on("error", () => {});
  const samples: LagSample[] = [];
  events.on("active", ({ jobId }, id) => {
    const at = Number(id.split("-")[0]);
    const scheduled = Number(jobId.slice(jobId.lastIndexOf(":") + 1));
    if (jobId.startsWith("repeat:") && Number.isFinite(at) && Number.isFinite(scheduled)) samples.push({ at, lagMs: at - scheduled });
  });
  void events.run().catch(() => {});
  await events.waitUntilReady();
  return {
    samples,
    between: (from, to) => samples.filter((s) => s.at >= from && s.at < to).map((s) => s.lagMs),
    maxPerSecond: (from, to) => {
      const out = new Array<number>(Math.max(1, Math.floor((to - from) / 1000))).fill(0);
      for (const s of samples) {
        const i = Math.floor((s.at - from) / 1000);
        if (i >= 0 && i < out.length) out[i] = Math.max(out[i]!, s.lagMs);
      }
      return out;
    },
    close: () => events.close(),
  };
}
