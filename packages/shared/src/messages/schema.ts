import { z } from "zod";
import { IdSchema } from "../validation.js";
import { SealedCredentialsSchema } from "../credentials/credential-key-ring.js";

/**
 * Registration messages on the `vmcp-sessions` queue, contract v1. The JSON Schema in
 * docs/session-messages.schema.json is generated from these (a test keeps them equal), for vMCPs
 * written in other languages.
 */

/** Backend session ids are opaque header values: visible ASCII only, so they are safe in a header. */
const BackendSessionId = z
  .string()
  .min(1)
  .max(512)
  .regex(/^[\x21-\x7E]+$/, "must be 1-512 visible ASCII characters (it is sent as the Mcp-Session-Id header)");

const ProtocolVersion = z.string().regex(/^\d{4}-\d{2}-\d{2}$/, "must be an MCP revision such as 2025-06-18");

const Base = {
  /** Contract version. */
  v: z.literal(1).default(1),
  sessionId: IdSchema,
  /** When the vMCP produced the message (ISO 8601). */
  occurredAt: z.iso.datetime({ offset: true }),
  /** Per-session, strictly increasing; stale and duplicate messages are ignored. */
  sequence: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
};

export const BackendRegistrationSchema = z.strictObject({
  backendId: IdSchema,
  /** Absent ⇒ the backend session is stateless (nothing to keep alive). */
  backendSessionId: BackendSessionId.optional(),
  /** The negotiated MCP revision, sent back as MCP-Protocol-Version. */
  protocolVersion: ProtocolVersion.optional(),
  /**
   * For a backend with `auth: session`: the headers the vMCP uses for this session, sealed for the
   * workers (the envelope of docs/contract.md, "Session credentials"). Stored as it came; only a
   * worker opens it, in memory, for one call.
   */
  credentials: SealedCredentialsSchema.optional(),
});

/** Sealed credentials by backend id: the latest the vMCP used for each backend. */
const CredentialsByBackend = z.record(IdSchema, SealedCredentialsSchema).refine((c) => Object.keys(c).length <= 64, { message: "at most 64 backends" });

export const SessionRegisteredSchema = z.strictObject({
  type: z.literal("session.registered"),
  ...Base,
  replicaId: IdSchema,
  /** Sliding vMCP session TTL: the session is reaped this long after its last activity. */
  sessionTtlMs: z
    .number()
    .int()
    .min(1_000)
    .max(30 * 86_400_000),
  /** Hard cap on the vMCP session's lifetime, from registration. */
  maxLifetimeMs: z
    .number()
    .int()
    .min(1_000)
    .max(365 * 86_400_000)
    .optional(),
  backends: z
    .array(BackendRegistrationSchema)
    .min(1)
    .max(256)
    .refine((bs) => new Set(bs.map((b) => b.backendId)).size === bs.length, {
      message: "backendId values must be unique",
    }),
});

export const SessionTouchedSchema = z.strictObject({
  type: z.literal("session.touched"),
  ...Base,
  /**
   * The backends the session called since its last touch (at `occurredAt` or later): real
   * traffic that kept those backend sessions alive, so their next keepalive tick is skipped
   * (`recent_traffic`). Each must be a backend the session registered.
   */
  backendIds: z
    .array(IdSchema)
    .max(64)
    .refine((ids) => new Set(ids).size === ids.length, { message: "backendIds must be unique" })
    .optional(),
  /**
   * The credentials the session has just used, by backend (each a backend the session
   * registered): a touch refreshes them with the traffic.
   */
  credentials: CredentialsByBackend.optional(),
});

/** New credentials for one pair, on their own (a token refreshed without traffic). */
export const SessionCredentialsUpdatedSchema = z.strictObject({
  type: z.literal("session.credentials_updated"),
  ...Base,
  backendId: IdSchema,
  credentials: SealedCredentialsSchema,
});

export const SessionEndedSchema = z.strictObject({
  type: z.literal("session.ended"),
  ...Base,
  reason: z.string().max(200).optional(),
});

/**
 * The vMCP re-initialized one backend of the session and `reinitializeBackend` has already
 * stored the new backend session under the pair lock (that write does not go through this
 * queue). This message only asks the scheduler to reconcile the pair's job scheduler with the
 * stored state: a pair whose old backend session answered 404 lost its job scheduler (the worker
 * removed it) and needs it back. Job schedulers are created and removed only by the scheduler
 * (and removed by a worker that finds its pair gone or expired), never by a vMCP. The scheduler
 * applies it idempotently, whatever its sequence: it reads the pair as it is now.
 */
export const SessionBackendReinitializedSchema = z.strictObject({
  type: z.literal("session.backend_reinitialized"),
  ...Base,
  backendId: IdSchema,
});

export const SessionMessageSchema = z.discriminatedUnion("type", [
  SessionRegisteredSchema,
  SessionTouchedSchema,
  SessionEndedSchema,
  SessionBackendReinitializedSchema,
  SessionCredentialsUpdatedSchema,
]);

export type BackendRegistration = z.infer<typeof BackendRegistrationSchema>;
export type SessionRegistered = z.infer<typeof SessionRegisteredSchema>;
export type SessionTouched = z.infer<typeof SessionTouchedSchema>;
export type SessionEnded = z.infer<typeof SessionEndedSchema>;
export type SessionBackendReinitialized = z.infer<typeof SessionBackendReinitializedSchema>;
export type SessionCredentialsUpdated = z.infer<typeof SessionCredentialsUpdatedSchema>;
export type SessionMessage = z.infer<typeof SessionMessageSchema>;
/** What a producer writes (defaults such as `v` may be omitted). */
export type SessionMessageInput = z.input<typeof SessionMessageSchema>;

/** JSON Schema (draft 2020-12) of {@link SessionMessageSchema}. */
export function sessionMessageJsonSchema(): Record<string, unknown> {
  return z.toJSONSchema(SessionMessageSchema, { io: "input" }) as Record<string, unknown>;
}
