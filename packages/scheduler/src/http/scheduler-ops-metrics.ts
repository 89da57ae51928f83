import type { Queue } from "bullmq";
import type { RedisConnection } from "@vmcp-keepalive/shared";
import { Gauge, type Registry } from "prom-client";
import { withTimeout } from "@vmcp-keepalive/runtime";
import { type Keys } from "@vmcp-keepalive/shared";

const sum = (values: readonly number[]) => values.reduce((a, b) => a + b, 0);

/** Queue states exported as `vmk_queue_jobs{queue,state}`. */
export const QUEUE_STATES = ["waiting", "delayed", "active", "failed"] as const;
/** Values of the breaker hash's `state` field (absent ⇒ closed), exported as a state set. */
export const BREAKER_STATES = ["closed", "open", "probing"] as const;

interface Snapshot {
  readonly up: boolean;
  readonly jobs: ReadonlyMap<string, Readonly<Record<string, number>>>;
  readonly scheduledPairs: number;
  readonly sessions: number;
  readonly breakers: ReadonlyMap<string, string>;
  /** XLEN of each stream, by its name in the contract. */
  readonly streams: ReadonlyMap<string, number>;
  /** Ingress entries delivered to a scheduler and not acknowledged yet. */
  readonly streamPending: number;
}

/** Streams exported as `vmk_stream_entries{stream}`, by their names in the contract. */
export const STREAM_NAMES = ["session-messages", "session-messages:rejected", "session-events"] as const;

export interface SchedulerOpsMetricsDeps {
  readonly registry: Registry;
  /** Every queue (vmcp-sessions, each shard's keepalive queue, vmcp-events). */
  readonly queues: readonly Queue[];
  /** Each shard's keepalive queue (index = shard). */
  readonly keepaliveQueues: readonly Queue[];
  readonly redis: RedisConnection;
  readonly keys: Keys;
  readonly backendIds: readonly string[];
  /** The schedulers' consumer group on the ingress stream. */
  readonly streamGroup: string;
  /** Upper bound of one scrape's Redis reads; a scrape during an outage answers `vmk_redis_up 0` instead of hanging. */
  readonly timeoutMs?: number;
}

/**
 * Gauges the scheduler reads from Redis at scrape time: queue depths, pairs with a job
 * scheduler, registered sessions, and each configured backend's breaker state. One snapshot per
 * scrape (shared by the gauges' collect callbacks). When Redis does not answer, `vmk_redis_up`
 * is 0 and the other gauges are left empty rather than stale.
 */
export function createSchedulerOpsMetrics(deps: SchedulerOpsMetricsDeps): void {
  const registers = [deps.registry];
  const timeoutMs = deps.timeoutMs ?? 2_000;
  let pending: { at: number; promise: Promise<Snapshot | undefined> } | undefined;

  const read = async (): Promise<Snapshot> => {
    const jobs = new Map<string, Record<string, number>>();
    const k = deps.keys;
    const [counts, scheduledPairs, sessions, states, lengths, pending] = await Promise.all([
      Promise.all(deps.queues.map((q) => q.getJobCounts(...QUEUE_STATES))),
      Promise.all(deps.keepaliveQueues.map((q) => q.getJobSchedulersCount())).then(sum),
      Promise.all(deps.keepaliveQueues.map((_, shard) => deps.redis.get(deps.keys.sessionCount(shard)))).then((counts) => sum(counts.map((c) => Math.max(0, Number(c ?? 0))))),
      Promise.all(deps.backendIds.map((b) => deps.redis.hget(deps.keys.backend(b), "state"))),
      Promise.all([k.sessionMessagesStream, k.sessionMessagesRejectedStream, k.sessionEventsStream].map((key) => deps.redis.xlen(key))),
      // No group yet (no scheduler started since a FLUSHALL): nothing pending.
      deps.redis.xpending(k.sessionMessagesStream, deps.streamGroup).then(
        (summary) => Number((summary as unknown[])[0] ?? 0),
        () => 0,
      ),
    ]);
    deps.queues.forEach((q, i) => jobs.set(q.name, counts[i] ?? {}));
    const breakers = new Map<string, string>();
    deps.backendIds.forEach((b, i) => breakers.set(b, states[i] || "closed"));
    const streams = new Map(STREAM_NAMES.map((name, i) => [name, lengths[i] ?? 0]));
    return { up: true, jobs, scheduledPairs, sessions, breakers, streams, streamPending: pending };
  };
  const snapshot = (): Promise<Snapshot | undefined> => {
    const now = Date.now();
    if (!pending || now - pending.at > 500) pending = { at: now, promise: withTimeout(read(), timeoutMs, undefined) };
    return pending.promise;
  };

  new Gauge({
    name: "vmk_redis_up",
    help: "1 when this scheduler's last scrape could read Redis, else 0.",
    registers,
    async collect() {
      this.set((await snapshot()) ? 1 : 0);
    },
  });
  new Gauge({
    name: "vmk_queue_jobs",
    help: `Jobs in each queue by state (${QUEUE_STATES.join(", ")}).`,
    labelNames: ["queue", "state"],
    registers,
    async collect() {
      this.reset();
      const s = await snapshot();
      if (!s) return;
      for (const [queue, counts] of s.jobs) for (const state of QUEUE_STATES) this.set({ queue, state }, counts[state] ?? 0);
    },
  });
  new Gauge({
    name: "vmk_scheduled_pairs",
    help: "Session×backend pairs that have a keepalive job scheduler (pairs being kept alive), over every shard.",
    registers,
    async collect() {
      this.reset();
      const s = await snapshot();
      if (s) this.set(s.scheduledPairs);
    },
  });
  new Gauge({
    name: "vmk_registered_sessions",
    help: "vMCP sessions currently registered (not ended or reaped), over every shard.",
    registers,
    async collect() {
      this.reset();
      const s = await snapshot();
      if (s) this.set(s.sessions);
    },
  });
  new Gauge({
    name: "vmk_breaker_state",
    help: `Circuit breaker of each configured backend as a state set: 1 on its current state (${BREAKER_STATES.join(", ")}), 0 on the others.`,
    labelNames: ["backend", "state"],
    registers,
    async collect() {
      this.reset();
      const s = await snapshot();
      if (!s) return;
      for (const [backend, current] of s.breakers) for (const state of BREAKER_STATES) this.set({ backend, state }, current === state ? 1 : 0);
    },
  });
  new Gauge({
    name: "vmk_stream_entries",
    help: `Entries in each stream (${STREAM_NAMES.join(", ")}): the ingress stream holds what is not applied yet, the two others are capped.`,
    labelNames: ["stream"],
    registers,
    async collect() {
      this.reset();
      const s = await snapshot();
      if (s) for (const [stream, n] of s.streams) this.set({ stream }, n);
    },
  });
  new Gauge({
    name: "vmk_stream_pending",
    help: "Ingress stream entries delivered to a scheduler and not acknowledged yet (being applied, or waiting to be claimed again).",
    registers,
    async collect() {
      this.reset();
      const s = await snapshot();
      if (s) this.set(s.streamPending);
    },
  });
}
