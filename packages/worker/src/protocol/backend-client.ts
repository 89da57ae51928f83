import { randomUUID } from "node:crypto";
import { Agent, buildConnector, type Dispatcher } from "undici";
import type { FailureReason } from "@vmcp-keepalive/shared";
import { classifyError, classifyHttpError, classifyRpcError, errorCode, type Classified } from "./classify.js";
import { answerIn, ProtocolError, SseAnswerReader, type JsonRpcAnswer } from "./json-rpc-answer.js";

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

export interface BackendClientOptions {
  /**
   * Most body bytes read of one answer (JSON or an event stream); past it undici cuts the
   * connection and the call fails as `protocol_error`. A keepalive answer is tiny; a huge one
   * must not grow the worker's memory.
   */
  readonly maxResponseBytes: number;
  /**
   * Close a pooled connection after it has been idle this long. A shorter `Keep-Alive: timeout=N`
   * hint from the server is honoured (minus undici's 2 s margin), so a socket the server is about
   * to close is not reused. @defaultValue 4000
   */
  readonly idleSocketTimeoutMs?: number;
  /** Most connections per backend origin. @defaultValue 256 */
  readonly maxSocketsPerHost?: number;
  /** TCP (and TLS) connect timeout; a connect that takes longer is a `connection_error`. @defaultValue 10000 */
  readonly connectTimeoutMs?: number;
  /**
   * After our answer arrived on an event stream the server has not ended yet, how long the stream
   * may run on before its connection is cut. The server usually ends it a moment later; cutting at
   * once would throw the connection away. @defaultValue 1000
   */
  readonly streamGraceMs?: number;
}

/** Sends keepalive requests on existing backend sessions; one per worker. */
export interface BackendClient {
  /** One JSON-RPC request on the target's session. Never throws: every failure is a reason. */
  call(target: McpTarget, request: McpRequest, timeoutMs: number): Promise<McpCallResult>;
  /** Closes every pooled connection; calls still in flight fail as `connection_error`. */
  close(): Promise<void>;
}

/** Prefix of our JSON-RPC ids: strings, so they can never equal the vMCP's own numeric ids. */
export const KEEPALIVE_ID_PREFIX = "vmk-ka-";

const ACCEPT = "application/json, text/event-stream";

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

/**
 * A keepalive client for backend MCP servers: JSON-RPC over Streamable HTTP, spoken directly with
 * undici's `request` on one `Agent` (a keep-alive pool per backend origin).
 *
 * Why not the SDK's `StreamableHTTPClientTransport`: a keepalive is one POST on a session that
 * already exists, and the transport is built for a long-lived connection (start, an SSE GET
 * stream, reconnection, session termination, one abort signal shared by all its requests). Using
 * it per call needs a `fetch` with web streams and `Response` objects under it, and its failures
 * reach us as error text. Here the exchange is what the protocol asks of one request: POST with
 * `Accept: application/json, text/event-stream`, `Mcp-Session-Id` and `MCP-Protocol-Version`, and
 * the answer is the response with our id, in a JSON body or in an event of a stream. Failures are
 * HTTP statuses, undici's error codes and JSON-RPC error codes (classify.ts). No web streams and
 * no per-call transport make it cheaper in CPU too.
 *
 * Ids are `vmk-ka-<uuid>` strings: the vMCP numbers its own requests 0, 1, 2… on the same
 * session, and a wrapper that matches answers by id would lose one of two colliding answers. The
 * session belongs to the vMCP: nothing here ever sends DELETE.
 */
export function createBackendClient(options: BackendClientOptions): BackendClient {
  const maxResponseBytes = options.maxResponseBytes;
  const streamGraceMs = options.streamGraceMs ?? 1_000;

  // A request that fails before any answer on a connection that already carried answers was most
  // likely sent as the server closed the idle connection (a race every keep-alive client has);
  // it is sent once more on a fresh connection (a ping, or the cheap read-only tool a keepalive
  // is configured with, is safe to send twice). Reset errors from sockets that had read bytes are
  // remembered here (undici hands the socket's own error to the request); undici's "other side
  // closed" error carries the socket's counters itself.
  const resetAfterReuse = new WeakSet<object>();
  const connector = buildConnector({ timeout: options.connectTimeoutMs ?? 10_000 });
  const connect: buildConnector.connector = (opts, callback) =>
    connector(opts, (...args) => {
      const socket = args[1];
      socket?.on("error", (err) => {
        if (socket.bytesRead > 0) resetAfterReuse.add(err);
      });
      callback(...args);
    });
  const agent = new Agent({
    connect,
    keepAliveTimeout: options.idleSocketTimeoutMs ?? 4_000,
    connections: options.maxSocketsPerHost ?? 256,
    maxResponseSize: maxResponseBytes,
  });
  const reusedConnectionReset = (err: unknown): boolean => {
    const code = errorCode(err);
    if (code === "UND_ERR_SOCKET") return ((err as { socket?: { bytesRead?: number } | null }).socket?.bytesRead ?? 0) > 0;
    return (code === "ECONNRESET" || code === "EPIPE") && resetAfterReuse.has(err as object);
  };

  // Backend URLs come only from the config: a handful, parsed once each.
  const endpoints = new Map<string, { origin: string; path: string }>();
  const endpoint = (url: string) => {
    let e = endpoints.get(url);
    if (!e) {
      const u = new URL(url);
      e = { origin: u.origin, path: `${u.pathname}${u.search}` };
      if (endpoints.size > 1_000) endpoints.clear();
      endpoints.set(url, e);
    }
    return e;
  };

  /** Reads the answer to `id` from an event stream, then lets the stream end (or cuts it). */
  const readStream = (body: Dispatcher.ResponseData["body"], id: string): Promise<JsonRpcAnswer> =>
    new Promise<JsonRpcAnswer>((resolve, reject) => {
      const reader = new SseAnswerReader(id);
      let settled = false;
      const settle = (answer: JsonRpcAnswer | undefined, err?: unknown) => {
        settled = true;
        if (answer) {
          resolve(answer);
          if (!body.readableEnded) {
            const cut = setTimeout(() => body.destroy(), streamGraceMs);
            cut.unref();
            body.once("close", () => clearTimeout(cut));
          }
        } else reject(err);
      };
      body.setEncoding("utf8");
      body.on("data", (chunk: string) => {
        if (settled) return;
        try {
          const answer = reader.push(chunk);
          if (answer) settle(answer);
        } catch (err) {
          settle(undefined, err);
          body.destroy();
        }
      });
      // Stays attached after the answer: a stream cut later must not be an unhandled error.
      body.on("error", (err) => {
        if (!settled) settle(undefined, err);
      });
      body.on("end", () => {
        if (!settled) settle(undefined, new ProtocolError(`event stream ended without an answer${reader.skipped > 0 ? ` (${reader.skipped} event(s) not JSON-RPC)` : ""}`));
      });
    });

  const exchange = async (target: McpTarget, request: McpRequest, id: string, timeoutMs: number, signal: AbortSignal): Promise<JsonRpcAnswer | Classified> => {
    const { origin, path } = endpoint(target.url);
    const headers: Record<string, string> = { "mcp-session-id": target.sessionId };
    if (target.protocolVersion) headers["mcp-protocol-version"] = target.protocolVersion;
    if (target.headers) for (const [name, value] of Object.entries(target.headers)) headers[name.toLowerCase()] = value;
    headers["content-type"] = "application/json";
    headers["accept"] = ACCEPT;
    const message = request.method === "ping" ? { jsonrpc: "2.0", id, method: "ping" } : { jsonrpc: "2.0", id, method: "tools/call", params: { name: request.tool, arguments: request.args } };
    const req: Dispatcher.RequestOptions = { origin, path, method: "POST", headers, body: JSON.stringify(message), signal, headersTimeout: timeoutMs, bodyTimeout: timeoutMs };

    let res: Dispatcher.ResponseData;
    try {
      res = await agent.request(req);
    } catch (err) {
      if (signal.aborted || !reusedConnectionReset(err)) throw err;
      res = await agent.request(req);
    }
    const { statusCode: status, body } = res;
    if (status < 200 || status >= 300) {
      // The status decides; the body only adds a JSON-RPC code to the log line, so a body that
      // cannot be read (too large, cut) leaves just the status.
      return classifyHttpError(status, await body.text().catch(() => ""));
    }
    const contentType = res.headers["content-type"];
    const type = (Array.isArray(contentType) ? contentType[0] : contentType) ?? "";
    if (type.startsWith("text/event-stream")) return readStream(body, id);
    if (type.startsWith("application/json")) {
      let payload: unknown;
      try {
        payload = JSON.parse(await body.text());
      } catch (err) {
        if (err instanceof SyntaxError) throw new ProtocolError("answer body is not JSON");
        throw err;
      }
      const answer = answerIn(payload, id);
      if (!answer) throw new ProtocolError("JSON answer without the response to our request");
      return answer;
    }
    await body.dump().catch(() => {});
    throw new ProtocolError(`HTTP ${status} answered with content type "${type.slice(0, 80)}", not JSON or an event stream`);
  };

  return {
    async call(target, request, timeoutMs) {
      const started = performance.now();
      const elapsed = () => Math.round((performance.now() - started) * 1000) / 1000;
      const id = `${KEEPALIVE_ID_PREFIX}${randomUUID()}`;
      // The call's own deadline, over connect, answer head and body alike. undici's headers and
      // body timeouts (the same value) only bound its own waits.
      const controller = new AbortController();
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        controller.abort();
      }, timeoutMs);
      try {
        const out = await exchange(target, request, id, timeoutMs, controller.signal);
        if ("reason" in out) return { ok: false, latencyMs: elapsed(), ...out, detail: redact(out.detail, target.headers) };
        if (out.kind === "error") {
          const c = classifyRpcError(out.code, out.message);
          return { ok: false, latencyMs: elapsed(), ...c, detail: redact(c.detail, target.headers) };
        }
        if (request.method === "tools/call" && out.result["isError"] === true) {
          return { ok: false, latencyMs: elapsed(), reason: "tool_error", detail: `tool ${request.tool} returned isError` };
        }
        return { ok: true, latencyMs: elapsed(), result: out.result };
      } catch (err) {
        const c: Classified = timedOut ? { reason: "timeout", detail: `no answer within ${timeoutMs} ms` } : classifyError(err, maxResponseBytes);
        return { ok: false, latencyMs: elapsed(), ...c, detail: redact(c.detail, target.headers) };
      } finally {
        clearTimeout(timer);
      }
    },
    async close() {
      await agent.destroy();
    },
  };
}
