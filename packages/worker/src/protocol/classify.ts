import { StreamableHTTPError } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { ErrorCode } from "@modelcontextprotocol/sdk/types.js";
import type { FailureReason } from "@vmcp-keepalive/shared";

/** Raised by our per-call AbortController when the call timeout passes. */
export class CallTimeoutError extends Error {
  constructor(timeoutMs: number) {
    super(`no answer within ${timeoutMs} ms`);
    this.name = "CallTimeoutError";
  }
}

export interface Classified {
  readonly reason: FailureReason;
  readonly detail: string;
  readonly httpStatus?: number;
}

const CONNECTION_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EPIPE",
  "UND_ERR_SOCKET",
  "UND_ERR_CONNECT_TIMEOUT",
  "UND_ERR_CLOSED",
  "ERR_STREAM_PREMATURE_CLOSE",
  "ETIMEDOUT",
]);

function errorCode(err: unknown): string | undefined {
  let current: unknown = err;
  for (let depth = 0; depth < 5 && current && typeof current === "object"; depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === "string") return code;
    current = (current as { cause?: unknown }).cause;
  }
  return undefined;
}

/** Maps an HTTP status to its reason. 404 on an existing session id means the session is gone. */
export function classifyHttpStatus(status: number): FailureReason {
  if (status === 404) return "session_not_found";
  if (status === 401 || status === 403) return "unauthorized";
  if (status >= 500) return "http_5xx";
  if (status >= 400) return "http_4xx";
  return "protocol_error";
}

/**
 * What a failed HTTP answer may say in logs: its status and, when the body is a JSON-RPC error,
 * that error's code and message — never the rest of the body. A backend or proxy may echo the
 * request back (headers included: the configured credentials), so an unknown body is only sized.
 */
function httpErrorDetail(status: number, message: string): string {
  const head = `HTTP ${status}`;
  // The SDK's message is `Streamable HTTP error: Error POSTing to endpoint: <body>`.
  const body = message.replace(/^(?:Streamable HTTP error: )?Error [A-Z]+ing to endpoint: ?/, "");
  try {
    const parsed = JSON.parse(body) as { error?: { code?: unknown; message?: unknown } };
    if (parsed && typeof parsed.error?.code === "number") {
      return `${head}: JSON-RPC ${parsed.error.code} ${String(parsed.error.message ?? "").slice(0, 200)}`.trimEnd();
    }
  } catch {
    // Not JSON: fall through.
  }
  return body.length > 0 ? `${head} (body of ${Buffer.byteLength(body)} bytes not logged)` : head;
}

/**
 * The one place that turns whatever a backend call threw into a bounded reason. Unit-tested
 * against real responses (test/classify.test.ts).
 */
export function classifyError(err: unknown): Classified {
  const message = err instanceof Error ? err.message : String(err);
  if (err instanceof CallTimeoutError) return { reason: "timeout", detail: message };
  if (err instanceof StreamableHTTPError) {
    const status = err.code;
    if (typeof status === "number" && status >= 100) {
      return { reason: classifyHttpStatus(status), detail: httpErrorDetail(status, message), httpStatus: status };
    }
    return { reason: "protocol_error", detail: message.slice(0, 200) };
  }
  if (err instanceof Error && (err.name === "AbortError" || err.name === "TimeoutError")) {
    return { reason: "timeout", detail: message };
  }
  const code = errorCode(err);
  if (code && CONNECTION_CODES.has(code)) return { reason: "connection_error", detail: `${code}: ${message}` };
  if (err instanceof TypeError && /fetch failed|terminated|socket/i.test(message)) {
    return { reason: "connection_error", detail: message };
  }
  return { reason: "protocol_error", detail: message.slice(0, 300) };
}

/** A JSON-RPC error answer: -32601 is "method not found"; anything else is a protocol error. */
export function classifyRpcError(code: number, message: string): Classified {
  if (code === ErrorCode.MethodNotFound) return { reason: "method_not_found", detail: `${code}: ${message}` };
  return { reason: "protocol_error", detail: `${code}: ${message}`.slice(0, 300) };
}
