import type { Locker, TryLockResult } from "../lock/locker.js";
import type { ClientLogger } from "../logger.js";
import { BackendRegistrationSchema } from "../messages/schema.js";
import type { ReinitializeStateResult } from "../state/reinitialize-pair.js";
import { asError, type PublishResult } from "./publish-guard.js";

/**
 * What happened to the pair lock during a re-initialize:
 * - `held`: taken within `lockTimeoutMs` and still valid when the new state was written;
 * - `expired`: taken, but the callback outlasted `reinitializeLockTtlMs`;
 * - `busy`: someone still held it after `lockTimeoutMs` (another re-initialize of the same pair,
 *   or a worker past its own TTL) — the re-initialize went ahead without it;
 * - `unavailable`: the lock nodes could not form a quorum — went ahead without it.
 */
export type ReinitializeLock = "held" | "expired" | "busy" | "unavailable";

/**
 * What happened to the stored pair:
 * - `written`: new backend session id and protocol version stored, epoch bumped;
 * - `unknown_pair`: no such pair (session never registered with this backend, ended or reaped) —
 *   nothing stored; register the session again (with the new backend session id) to keep it alive;
 * - `write_failed`: Redis refused the write (logged). The pair keeps its old backend session id:
 *   its next keepalive gets 404 and a `backend.session_expired` event names the OLD id, which the
 *   vMCP recognises as not current and ignores or answers with another `reinitializeBackend`;
 * - `invalid_result`: the callback returned no valid backend session id (1-512 visible ASCII) or
 *   protocol version (`YYYY-MM-DD`) — the same rules as `session.registered`; nothing stored.
 */
export type ReinitializeState = "written" | "unknown_pair" | "write_failed" | "invalid_result";

export interface ReinitializeResult<R> {
  /** What the callback returned. */
  readonly value: R;
  readonly lock: ReinitializeLock;
  readonly state: ReinitializeState;
  /** The pair's epoch after the write (when `written`). */
  readonly epoch?: number;
  /** True when the pair had expired and the scheduler was asked to restore its job scheduler. */
  readonly schedulerRestoreRequested: boolean;
}

/** What a re-initialize callback returns: the new backend session. */
export interface ReinitializedBackend {
  readonly backendSessionId: string;
  /** The negotiated MCP revision (sent back as `MCP-Protocol-Version` by keepalives). */
  readonly protocolVersion?: string | undefined;
}

/** The new backend session of one pair, as stored. */
export interface ReinitializedPair {
  readonly sessionId: string;
  readonly backendId: string;
  readonly backendSessionId: string;
  readonly protocolVersion: string | undefined;
}

export interface ReinitializeBackendOptions {
  /** The pair lock (fails fast while its Redis is away). */
  readonly locker: Locker;
  /** The lock resource of a pair (`keys.pairLock`, the contract). */
  readonly pairLock: (sessionId: string, backendId: string) => string;
  /** Stores the new backend session and bumps the pair epoch in one atomic step (`reinitializePair`). */
  readonly store: (pair: ReinitializedPair) => Promise<ReinitializeStateResult>;
  /** Called with a valid new backend session before it is stored (soft-state refreshes carry it from then on). */
  readonly onNewSession?: (pair: ReinitializedPair) => void;
  /** Asks the scheduler to restore an expired pair's job scheduler (`session.backend_reinitialized`). Must not reject. */
  readonly requestRestore: (sessionId: string, backendId: string) => Promise<PublishResult>;
  /** How long to wait for a busy lock. */
  readonly lockTimeoutMs: number;
  /** TTL of the lock while the callback runs. */
  readonly lockTtlMs: number;
  readonly log: ClientLogger;
}

export type ReinitializeBackend = <R extends ReinitializedBackend>(sessionId: string, backendId: string, fn: () => Promise<R>) => Promise<ReinitializeResult<R>>;

/**
 * Re-initializes one backend of a session under the pair lock. Contract:
 * - `fn` always runs and a valid result is always stored, with or without the lock: the vMCP's
 *   user is waiting on that backend, and a keepalive problem must never reach them. Without the
 *   lock the state is still safe — the write bumps the epoch, which fences out any keepalive that
 *   read the old state; only "no keepalive reaches the old backend session after this returns" is
 *   weakened, and `lock` says so (docs/vmcp-integration.md, "Re-initializing a backend").
 * - A busy lock is waited for up to `lockTimeoutMs`; an unreachable one is not waited for (while
 *   it is down no worker can lock either), so a Redis outage costs the caller no extra wait.
 * - `fn`'s own errors are re-thrown after the lock is released; lock and Redis problems are
 *   reported in the result and logged, never thrown.
 */
export function createReinitializeBackend(options: ReinitializeBackendOptions): ReinitializeBackend {
  const { log, locker } = options;

  const acquire = async (resource: string): Promise<TryLockResult> => {
    const deadline = Date.now() + options.lockTimeoutMs;
    try {
      const first = await locker.tryLock(resource, options.lockTtlMs);
      if (first.acquired || first.reason !== "locked") return first;
      return await locker.lock(resource, options.lockTtlMs, Math.max(0, deadline - Date.now()));
    } catch (err) {
      return { acquired: false, reason: "lock_unavailable", error: asError(err) };
    }
  };

  const write = async (pair: ReinitializedPair): Promise<{ state: "written" | "unknown_pair" | "write_failed"; epoch?: number; expired: boolean }> => {
    try {
      const stored = await options.store(pair);
      if (stored.status === "applied") return { state: "written", epoch: stored.epoch, expired: stored.previousStatus === "expired" };
      log.info({ sessionId: pair.sessionId, backendId: pair.backendId }, "re-initialized a backend of a session that is not registered (ended or reaped); nothing stored");
      return { state: "unknown_pair", expired: false };
    } catch (err) {
      log.warn({ err: asError(err), sessionId: pair.sessionId, backendId: pair.backendId }, "could not store the re-initialized backend session");
      return { state: "write_failed", expired: false };
    }
  };

  return async (sessionId, backendId, fn) => {
    const acquired = await acquire(options.pairLock(sessionId, backendId));
    if (!acquired.acquired) {
      log.warn({ sessionId, backendId, reason: acquired.reason, err: acquired.reason === "lock_unavailable" ? acquired.error : undefined }, "pair lock not obtained; re-initializing without it");
    }
    try {
      const value = await fn();
      let lock: ReinitializeLock = acquired.acquired ? "held" : acquired.reason === "locked" ? "busy" : "unavailable";
      if (acquired.acquired && !acquired.lock.isValid()) lock = "expired";
      const valid = BackendRegistrationSchema.safeParse({ backendId, backendSessionId: value.backendSessionId, protocolVersion: value.protocolVersion });
      if (!valid.success || valid.data.backendSessionId === undefined) {
        log.error({ sessionId, backendId, detail: valid.error?.issues[0]?.message ?? "backendSessionId missing" }, "re-initialize callback returned an invalid backend session; nothing stored");
        return { value, lock, state: "invalid_result", schedulerRestoreRequested: false };
      }
      const pair: ReinitializedPair = { sessionId, backendId, backendSessionId: valid.data.backendSessionId, protocolVersion: value.protocolVersion };
      options.onNewSession?.(pair);
      const { state, epoch, expired } = await write(pair);
      // An expired pair lost its job scheduler (the worker removed it on the old session's 404);
      // the scheduler, the only place that creates job schedulers, restores it from the state just
      // stored. Asked while the lock is held, so no tick sees a gap.
      const restore = expired && (await options.requestRestore(sessionId, backendId)).ok;
      return { value, lock, state, ...(epoch === undefined ? {} : { epoch }), schedulerRestoreRequested: restore };
    } finally {
      if (acquired.acquired) await acquired.lock.release();
    }
  };
}
