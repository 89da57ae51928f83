export { createWorker, scheduledAt, jobTimings, type KeepaliveWorker, type WorkerOptions } from "./create-worker.js";
export { runKeepalive, lockTtlMs, hasFallback, type KeepaliveDeps, type KeepaliveJobResult } from "./keepalive/run-keepalive.js";
