import { Counter, type Registry } from "prom-client";
import { REJECTION_REASONS } from "@vmcp-keepalive/shared";
import { RECONCILE_KINDS } from "./reconcile/reconciler.js";
import { STREAM_ENTRY_RESULTS, type RegistrationEventMap } from "./registrations/registration-events.js";
import { type TypedEmitter } from "@vmcp-keepalive/runtime";

/** Scheduler-side metrics: registration messages applied and rejected. */
export function createSchedulerMetrics(registry: Registry, events: TypedEmitter<RegistrationEventMap>): void {
  const applied = new Counter({
    name: "vmk_registration_messages_total",
    help: "Lifecycle messages consumed from vmcp-sessions and the ingress stream, by type and result (applied, duplicate, stale, ended, unknown).",
    labelNames: ["type", "status"],
    registers: [registry],
  });
  const rejected = new Counter({
    name: "vmk_registration_rejected_total",
    help: `Lifecycle messages rejected, by reason (${REJECTION_REASONS.join(", ")}).`,
    labelNames: ["reason"],
    registers: [registry],
  });
  for (const reason of REJECTION_REASONS) rejected.inc({ reason }, 0);
  const reconciled = new Counter({
    name: "vmk_reconciled_total",
    help: `Job schedulers repaired by reconcile passes, by kind (${RECONCILE_KINDS.join(", ")}).`,
    labelNames: ["kind"],
    registers: [registry],
  });
  for (const kind of RECONCILE_KINDS) reconciled.inc({ kind }, 0);
  const streamEntries = new Counter({
    name: "vmk_stream_messages_total",
    help: `Entries of the ingress stream handled, by result (${STREAM_ENTRY_RESULTS.join(", ")}); failed ones stay pending and are claimed again.`,
    labelNames: ["result"],
    registers: [registry],
  });
  for (const result of STREAM_ENTRY_RESULTS) streamEntries.inc({ result }, 0);
  const claimed = new Counter({
    name: "vmk_stream_claimed_total",
    help: "Pending ingress stream entries this scheduler took over after streams.claim_idle (from a scheduler that died, or its own failed ones).",
    registers: [registry],
  });
  events.on("streamEntry", (e) => streamEntries.inc({ result: e.result }));
  events.on("streamClaimed", (e) => claimed.inc(e.count));
  events.on("reconciled", (e) => reconciled.inc({ kind: e.kind }));
  events.on("applied", (e) => applied.inc({ type: e.type, status: e.status }));
  events.on("rejected", (e) => rejected.inc({ reason: e.reason }));
}
