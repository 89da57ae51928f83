/**
 * Names fixed by the external contract (docs/contract.md). Other programs — vMCP replicas in
 * any language, dashboards, runbooks — depend on these exact strings.
 */
export const QUEUE_SESSIONS = "vmcp-sessions";
export const QUEUE_KEEPALIVE = "keepalive";
export const QUEUE_EVENTS = "vmcp-events";

/**
 * The Redis Streams side of the contract, for vMCPs that do not speak BullMQ: lifecycle messages
 * come in on `<sessions prefix>:session-messages` (field `message`), rejected ones are kept on
 * `…:session-messages:rejected`, events go out on `<events prefix>:session-events` (field `event`).
 * Key names: `Keys.sessionMessagesStream`, `Keys.sessionMessagesRejectedStream`, `Keys.sessionEventsStream`.
 */
export const STREAM_SESSION_MESSAGES = "session-messages";
export const STREAM_SESSION_EVENTS = "session-events";
/** The consumer group every scheduler reads the ingress stream in. */
export const STREAM_SCHEDULER_GROUP = "schedulers";
/** The field of an ingress entry that holds the message JSON. */
export const STREAM_MESSAGE_FIELD = "message";
/** The field of an event-stream entry that holds the event JSON. */
export const STREAM_EVENT_FIELD = "event";

/** Job name of every keepalive tick produced by a pair's job scheduler. */
export const KEEPALIVE_JOB_NAME = "keepalive";

/**
 * Session and backend ids end up inside Redis keys, BullMQ job-scheduler ids and log lines.
 * Restricting them to this alphabet (no `:`, `{`, `}`, spaces or control characters) keeps every
 * key unambiguous to parse and every hash tag intact.
 */
export const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
export const ID_RULE = "1-128 characters of A-Z a-z 0-9 . _ -, starting with a letter or digit";

/** Job-scheduler id of one session×backend pair: `ka:<sessionId>:<backendId>`. */
export function schedulerId(sessionId: string, backendId: string): string {
  return `ka:${sessionId}:${backendId}`;
}

/** Inverse of {@link schedulerId}; undefined for anything that is not a pair scheduler id of valid ids. */
export function parseSchedulerId(id: string): { sessionId: string; backendId: string } | undefined {
  const [ka, sessionId, backendId, ...rest] = id.split(":");
  if (ka !== "ka" || rest.length > 0 || !sessionId || !backendId || !ID_PATTERN.test(sessionId) || !ID_PATTERN.test(backendId)) return undefined;
  return { sessionId, backendId };
}
