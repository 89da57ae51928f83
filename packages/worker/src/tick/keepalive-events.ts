import type { AutoDisabledReason, FailureReason, SkipReason } from "@vmcp-keepalive/shared";
import type { CallMethod } from "./plan.js";

/** Events of the worker's keepalive core. Metrics and logs subscribe; the core imports neither. */
export interface KeepaliveEventMap {
  /** A backend call is about to be made. */
  attempt: { backendId: string; sessionId: string; method: CallMethod };
  success: { backendId: string; sessionId: string; method: CallMethod; latencyMs: number };
  failure: { backendId: string; sessionId: string; method: CallMethod; latencyMs: number; reason: FailureReason; detail: string };
  skipped: { backendId: string; sessionId: string; reason: SkipReason };
  /**
   * A backend's breaker opened: keepalive is auto-disabled for it. Emitted once per opening, by
   * the worker whose write opened it; `method` is the call that made the tripping failure.
   */
  autoDisabled: { backendId: string; method: CallMethod; reason: AutoDisabledReason; consecutiveFailures: number };
  /** An overdue tick was put back until its catch-up slot `at` (ms), spreading the catch-up after an outage. */
  deferred: { backendId: string; sessionId: string; at: number };
  /** Time from a tick's scheduled time to the worker starting it. */
  scheduleLag: { backendId: string; lagMs: number };
}
