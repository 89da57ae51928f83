/*
 * @vmcp-keepalive/worker — one keepalive from start to end: the queue consumer, the tick (plan,
 * run, transitions), its Redis store and Lua scripts (lua/), MCP calls and their classification,
 * and the keepalive metrics.
 */
export { createWorker, scheduledAt, jobTimings, type KeepaliveWorker, type WorkerOptions } from "./create-worker.js";
export { runKeepalive, lockTtlMs, trafficWindowMs, type KeepaliveDeps, type KeepaliveJobResult } from "./tick/run-tick.js";
export { nextCall, planRecord, hasFallback, type CallMethod, type CallResult, type TickState, type TickRecord, type BreakerOp, type MethodOp } from "./tick/plan.js";
export type { KeepaliveEventMap } from "./tick/keepalive-events.js";
export {
  createTickStore,
  jittered,
  type TickStore,
  type TickStart,
  type BeginOptions,
  type FinishInput,
  type FinishResult,
  type FinishRecord,
  type FinishAccounting,
  type BreakerTransition,
  type MethodTransition,
} from "./store/tick-store.js";
export { createBackendClient, KEEPALIVE_ID_PREFIX, type BackendClient, type BackendClientOptions, type McpTarget, type McpRequest, type McpCallResult } from "./protocol/backend-client.js";
export { classifyError, classifyHttpStatus, classifyHttpError, classifyRpcError, type Classified } from "./protocol/classify.js";
export { createKeepaliveMetrics, attachKeepaliveMetrics, LATENCY_BUCKETS_MS, type KeepaliveMetrics } from "./metrics/keepalive-metrics.js";
