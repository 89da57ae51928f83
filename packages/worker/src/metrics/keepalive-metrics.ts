import { Counter, Histogram, type Registry } from "prom-client";
import { FAILURE_REASONS, SKIP_REASONS } from "@vmcp-keepalive/shared";
import type { KeepaliveEventMap } from "../tick/keepalive-events.js";
import type { TypedEmitter } from "@vmcp-keepalive/runtime";

/** Latency buckets in ms: a local ping is ~1-5 ms, a remote one tens, a slow backend seconds. */
export const LATENCY_BUCKETS_MS = [1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000];

/**
 * The worker's keepalive metrics (docs/operations.md, "Metrics"). The first five names are
 * required as they are (docs/design.md, "Requirements from the user"; hence no `_total` suffix on
 * the first three and `_ms` on the histogram). Labels: `backend`, `method`, and `reason` where it
 * applies — never a session id (unbounded cardinality).
 */
export interface KeepaliveMetrics {
  readonly attempts: Counter<"backend" | "method">;
  readonly successes: Counter<"backend" | "method">;
  readonly failures: Counter<"backend" | "method" | "reason">;
  readonly latency: Histogram<"backend" | "method">;
  readonly autoDisabled: Counter<"backend" | "method" | "reason">;
  readonly skipped: Counter<"backend" | "reason">;
  readonly scheduleLag: Histogram<"backend">;
  readonly deferred: Counter<"backend">;
}

export function createKeepaliveMetrics(registry: Registry): KeepaliveMetrics {
  const registers = [registry];
  return {
    attempts: new Counter({
      name: "keepalive_attempt_count",
      help: "Keepalive calls attempted against a backend.",
      labelNames: ["backend", "method"],
      registers,
    }),
    successes: new Counter({
      name: "keepalive_success_count",
      help: "Keepalive calls that succeeded.",
      labelNames: ["backend", "method"],
      registers,
    }),
    failures: new Counter({
      name: "keepalive_failure_count",
      help: `Keepalive calls that failed, by reason (${FAILURE_REASONS.join(", ")}).`,
      labelNames: ["backend", "method", "reason"],
      registers,
    }),
    latency: new Histogram({
      name: "keepalive_latency_ms",
      help: "Latency of keepalive calls in milliseconds (successes and failures).",
      labelNames: ["backend", "method"],
      buckets: LATENCY_BUCKETS_MS,
      registers,
    }),
    autoDisabled: new Counter({
      name: "keepalive_auto_disabled_total",
      help: "Times keepalive was auto-disabled for a backend (its circuit breaker opened), by the failure reason that tripped it.",
      labelNames: ["backend", "method", "reason"],
      registers,
    }),
    skipped: new Counter({
      name: "keepalive_skipped_total",
      help: `Keepalive ticks skipped without calling the backend, by reason (${SKIP_REASONS.join(", ")}).`,
      labelNames: ["backend", "reason"],
      registers,
    }),
    scheduleLag: new Histogram({
      name: "keepalive_schedule_lag_seconds",
      help: "Delay from a tick's scheduled time to a worker starting it.",
      labelNames: ["backend"],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers,
    }),
    deferred: new Counter({
      name: "keepalive_catch_up_deferred_total",
      help: "Overdue ticks (their time passed during an outage) put back until their catch-up slot in the next interval.",
      labelNames: ["backend"],
      registers,
    }),
  };
}

/** Subscribes the metrics to the keepalive core's events. Returns the unsubscribe function. */
export function attachKeepaliveMetrics(events: TypedEmitter<KeepaliveEventMap>, m: KeepaliveMetrics): () => void {
  const offs = [
    events.on("attempt", (e) => m.attempts.inc({ backend: e.backendId, method: e.method })),
    events.on("success", (e) => {
      m.successes.inc({ backend: e.backendId, method: e.method });
      m.latency.observe({ backend: e.backendId, method: e.method }, e.latencyMs);
    }),
    events.on("failure", (e) => {
      m.failures.inc({ backend: e.backendId, method: e.method, reason: e.reason });
      m.latency.observe({ backend: e.backendId, method: e.method }, e.latencyMs);
    }),
    events.on("skipped", (e) => m.skipped.inc({ backend: e.backendId, reason: e.reason })),
    events.on("autoDisabled", (e) => m.autoDisabled.inc({ backend: e.backendId, method: e.method, reason: e.reason })),
    events.on("deferred", (e) => m.deferred.inc({ backend: e.backendId })),
    events.on("scheduleLag", (e) => m.scheduleLag.observe({ backend: e.backendId }, Math.max(0, e.lagMs) / 1000)),
  ];
  return () => offs.forEach((off) => off());
}
