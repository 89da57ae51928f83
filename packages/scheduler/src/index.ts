/*
 * @vmcp-keepalive/scheduler — registrations (parse, policy, apply), job schedulers, the session
 * store and its Lua scripts (lua/), the reaper, the ops HTTP server with Bull Board, the CLI.
 */
export { createScheduler, type Scheduler, type SchedulerOptions } from "./create-scheduler.js";
export { phaseOffset } from "./scheduling/phase-offset.js";
export { createPairScheduler, type PairScheduler } from "./scheduling/pair-scheduler.js";
export { applyMessage, MessageRejectedError, type ApplyResult } from "./registrations/apply-message.js";
export { decidePair } from "./registrations/decide-pair.js";
export type { RegistrationEventMap } from "./registrations/registration-events.js";
export { createSessionStore, DEFAULT_TOMBSTONE_MS, type SessionStore, type PairDecision, type ApplyStatus, type SessionRecord, type ReapResult } from "./store/session-store.js";
export { createSessionReaper, type SessionReaper, type SessionReaperDeps } from "./reaper/session-reaper.js";
export { createReconciler, RECONCILE_KINDS, type Reconciler, type ReconcileKind } from "./reconcile/reconciler.js";
