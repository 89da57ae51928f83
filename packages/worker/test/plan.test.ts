import { describe, expect, it } from "vitest";
import type { KeepaliveMethod } from "@vmcp-keepalive/runtime";
import { nextCall, planRecord, type AuthMode, type CallMethod, type CallResult, type TickState } from "../src/internal.js";

/* The tick's plan is a pure function of the method, the state read, and the calls made: no Redis. */
const ping: KeepaliveMethod = { kind: "ping" };
const fallback: KeepaliveMethod = { kind: "tool", tool: "noop", args: {}, everyTick: false };
const everyTick: KeepaliveMethod = { kind: "tool", tool: "browser_tabs", args: { action: "list" }, everyTick: true };
const fresh: TickState = { learnedMethod: "ping", pingRetry: false };
const ok: CallResult = { ok: true };
const fail = (reason: Extract<CallResult, { ok: false }>["reason"]): CallResult => ({ ok: false, reason });

/** Runs the plan with the given answers, one per call, and returns the calls and the record. */
function tick(method: KeepaliveMethod, state: TickState, answers: CallResult[], auth: AuthMode = "static") {
  const made: { method: CallMethod; result: CallResult }[] = [];
  for (let next = nextCall(method, state, made, auth); next !== undefined; next = nextCall(method, state, made, auth)) {
    const result = answers[made.length];
    if (!result) throw new Error(`no answer for call ${made.length + 1} (${next})`);
    made.push({ method: next, result });
  }
  return { calls: made.map((m) => m.method), record: planRecord(method, made, auth) };
}

describe("tick plan", () => {
  it("ping by default; success resets the breaker and teaches nothing", () => {
    expect(tick(ping, fresh, [ok])).toEqual({
      calls: ["ping"],
      record: { method: "ping", result: ok, breakerOp: "reset", methodOp: undefined, expired: false, unauthorized: false },
    });
  });

  it("a ping failure counts toward the breaker; a ping backend never calls a tool", () => {
    expect(tick(ping, fresh, [fail("timeout")])).toMatchObject({ calls: ["ping"], record: { breakerOp: "count", methodOp: undefined } });
  });

  it("404 is no verdict on the backend: the pair expired", () => {
    expect(tick(ping, fresh, [fail("session_not_found")]).record).toMatchObject({ breakerOp: "none", expired: true });
  });

  it("every-tick tool: the tool, once, whatever was learned", () => {
    expect(tick(everyTick, { learnedMethod: "ping", pingRetry: true }, [ok]).calls).toEqual(["tool"]);
  });

  it("fallback backend: ping first; ping ok → ping_ok", () => {
    expect(tick(fallback, fresh, [ok])).toMatchObject({ calls: ["ping"], record: { methodOp: "ping_ok", breakerOp: "reset" } });
  });

  it("fallback backend: ping fails, the tool at once; tool ok → ping_failed_tool_ok, the tick succeeds", () => {
    expect(tick(fallback, fresh, [fail("http_5xx"), ok])).toMatchObject({
      calls: ["ping", "tool"],
      record: { method: "tool", result: ok, methodOp: "ping_failed_tool_ok", breakerOp: "reset" },
    });
  });

  it("fallback backend: ping and tool both fail → a backend failure, nothing learned", () => {
    expect(tick(fallback, fresh, [fail("timeout"), fail("timeout")])).toMatchObject({
      calls: ["ping", "tool"],
      record: { breakerOp: "count", methodOp: undefined },
    });
  });

  it("fallback backend: -32601 → ping_unsupported, whatever the tool answered", () => {
    expect(tick(fallback, fresh, [fail("method_not_found"), fail("tool_error")]).record.methodOp).toBe("ping_unsupported");
  });

  it("fallback backend: ping 404 → no tool call (the session is gone), expired", () => {
    expect(tick(fallback, fresh, [fail("session_not_found")])).toMatchObject({
      calls: ["ping"],
      record: { expired: true, breakerOp: "none", methodOp: undefined },
    });
  });

  it("on its learned tool: the tool only, unless this tick holds the ping retry", () => {
    expect(tick(fallback, { learnedMethod: "tool", pingRetry: false }, [ok])).toMatchObject({ calls: ["tool"], record: { methodOp: undefined } });
    expect(tick(fallback, { learnedMethod: "tool", pingRetry: true }, [ok])).toMatchObject({ calls: ["ping"], record: { methodOp: "ping_ok" } });
  });

  it("refuses to record a tick that made no call", () => {
    expect(() => planRecord(ping, [])).toThrow(/no call/);
  });

  it("a 401/403 to a pair's session credentials is the pair's: no breaker verdict, no tool after ping; with static headers it stays a backend failure", () => {
    expect(tick(ping, fresh, [fail("unauthorized")], "session")).toMatchObject({ calls: ["ping"], record: { breakerOp: "none", unauthorized: true, expired: false } });
    expect(tick(fallback, fresh, [fail("unauthorized")], "session")).toMatchObject({ calls: ["ping"], record: { breakerOp: "none", methodOp: undefined, unauthorized: true } });
    expect(tick(ping, fresh, [fail("unauthorized")], "static")).toMatchObject({ record: { breakerOp: "count", unauthorized: false } });
    expect(tick(fallback, fresh, [fail("unauthorized"), fail("unauthorized")], "static")).toMatchObject({ calls: ["ping", "tool"], record: { breakerOp: "count" } });
    // Other failures of a session pair count as they always do.
    expect(tick(ping, fresh, [fail("timeout")], "session")).toMatchObject({ record: { breakerOp: "count", unauthorized: false } });
  });
});
