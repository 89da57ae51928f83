import { Queue, type JobsOptions } from "bullmq";
import type { RedisConnection } from "../redis/connection.js";
import { z } from "zod";
import { FAILURE_REASONS } from "../errors/reasons.js";
import { QUEUE_EVENTS, STREAM_EVENT_FIELD } from "../names.js";
import type { QueueLocation } from "../redis/keys.js";
import { IdSchema } from "../validation.js";
import { queueOptions } from "../queues.js";

/**
 * Events published on `vmcp-events` for vMCP replicas (contract v1). Each event is one BullMQ
 * job whose name is the event type.
 */
const At = z.iso.datetime({ offset: true });

export const BackendSessionExpiredSchema = z.strictObject({
  type: z.literal("backend.session_expired"),
  v: z.literal(1),
  occurredAt: At,
  sessionId: IdSchema,
  backendId: IdSchema,
  /** The backend session id that answered 404; the vMCP should re-initialize the backend. */
  backendSessionId: z.string(),
});

export const BreakerOpenedSchema = z.strictObject({
  type: z.literal("backend.breaker_opened"),
  v: z.literal(1),
  occurredAt: At,
  backendId: IdSchema,
  /** The failure reason that tripped it. */
  reason: z.enum(FAILURE_REASONS),
  consecutiveFailures: z.number().int(),
  /** When the single probe is due (ISO 8601). */
  probeAt: At,
});

export const BreakerClosedSchema = z.strictObject({
  type: z.literal("backend.breaker_closed"),
  v: z.literal(1),
  occurredAt: At,
  backendId: IdSchema,
});

export const VmcpEventSchema = z.discriminatedUnion("type", [BackendSessionExpiredSchema, BreakerOpenedSchema, BreakerClosedSchema]);
export type VmcpEvent = z.infer<typeof VmcpEventSchema>;
export type VmcpEventType = VmcpEvent["type"];

/** JSON Schema (draft 2020-12) of {@link VmcpEventSchema}, published as docs/vmcp-events.schema.json. */
export function vmcpEventJsonSchema(): Record<string, unknown> {
  return z.toJSONSchema(VmcpEventSchema, { io: "output" }) as Record<string, unknown>;
}

export const VMCP_EVENT_JOB_OPTIONS: JobsOptions = {
  attempts: 3,
  backoff: { type: "exponential", delay: 500 },
  removeOnComplete: { count: 1_000 },
  removeOnFail: { count: 5_000 },
};

export interface VmcpEventPublisher {
  publish(event: VmcpEvent): Promise<void>;
  close(): Promise<void>;
}

/** Default `MAXLEN ~` of the event stream (`streams.events_max_len`). */
export const EVENTS_STREAM_MAX_LEN = 100_000;

export interface VmcpEventStreamOptions {
  /** The event stream's key (`keys.sessionEventsStream`). */
  readonly key: string;
  /** `MAXLEN ~` of each XADD; 0 = no event stream. @defaultValue {@link EVENTS_STREAM_MAX_LEN} */
  readonly maxLen?: number;
}

/**
 * Publishes events to `vmcp-events`, and, with `stream`, also adds each one to the event stream
 * (`XADD <key> MAXLEN ~ <maxLen> * event <JSON>`) for vMCPs that read Redis Streams. Both are
 * tried; a failure of either is thrown for the caller to log (it never reaches a vMCP user).
 * `where`: `keys.eventsQueue` of the key layout, or a bare prefix (the standalone layout).
 */
export function createVmcpEventPublisher(connection: RedisConnection, where: QueueLocation | string, stream?: VmcpEventStreamOptions): VmcpEventPublisher {
  const location: QueueLocation = typeof where === "string" ? { name: QUEUE_EVENTS, prefix: where } : where;
  const maxLen = stream?.maxLen ?? EVENTS_STREAM_MAX_LEN;
  if (!(Number.isInteger(maxLen) && maxLen >= 0)) throw new RangeError(`event stream maxLen must be an integer ≥ 0, got ${maxLen}`);
  const queue = new Queue(location.name, queueOptions(connection, location));
  queue.on("error", () => {});
  const streamKey = stream && maxLen > 0 ? stream.key : undefined;
  return {
    async publish(event) {
      const checked = VmcpEventSchema.parse(event);
      const [queued, streamed] = await Promise.allSettled([
        queue.add(checked.type, checked, VMCP_EVENT_JOB_OPTIONS),
        streamKey === undefined ? undefined : connection.xadd(streamKey, "MAXLEN", "~", maxLen, "*", STREAM_EVENT_FIELD, JSON.stringify(checked)),
      ]);
      if (queued.status === "rejected") throw queued.reason;
      if (streamed.status === "rejected") throw new Error(`event stream ${streamKey}: ${(streamed.reason as Error).message}`, { cause: streamed.reason });
    },
    close: () => queue.close(),
  };
}
