import type { VmcpEvent } from "@vmcp-keepalive/shared";
import type { BackendConfig, Logger, TypedEmitter } from "@vmcp-keepalive/runtime";
import type { McpCallResult } from "../protocol/backend-client.js";
import type { FinishResult } from "../store/tick-store.js";
import type { CallMethod, MethodOp } from "./plan.js";
import type { KeepaliveEventMap } from "./keepalive-events.js";

/** What acting on a transition needs: the core's events (metrics subscribe) and the `vmcp-events` publisher. */
export interface TransitionDeps {
  readonly events: TypedEmitter<KeepaliveEventMap>;
  /** Publishes an event on `vmcp-events`. */
  readonly publishEvent: (event: VmcpEvent) => Promise<void>;
}

/** Logs and publishes what this tick's write changed. Only the tick that made a transition sees it. */
export async function onTransitions(
  deps: TransitionDeps,
  log: Logger,
  backend: BackendConfig,
  res: FinishResult,
  t: { now: number; probeDelayMs: number; method: CallMethod; final: McpCallResult; methodOp: MethodOp | undefined },
): Promise<void> {
  const backendId = backend.id;
  const reason = t.final.ok ? undefined : t.final.reason;
  const probeAt = new Date(t.now + t.probeDelayMs).toISOString();
  switch (res.breakerTransition) {
    case "opened":
      if (!reason) break;
      log.warn(
        { backendId, reason, consecutiveFailures: res.breakerFailures, probeAt },
        `circuit breaker opened: keepalive disabled for backend ${backendId} after ${res.breakerFailures} consecutive failures (${reason}); probe at ${probeAt}`,
      );
      deps.events.emit("autoDisabled", { backendId, method: t.method, reason, consecutiveFailures: res.breakerFailures });
      await publish(deps, log, {
        type: "backend.breaker_opened",
        v: 1,
        occurredAt: new Date(t.now).toISOString(),
        backendId,
        reason,
        consecutiveFailures: res.breakerFailures,
        probeAt,
      });
      break;
    case "reopened":
      log.info({ backendId, reason, probeAt }, `circuit breaker probe failed: backend ${backendId} stays disabled; next probe at ${probeAt}`);
      break;
    case "closed":
      log.info({ backendId }, `circuit breaker closed: backend ${backendId} recovered, keepalive resumed`);
      await publish(deps, log, { type: "backend.breaker_closed", v: 1, occurredAt: new Date(t.now).toISOString(), backendId });
      break;
    case "released":
      log.debug({ backendId }, "breaker probe gave no verdict (session not found); the next tick probes");
      break;
    case undefined:
      break;
  }
  if (res.methodTransition === "to_tool" && backend.method.kind === "tool") {
    const why = t.methodOp === "ping_unsupported" ? "method_not_found" : "ping_failures";
    log.warn(
      { backendId, tool: backend.method.tool, reason: why },
      `keepalive for backend ${backendId} switched from ping to tool ${backend.method.tool} (${why === "method_not_found" ? "ping not implemented" : "ping keeps failing while the tool works"}); ping is retried every probe window`,
    );
  } else if (res.methodTransition === "to_ping") {
    log.info({ backendId }, `keepalive for backend ${backendId} switched back to ping: ping works again`);
  }
}

/** Publishes on `vmcp-events`; a failure is logged, never thrown out of a tick. */
export async function publish(deps: TransitionDeps, log: Logger, event: VmcpEvent): Promise<void> {
  try {
    await deps.publishEvent(event);
  } catch (err) {
    log.error({ err, type: event.type }, "could not publish to vmcp-events");
  }
}
