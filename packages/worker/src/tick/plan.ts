import type { FailureReason, LearnedMethod } from "@vmcp-keepalive/shared";
import type { KeepaliveMethod } from "@vmcp-keepalive/runtime";

/** Which call a keepalive made: the metric `method` label. */
export type CallMethod = "ping" | "tool";

/** How the tick's outcome counts for the backend's breaker. */
export type BreakerOp =
  /** A backend failure (never session_not_found). */
  | "count"
  /** The backend answered well. */
  | "reset"
  /**
   * No verdict on the backend: session_not_found (this pair's session is gone, not the backend),
   * or a 401/403 to a pair's own session credentials (this user's token, not the backend).
   */
  | "none";

/** What the tick learned about ping on a `tool:<name>` backend. */
export type MethodOp = "ping_ok" | "ping_failed_tool_ok" | "ping_unsupported";

/** What the tick's start read from Redis that decides its calls. */
export interface TickState {
  /** The call a `tool:<name>` backend has learned to make. */
  readonly learnedMethod: LearnedMethod;
  /** This tick holds the backend's ping retry (a backend on its learned tool retries ping once per window). */
  readonly pingRetry: boolean;
}

/** One call's result, as far as the plan cares. */
export type CallResult = { readonly ok: true } | { readonly ok: false; readonly reason: FailureReason };

/** What the tick writes when it finishes: the pair's outcome and the backend's accounting. */
export interface TickRecord {
  /** The call whose result is the tick's outcome (the last one made). */
  readonly method: CallMethod;
  readonly result: CallResult;
  readonly breakerOp: BreakerOp;
  readonly methodOp: MethodOp | undefined;
  /** The pair's backend session answered 404: the pair stops and the vMCP is told. */
  readonly expired: boolean;
  /** The backend refused the pair's session credentials (401/403): the pair stops and the vMCP is told. */
  readonly unauthorized: boolean;
}

/** Whether the pair's calls carry its own session credentials (`auth: session`). */
export type AuthMode = "static" | "session";

/** True when the backend may switch between ping and its tool (`tool:<name>` without every-tick). */
export function hasFallback(method: KeepaliveMethod): boolean {
  return method.kind === "tool" && !method.everyTick;
}

/**
 * The next call of a tick, given the calls it made so far; `undefined` when the tick is done.
 * - `ping` backends: ping, once.
 * - every-tick tool: the tool, once.
 * - `tool:<name>` with fallback: ping first — or the tool when the backend learned it and this
 *   tick does not hold the ping retry. When ping fails (but not with 404), the tool at once: it
 *   keeps the session alive now, and it tells a ping problem from a backend problem.
 */
export function nextCall(method: KeepaliveMethod, state: TickState, made: readonly { method: CallMethod; result: CallResult }[], auth: AuthMode = "static"): CallMethod | undefined {
  const [first, second] = made;
  if (!first) {
    if (method.kind !== "tool") return "ping";
    if (method.everyTick) return "tool";
    return state.learnedMethod === "tool" && !state.pingRetry ? "tool" : "ping";
  }
  if (second || !hasFallback(method) || first.method !== "ping" || first.result.ok) return undefined;
  if (first.result.reason === "session_not_found") return undefined;
  // Refused session credentials are refused for the tool as well.
  return auth === "session" && first.result.reason === "unauthorized" ? undefined : "tool";
}

/**
 * What a finished tick records: its outcome is the last call's; a 404 says nothing about the
 * backend (no breaker verdict); a fallback backend's ping result feeds the method switch — ping
 * failures count toward it only while the tool works, -32601 switches at once. With session
 * credentials a 401/403 is the pair's (its user's token), not the backend's: no breaker verdict.
 */
export function planRecord(method: KeepaliveMethod, made: readonly { method: CallMethod; result: CallResult }[], auth: AuthMode = "static"): TickRecord {
  const first = made[0];
  const last = made[made.length - 1];
  if (!first || !last) throw new Error("planRecord: a tick that made no call has nothing to record");
  const expired = !last.result.ok && last.result.reason === "session_not_found";
  const unauthorized = auth === "session" && !last.result.ok && last.result.reason === "unauthorized";
  let methodOp: MethodOp | undefined;
  if (hasFallback(method) && first.method === "ping") {
    if (first.result.ok) methodOp = "ping_ok";
    else if (first.result.reason === "method_not_found") methodOp = "ping_unsupported";
    else if (made.length > 1 && last.result.ok) methodOp = "ping_failed_tool_ok";
  }
  return {
    method: last.method,
    result: last.result,
    breakerOp: last.result.ok ? "reset" : expired || unauthorized ? "none" : "count",
    methodOp,
    expired,
    unauthorized,
  };
}
