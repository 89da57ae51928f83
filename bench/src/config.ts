import { parseConfig, type KeepaliveConfig } from "@vmcp-keepalive/runtime";
import { BACKEND_ID, type BenchContext } from "./context.js";

/**
 * The config document (snake_case, as in the YAML file) the bench gives the real programs: one
 * backend (the bench's SDK backend), the bench's call timeout and concurrency.
 */
export function configDocument(ctx: BenchContext, prefix: string, intervalMs: number): Record<string, unknown> {
  return {
    redis: { url: ctx.redisUrl, prefix },
    // The backend's own interval may be shorter than the call timeout (1 s saturation runs); the
    // server-level one must not be.
    keepalive: { interval: 300_000, timeout: ctx.sizes.timeoutMs, concurrency: ctx.sizes.concurrency },
    log: { level: "info" },
    // Several workers and a scheduler run side by side: ephemeral ops ports, never a clash.
    http: { port: 0 },
    backends: [{ id: BACKEND_ID, url: ctx.backend.url, interval: intervalMs }],
  };
}

/** The same document parsed, for the in-process code paths. */
export function parsedConfig(ctx: BenchContext, prefix: string, intervalMs: number): KeepaliveConfig {
  return parseConfig(configDocument(ctx, prefix, intervalMs), {}, "bench");
}
