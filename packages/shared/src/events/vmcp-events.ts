import { Queue, type JobsOptions } from "bullmq";
import type { RedisConnection } from "../redis/connection.js";
import { z } from "zod";
import { FAILURE_REASONS } from "../errors/reasons.js";
import { QUEUE_EVENTS } from "../names.js";
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

/** A pair's session credentials passed their `expiresAt`: no call is made with them; the vMCP may supply new ones. One per expiry. */
export const CredentialsExpiredSchema = z.strictObject({
  type: z.literal("backend.credentials_expired"),
  v: z.literal(1),
  occurredAt: At,
  sessionId: IdSchema,
  backendId: IdSchema,
  expiresAt: At,
});

/** A pair's session credentials expire within `credentials.refresh_before`. One per credentials. */
export const CredentialsExpiringSchema = z.strictObject({
  type: z.literal("backend.credentials_expiring"),
  v: z.literal(1),
  occurredAt: At,
  sessionId: IdSchema,
  backendId: IdSchema,
  expiresAt: At,
});

/**
 * The backend refused the pair's session credentials (HTTP 401 or 403): the pair stopped (off,
 * `unauthorized`) until new credentials arrive. Not a backend failure: its breaker is untouched.
 */
export const BackendUnauthorizedSchema = z.strictObject({
  type: z.literal("backend.unauthorized"),
  v: z.literal(1),
  occurredAt: At,
  sessionId: IdSchema,
  backendId: IdSchema,
  status: z.union([z.literal(401), z.literal(403)]),
});

export const VmcpEventSchema = z.discriminatedUnion("type", [
  BackendSessionExpiredSchema,
  BreakerOpenedSchema,
  BreakerClosedSchema,
  CredentialsExpiredSchema,
  CredentialsExpiringSchema,
  BackendUnauthorizedSchema,
]);
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

/** Publishes events to `vmcp-events`. Publishing failures are the caller's to log; they never reach a vMCP user. */
/** `where`: `keys.eventsQueue` of the key layout, or a bare prefix (the standalone layout). */
export function createVmcpEventPublisher(connection: RedisConnection, where: QueueLocation | string): VmcpEventPublisher {
  const location: QueueLocation = typeof where === "string" ? { name: QUEUE_EVENTS, prefix: where } : where;
  const queue = new Queue(location.name, queueOptions(connection, location));
  queue.on("error", () => {});
  return {
    async publish(event) {
      const checked = VmcpEventSchema.parse(event);
      await queue.add(checked.type, checked, VMCP_EVENT_JOB_OPTIONS);
    },
    close: () => queue.close(),
  };
}
