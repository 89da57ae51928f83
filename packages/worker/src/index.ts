/*
 * @vmcp-keepalive/worker — one keepalive from start to end: the queue consumer, the tick (plan,
 * run, transitions), its Redis store and Lua scripts (lua/), MCP calls and their classification,
 * and the keepalive metrics.
 */
export { createWorker, createTickRunner, jobTimings, type KeepaliveWorker, type TickRunner, type WorkerOptions } from "./create-worker.js";
export { runKeepalive, lockTtlMs, trafficWindowMs, type KeepaliveDeps, type KeepaliveJobResult } from "./tick/run-tick.js";
export { processKeepaliveJob, scheduledAt, planCatchUp, catchUpFraction, overdueAfterMs, type CatchUpInput, type CatchUpPlan } from "./tick/keepalive-job.js";
export { createTickLockStrategy, inScriptTickLock, redlockTickLock, type TickLock, type TickLockStrategy, type LockSkip } from "./tick/tick-lock.js";
export { nextCall, planRecord, hasFallback, type CallMethod, type CallResult, type TickState, type TickRecord, type BreakerOp, type MethodOp, type AuthMode } from "./tick/plan.js";
export type { KeepaliveEventMap } from "./tick/keepalive-events.js";
export { openPairCredentials, type UnopenedWhy } from "./tick/session-credentials.js";
export {
  createTickStore,
  combinedTickStore,
  splitTickStore,
  jittered,
  type TickStore,
  type TickStart,
  type StartSkip,
  type BeginOptions,
  type FinishInput,
  type FinishResult,
  type FinishAccounting,
} from "./store/tick-store.js";
export type { ScriptLock, LockAfter, FinishRecord, BreakerTransition, MethodTransition } from "./store/scripts.js";
export { createBackendClient, KEEPALIVE_ID_PREFIX, type BackendClient, type BackendClientOptions, type McpTarget, type McpRequest, type McpCallResult } from "./protocol/backend-client.js";
export { classifyError, classifyHttpStatus, classifyHttpError, classifyRpcError, type Classified } from "./protocol/classify.js";
export { createKeepaliveMetrics, attachKeepaliveMetrics, LATENCY_BUCKETS_MS, type KeepaliveMetrics } from "./metrics/keepalive-metrics.js";
