import type { FailureReason } from "@vmcp-keepalive/shared";

/**
 * The one place that turns what a backend call ended with into a bounded reason. It reads HTTP
 * status codes, JSON-RPC error codes and the `code` of an error (undici's errors and Node's
 * system errors carry one) — never the text of another library's message.
 */

export interface Classified {
  readonly reason: FailureReason;
  readonly detail: string;
  readonly httpStatus?: number;
}

/** JSON-RPC "method not found" (the backend does not implement ping). */
export const JSONRPC_METHOD_NOT_FOUND = -32601;

/** undici's timeouts waiting for the answer: the backend is slower than the call allows. */
const TIMEOUT_CODES = new Set(["UND_ERR_HEADERS_TIMEOUT", "UND_ERR_BODY_TIMEOUT"]);

/** The connection could not be made or was lost (a connect timeout is a connection failure). */
const CONNECTION_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EPIPE",
  "ETIMEDOUT",
  "UND_ERR_SOCKET",
  "UND_ERR_CONNECT_TIMEOUT",
  "UND_ERR_CLOSED",
  "UND_ERR_DESTROYED",
]);

/** The answer's body went past `maxResponseSize`; undici cut the connection. */
export const RESPONSE_TOO_LARGE_CODE = "UND_ERR_RES_EXCEEDED_MAX_SIZE";

/** The first string `code` on an error or its `cause` chain. */
export function errorCode(err: unknown): string | undefined {
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
export function httpErrorDetail(status: number, body: string): string {
  const head = `HTTP ${status}`;
  try {
    const parsed = JSON.parse(body) as { error?: { code?: unknown; message?: unknown } } | null;
    if (parsed && typeof parsed.error?.code === "number") {
      return `${head}: JSON-RPC ${parsed.error.code} ${String(parsed.error.message ?? "").slice(0, 200)}`.trimEnd();
    }
  } catch {
    // Not JSON: only its size is logged.
  }
  return body.length > 0 ? `${head} (body of ${Buffer.byteLength(body)} bytes not logged)` : head;
}

/** A failed answer with an HTTP status outside 2xx. */
export function classifyHttpError(status: number, body: string): Classified {
  return { reason: classifyHttpStatus(status), detail: httpErrorDetail(status, body), httpStatus: status };
}

/** A JSON-RPC error answer: -32601 is "method not found"; anything else is a protocol error. */
export function classifyRpcError(code: number, message: string): Classified {
  if (code === JSONRPC_METHOD_NOT_FOUND) return { reason: "method_not_found", detail: `${code}: ${message}` };
  return { reason: "protocol_error", detail: `${code}: ${message}`.slice(0, 300) };
}

/**
 * What a call threw, by its `code`: undici's answer timeouts → `timeout`; connection failures
 * (refused, reset, DNS, connect timeout, socket closed) → `connection_error`; a body over the
 * size limit, unparsable JSON and anything else → `protocol_error`. The call's own deadline is
 * decided by the caller, which knows whether its timer fired.
 */
export function classifyError(err: unknown, maxResponseBytes: number): Classified {
  const message = err instanceof Error ? err.message : String(err);
  const code = errorCode(err);
  if (code !== undefined) {
    if (TIMEOUT_CODES.has(code)) return { reason: "timeout", detail: `${code}: ${message}` };
    if (CONNECTION_CODES.has(code)) return { reason: "connection_error", detail: `${code}: ${message}` };
    if (code === RESPONSE_TOO_LARGE_CODE) return { reason: "protocol_error", detail: `response body larger than ${maxResponseBytes} bytes; connection cut` };
  }
  return { reason: "protocol_error", detail: message.slice(0, 300) };
}
