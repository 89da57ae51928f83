import { parseConfig, type KeepaliveConfig } from "@vmcp-keepalive/runtime";
import type { CredentialKey } from "@vmcp-keepalive/shared";
import { BACKEND_ID, type BenchContext } from "./context.js";

/**
 * How the bench backend's calls authenticate: `static` (one header from the config, as a gateway
 * token) or `session` (each pair's own header, sealed by the vMCP, opened by the worker per call).
 */
export type BenchAuth = { readonly mode: "static"; readonly header: string } | { readonly mode: "session"; readonly key: CredentialKey };

/**
 * The config document (snake_case, as in the YAML file) the bench gives the real programs: one
 * backend (the bench's SDK backend), the bench's call timeout and concurrency.
 */
export function configDocument(ctx: BenchContext, prefix: string, intervalMs: number, auth?: BenchAuth): Record<string, unknown> {
  const backend = { id: BACKEND_ID, url: ctx.backend.url, interval: intervalMs };
  return {
    redis: { url: ctx.redisUrl, prefix, ...(ctx.redisTls ? { tls: { ca_file: ctx.redisTls.ca.path, cert_file: ctx.redisTls.clientCert.path, key_file: ctx.redisTls.clientKey.path } } : {}) },
    // The backend's own interval may be shorter than the call timeout (1 s saturation runs); the
    // server-level one must not be.
    keepalive: { interval: 300_000, timeout: ctx.sizes.timeoutMs, concurrency: ctx.sizes.concurrency },
    log: { level: "info" },
    // Several workers and a scheduler run side by side: ephemeral ops ports, never a clash.
    http: { port: 0 },
    backends: [auth?.mode === "static" ? { ...backend, headers: { Authorization: auth.header } } : auth?.mode === "session" ? { ...backend, auth: "session" } : backend],
    ...(auth?.mode === "session" ? { credentials: { keys: [auth.key] } } : {}),
  };
}

/** The same document parsed, for the in-process code paths. */
export function parsedConfig(ctx: BenchContext, prefix: string, intervalMs: number, auth?: BenchAuth): KeepaliveConfig {
  return parseConfig(configDocument(ctx, prefix, intervalMs, auth), {}, "bench");
}
