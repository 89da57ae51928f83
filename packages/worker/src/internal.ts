/*
 * @vmcp-keepalive/worker/internal — for this project's own tests and bench only: the worker's
 * parts, wired by hand to drive a tick directly, check a script or measure a piece. Not a
 * supported API: it changes whenever the worker does. Operators and embedders use the package
 * root (index.ts).
 */
export { createTickRunner, type TickRunner } from "./create-worker.js";
export { runKeepalive, lockTtlMs, type KeepaliveDeps, type KeepaliveJobResult } from "./tick/run-tick.js";
export { scheduledAt, planCatchUp, catchUpFraction, overdueAfterMs, type CatchUpInput, type CatchUpPlan } from "./tick/keepalive-job.js";
export { createTickLockStrategy, inScriptTickLock, redlockTickLock, type TickLock, type TickLockStrategy } from "./tick/tick-lock.js";
export { nextCall, planRecord, type AuthMode, type CallMethod, type CallResult, type TickState } from "./tick/plan.js";
export { openPairCredentials } from "./tick/session-credentials.js";
export { createTickStore, combinedTickStore, splitTickStore, jittered, type TickStore, type TickStart, type BeginOptions, type FinishInput, type FinishResult } from "./store/tick-store.js";
export { createBackendClient, KEEPALIVE_ID_PREFIX, type BackendClient, type McpCallResult } from "./protocol/backend-client.js";
export { classifyError, classifyHttpStatus } from "./protocol/classify.js";
export { createKeepaliveMetrics, LATENCY_BUCKETS_MS } from "./metrics/keepalive-metrics.js";
