import type { Redis } from "ioredis";
import type { Keys, KeepaliveOutcome, PairState, PairStatus } from "@vmcp-keepalive/shared";
import { createTickStore } from "@vmcp-keepalive/worker/internal";

/**
 * A worker's outcome write, exactly as a tick makes it (the tick store's finish script, fenced on
 * the epoch the worker read), without a backend call: how tests stand in for a worker that read
 * the pair before something changed it. No breaker verdict (breakerOp `none`).
 */
export async function recordOutcome(
  redis: Redis,
  keys: Keys,
  pair: Pick<PairState, "sessionId" | "backendId" | "epoch">,
  outcome: Exclude<KeepaliveOutcome, { kind: "skipped" }>,
  now: number,
  options: { latencyMs?: number; status?: PairStatus } = {},
): Promise<{ written: true } | { written: false; why: "fenced" | "gone" | undefined }> {
  const res = await createTickStore(redis, keys).finish({
    pair,
    outcome,
    now,
    ...(options.latencyMs === undefined ? {} : { latencyMs: options.latencyMs }),
    ...(options.status === undefined ? {} : { pairStatus: options.status }),
    breakerOp: "none",
    failureThreshold: 3,
    minFailureSpanMs: 0,
    probeDelayMs: 60_000,
    afterFailures: 3,
    pingRetryDelayMs: 60_000,
  });
  return res.recorded ? { written: true } : { written: false, why: res.why };
}
