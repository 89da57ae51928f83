import { parseSessionMessage, QUEUE_SESSIONS, STREAM_SESSION_MESSAGES, type Locker, type RejectionReason, type SessionMessage } from "@vmcp-keepalive/shared";
import type { KeepaliveConfig, TypedEmitter } from "@vmcp-keepalive/runtime";
import { applyMessage, MessageRejectedError, type ApplyDeps, type ApplyResult } from "./apply-message.js";
import type { RegistrationEventMap, MessageSource } from "./registration-events.js";
import { withSessionMutex } from "./session-mutex.js";

/** Where one lifecycle message came from, for logs and events: a queue job or a stream entry. */
export interface MessageRef {
  readonly source: MessageSource;
  /** The BullMQ job id, or the stream entry id. */
  readonly id: string | undefined;
}

export type HandleOutcome = { readonly ok: true; readonly result: ApplyResult } | { readonly ok: false; readonly reason: RejectionReason; readonly detail: string };

export type ParseOutcome = { readonly ok: true; readonly message: SessionMessage } | { readonly ok: false; readonly reason: RejectionReason; readonly detail: string };

export interface MessageHandler {
  /** {@link MessageHandler.parse} then {@link MessageHandler.apply}. */
  handle(payload: unknown, ref: MessageRef): Promise<HandleOutcome>;
  /** Size limit, JSON and schema; a rejection is logged and emitted. */
  parse(payload: unknown, ref: MessageRef): ParseOutcome;
  /**
   * Applies one validated message under the session mutex, logs and emits `applied`; or logs and
   * emits `rejected` and returns the reason when it can never be applied (unknown backend).
   * Throws what may pass (Redis errors): the caller retries.
   */
  apply(message: SessionMessage, ref: MessageRef): Promise<HandleOutcome>;
  /** Logs and emits a rejection the caller found before parsing (a job whose data is not JSON). */
  reject(ref: MessageRef, reason: RejectionReason, detail: string): HandleOutcome & { ok: false };
}

export type MessageHandlerDeps = ApplyDeps & {
  readonly locker: Locker;
  readonly events: TypedEmitter<RegistrationEventMap>;
  readonly config: KeepaliveConfig;
};

/**
 * The one way a lifecycle message is applied, whichever way it came in (the `vmcp-sessions`
 * queue or the ingress stream): parse and size limit, the schema, `applyMessage` under the
 * session mutex, the same log lines, events (hence metrics) and rejection reasons.
 */
export function createMessageHandler(deps: MessageHandlerDeps): MessageHandler {
  const { config, log, events } = deps;
  const where = (ref: MessageRef) => (ref.source === "queue" ? { jobId: ref.id, queue: QUEUE_SESSIONS } : { entryId: ref.id, stream: STREAM_SESSION_MESSAGES });
  const reject = (ref: MessageRef, reason: RejectionReason, detail: string) => {
    log.warn({ ...where(ref), reason, detail }, "registration message rejected");
    events.emit("rejected", { reason, detail, source: ref.source, id: ref.id });
    return { ok: false as const, reason, detail };
  };
  const parse = (payload: unknown, ref: MessageRef): ParseOutcome => {
    const parsed = parseSessionMessage(payload, config.registration.maxMessageBytes);
    return parsed.ok ? parsed : reject(ref, parsed.reason, parsed.detail);
  };
  const apply = async (message: SessionMessage, ref: MessageRef): Promise<HandleOutcome> => {
    try {
      const result = await withSessionMutex(deps.locker, deps.store.keys, message.sessionId, () => applyMessage(deps, message));
      events.emit("applied", { type: message.type, sessionId: message.sessionId, status: result.status, pairs: result.scheduled, source: ref.source });
      // Debug, not info: one line per message costs the scheduler a measurable share of its
      // registration rate (docs/benchmarks.md); vmk_registration_messages_total counts them.
      log.debug(
        {
          ...where(ref),
          type: message.type,
          sessionId: message.sessionId,
          status: result.status,
          scheduled: result.scheduled,
          off: result.off,
          removed: result.removed,
        },
        "session message applied",
      );
      return { ok: true, result };
    } catch (err) {
      if (err instanceof MessageRejectedError) return reject(ref, err.reason, err.message.slice(err.reason.length + 2));
      throw err;
    }
  };
  return {
    reject,
    parse,
    apply,
    async handle(payload, ref) {
      const parsed = parse(payload, ref);
      return parsed.ok ? apply(parsed.message, ref) : parsed;
    },
  };
}
