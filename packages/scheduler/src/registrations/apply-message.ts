import { type SessionMessage } from "@vmcp-keepalive/shared";
import { decidePair } from "./decide-pair.js";
import type { PairDecision, SessionStore } from "../store/session-store.js";
import { findBackend, type KeepaliveConfig, type Logger } from "@vmcp-keepalive/runtime";
import type { PairScheduler } from "../scheduling/pair-scheduler.js";

/** Thrown for a message that can never succeed (unknown backend): the job fails without retry. */
export class MessageRejectedError extends Error {
  constructor(
    readonly reason: "unknown_backend",
    detail: string,
  ) {
    super(`${reason}: ${detail}`);
    this.name = "MessageRejectedError";
  }
}

export interface ApplyResult {
  readonly type: SessionMessage["type"];
  readonly sessionId: string;
  readonly status: string;
  /** Pairs with an active job scheduler after this message. */
  readonly scheduled: number;
  /** Pairs stored with keepalive off, by reason. */
  readonly off: Readonly<Record<string, number>>;
  readonly removed: number;
}

export interface ApplyDeps {
  readonly config: KeepaliveConfig;
  readonly store: SessionStore;
  readonly scheduler: PairScheduler;
  readonly log: Logger;
  readonly now: () => number;
}

/**
 * Credentials matter only for `auth: session` backends: those for any other backend are not
 * stored (a backend unknown to the config is rejected by the caller's check or the script's).
 */
function withSessionCredentialsOnly<M extends SessionMessage & { type: "session.touched" | "session.credentials_updated" }>(config: KeepaliveConfig, m: M): M {
  const wanted = (backendId: string) => findBackend(config, backendId)?.auth !== "static";
  if (m.type === "session.touched") {
    if (!m.credentials) return m;
    return { ...m, credentials: Object.fromEntries(Object.entries(m.credentials).filter(([b]) => wanted(b))) };
  }
  return m;
}

/**
 * Applies one validated lifecycle message: state first (atomic, sequence-checked, in Redis), then
 * the job schedulers that follow from it. Idempotent: replaying a message changes nothing, and a
 * stale one is ignored.
 */
export async function applyMessage(deps: ApplyDeps, message: SessionMessage): Promise<ApplyResult> {
  const { store, scheduler, config } = deps;
  const base = { type: message.type, sessionId: message.sessionId };
  switch (message.type) {
    case "session.registered": {
      const unknown = message.backends.filter((b) => !findBackend(config, b.backendId)).map((b) => b.backendId);
      if (unknown.length > 0) {
        throw new MessageRejectedError(
          "unknown_backend",
          `backend${unknown.length > 1 ? "s" : ""} ${unknown.map((b) => JSON.stringify(b)).join(", ")} not in the config (known: ${config.backends.map((b) => b.id).join(", ") || "none"})`,
        );
      }
      const decisions: PairDecision[] = message.backends.map((b) => decidePair(findBackend(config, b.backendId)!, b, message));
      const { status, removedBackends, activeBackends, offBackends } = await store.applyRegistered(message, decisions, deps.now());
      if (status !== "applied" && status !== "duplicate") return { ...base, status, scheduled: 0, off: {}, removed: 0 };
      // Job schedulers for the pairs the script left active (an expired one stays without, and so
      // does a credentials pair without credentials); removals for the others. A duplicate
      // (redelivery) completes this way what its first delivery may not have.
      const off: Record<string, number> = {};
      let scheduled = 0;
      await Promise.all(
        decisions.map(async (d) => {
          if (activeBackends.includes(d.backendId)) {
            await scheduler.upsert(message.sessionId, d.backendId, findBackend(config, d.backendId)!.intervalMs);
            scheduled++;
          } else {
            const reason = offBackends[d.backendId];
            if (reason) off[reason] = (off[reason] ?? 0) + 1;
            await scheduler.remove(message.sessionId, d.backendId);
          }
        }),
      );
      await Promise.all(removedBackends.map((b) => scheduler.remove(message.sessionId, b)));
      return { ...base, status, scheduled, off, removed: removedBackends.length };
    }
    case "session.touched":
    case "session.credentials_updated": {
      const { status, unknownBackends, revivedBackends } = await store.applyTouched(withSessionCredentialsOnly(config, message), deps.now());
      if (status === "unknown_backends") {
        throw new MessageRejectedError("unknown_backend", `session ${message.sessionId} has no backend ${unknownBackends.map((b) => JSON.stringify(b)).join(", ")}`);
      }
      // New credentials turned these pairs back on: their job schedulers come back (a phase
      // offset in the next interval).
      await Promise.all(revivedBackends.map((b) => scheduler.upsert(message.sessionId, b, findBackend(config, b)!.intervalMs)));
      return { ...base, status, scheduled: revivedBackends.length, off: {}, removed: 0 };
    }
    case "session.backend_reinitialized": {
      // Not sequence-checked: reinitializeBackend already stored the new backend session under
      // the pair lock; this only reconciles the job scheduler with the pair as stored NOW, which
      // is idempotent in any order. The session mutex (held by our caller) keeps it from
      // interleaving with this session's `session.ended` or the reaper.
      const backend = findBackend(config, message.backendId);
      if (!backend) throw new MessageRejectedError("unknown_backend", `backend ${JSON.stringify(message.backendId)} not in the config`);
      const pair = await store.readPair(message.sessionId, message.backendId);
      if (!pair) return { ...base, status: "unknown", scheduled: 0, off: {}, removed: 0 };
      if (pair.status !== "active" || !pair.backendSessionId) return { ...base, status: "applied", scheduled: 0, off: {}, removed: 0 };
      await scheduler.upsert(message.sessionId, message.backendId, backend.intervalMs);
      return { ...base, status: "applied", scheduled: 1, off: {}, removed: 0 };
    }
    case "session.ended": {
      const { status, backends } = await store.applyEnded(message, deps.now());
      await Promise.all(backends.map((b) => scheduler.remove(message.sessionId, b)));
      return { ...base, status, scheduled: 0, off: {}, removed: backends.length };
    }
  }
}
