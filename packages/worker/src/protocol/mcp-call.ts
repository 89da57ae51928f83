import { randomUUID } from "node:crypto";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import type { JSONRPCMessage } from "@modelcontextprotocol/sdk/types.js";
import type { FailureReason } from "@vmcp-keepalive/shared";
import { CallTimeoutError, classifyError, classifyRpcError } from "./classify.js";
import { createKeepAliveFetch, type FetchLike, type KeepAliveFetch } from "./keep-alive-fetch.js";

export interface McpTarget {
  readonly url: string;
  /** The existing backend session (`Mcp-Session-Id`); no `initialize` is ever sent. */
  readonly sessionId: string;
  /** The negotiated revision, sent as `MCP-Protocol-Version`. */
  readonly protocolVersion?: string | undefined;
  readonly headers?: Readonly<Record<string, string>> | undefined;
}

export type McpRequest = { readonly method: "ping" } | { readonly method: "tools/call"; readonly tool: string; readonly args: Readonly<Record<string, unknown>> };

export type McpCallResult =
  | { readonly ok: true; readonly latencyMs: number; readonly result: Record<string, unknown> }
  | {
      readonly ok: false;
      readonly latencyMs: number;
      readonly reason: FailureReason;
      readonly detail: string;
      readonly httpStatus?: number;
    };

export interface CallMcpOptions {
  /**
   * The HTTP layer under the SDK transport. The worker passes its own keep-alive pool (and closes
   * it on stop). @defaultValue one keep-alive pool shared by the process (idle sockets are unref'd)
   */
  readonly fetch?: FetchLike;
}

let processPool: KeepAliveFetch | undefined;
function defaultFetch(): FetchLike {
  processPool ??= createKeepAliveFetch();
  return processPool.fetch;
}

/** Abort reason once a call is over (one instance: no stack captured per call). */
const CALL_ENDED = new Error("keepalive call ended");

/**
 * Replaces every configured header value (a credential, e.g. `Bearer …`) found in a detail that is
 * about to be logged: an answer may echo what was sent, in any field.
 */
function redact(detail: string, headers: Readonly<Record<string, string>> | undefined): string {
  if (!headers) return detail;
  let out = detail;
  for (const value of Object.values(headers)) {
    if (value.length < 4) continue;
    out = out.split(value).join("[redacted]");
    // The secret part of `Bearer x` / `Basic x` alone, too.
    const token = value.split(/\s+/).pop() ?? "";
    if (token.length >= 8) out = out.split(token).join("[redacted]");
  }
  return out;
}

/** Prefix of our JSON-RPC ids: strings, so they can never equal the vMCP's own numeric ids. */
export const KEEPALIVE_ID_PREFIX = "vmk-ka-";

/**
 * Sends one JSON-RPC request on an existing backend session over Streamable HTTP.
 *
 * Why not `Client.ping()`: the SDK client numbers requests 0, 1, 2… and the vMCP does the same on
 * this very session; a wrapper that keys responses by id loses one of two colliding answers. We
 * use the SDK transport with a string id instead. Each call gets its own transport and its own
 * AbortController, which is the only signal its HTTP request sees: the SDK shares one signal
 * across a transport's fetches and leaks listeners over thousands of requests (docs/design.md).
 * HTTP runs over a keep-alive connection pool (keep-alive-fetch.ts: a third of the client CPU of
 * Node's fetch per call). `terminateSession()` is never called.
 */
export async function callMcp(target: McpTarget, request: McpRequest, timeoutMs: number, options: CallMcpOptions = {}): Promise<McpCallResult> {
  const started = performance.now();
  const id = `${KEEPALIVE_ID_PREFIX}${randomUUID()}`;
  const controller = new AbortController();
  // Built only when it fires: an Error captures a stack, measurable at thousands of calls/s.
  let timeoutError: CallTimeoutError | undefined;
  const timer = setTimeout(() => controller.abort((timeoutError = new CallTimeoutError(timeoutMs))), timeoutMs);

  const baseFetch = options.fetch ?? defaultFetch();
  // The call's controller is the only signal the request sees (the transport is never started,
  // so it has none of its own; see below).
  const boundFetch: FetchLike = (input, init) => baseFetch(input, { ...init, signal: controller.signal });
  const transport = new StreamableHTTPClientTransport(new URL(target.url), {
    sessionId: target.sessionId,
    fetch: boundFetch,
    requestInit: { headers: { ...target.headers } },
    reconnectionOptions: { maxRetries: 0, initialReconnectionDelay: 1_000, maxReconnectionDelay: 1_000, reconnectionDelayGrowFactor: 1 },
  });
  if (target.protocolVersion) transport.setProtocolVersion(target.protocolVersion);

  const answer = new Promise<JSONRPCMessage>((resolve, reject) => {
    transport.onmessage = (message) => {
      if ("id" in message && message.id === id && ("result" in message || "error" in message)) resolve(message);
    };
    controller.signal.addEventListener("abort", () => reject(controller.signal.reason), { once: true });
  });
  answer.catch(() => {});
  // Stream errors surface through send() or the timeout; the transport also reports them here.
  // A reply stream cut for its size would otherwise wait for the timeout: end the call at once.
  transport.onerror = (err) => {
    if (/larger than \d+ bytes/.test(err.message)) controller.abort(err);
  };

  const elapsed = () => Math.round((performance.now() - started) * 1000) / 1000;
  try {
    // No transport.start(): in SDK 1.32 it only creates the transport's own AbortController,
    // whose signal our fetch ignores (the call's controller is the only one), and close() then
    // aborts it, building a DOMException with a stack per call: together ~6 % of the worker's
    // CPU at saturation (bench --profile-throughput). Without it send() works the same, and a
    // reply stream that ends early is not reconnected (we would not want that either). The SDK
    // version is pinned; mcp-call.test.ts and classify.test.ts cover JSON, SSE and failures.
    const message: JSONRPCMessage =
      request.method === "ping" ? { jsonrpc: "2.0", id, method: "ping" } : { jsonrpc: "2.0", id, method: "tools/call", params: { name: request.tool, arguments: { ...request.args } } };
    await transport.send(message);
    const reply = await answer;
    if ("error" in reply) {
      const c = classifyRpcError(reply.error.code, reply.error.message);
      return { ok: false, latencyMs: elapsed(), ...c, detail: redact(c.detail, target.headers) };
    }
    const result = ("result" in reply ? reply.result : {}) as Record<string, unknown>;
    if (request.method === "tools/call" && result["isError"] === true) {
      return { ok: false, latencyMs: elapsed(), reason: "tool_error", detail: `tool ${request.tool} returned isError` };
    }
    return { ok: true, latencyMs: elapsed(), result };
  } catch (err) {
    const c = classifyError(timeoutError ?? err);
    return { ok: false, latencyMs: elapsed(), ...c, detail: redact(c.detail, target.headers) };
  } finally {
    clearTimeout(timer);
    // Ends a reply stream the server left open (SSE), so its connection is not held.
    if (!controller.signal.aborted) controller.abort(CALL_ENDED);
    await transport.close().catch(() => {});
  }
}
