import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { callMcp, KEEPALIVE_ID_PREFIX } from "../src/protocol/mcp-call.js";
import { createKeepAliveFetch } from "../src/protocol/keep-alive-fetch.js";
import { startMcpTestBackend, type McpTestBackend } from "@vmcp-keepalive/testkit";
import { callToolOnSession, openBackendSession } from "@vmcp-keepalive/testkit";

let backend: McpTestBackend;
beforeAll(async () => {
  backend = await startMcpTestBackend({ idleTtlMs: 60_000 });
});
afterAll(() => backend.stop());

describe("callMcp against a real SDK server", () => {
  it("pings an existing session with a string id and the stored protocol version, without initialize", async () => {
    const session = await openBackendSession(backend.url);
    const before = backend.calls.length;
    const result = await callMcp({ url: backend.url, sessionId: session.sessionId, protocolVersion: session.protocolVersion }, { method: "ping" }, 2_000);
    expect(result).toMatchObject({ ok: true, result: {} });
    // (The SDK client of openBackendSession may still be opening its GET stream: ignore GETs.)
    const calls = backend.calls.slice(before).filter((c) => c.method !== "GET");
    expect(calls.map((c) => c.method)).toEqual(["ping"]);
    expect(calls[0]).toMatchObject({ sessionId: session.sessionId, protocolVersion: session.protocolVersion });
    expect(typeof calls[0]!.id).toBe("string");
    expect(String(calls[0]!.id).startsWith(KEEPALIVE_ID_PREFIX)).toBe(true);
    // The session is still usable by its owner afterwards.
    expect((await callToolOnSession(backend.url, session, "echo", { text: "hi" })).text).toBe("hi");
  });

  it("uses a fresh id per call and works with JSON responses as well as SSE", async () => {
    const json = await startMcpTestBackend({ jsonResponse: true });
    try {
      const session = await openBackendSession(json.url);
      for (let i = 0; i < 3; i++) expect((await callMcp({ url: json.url, sessionId: session.sessionId }, { method: "ping" }, 2_000)).ok).toBe(true);
      const ids = json.calls.filter((c) => c.method === "ping").map((c) => c.id);
      expect(new Set(ids).size).toBe(3);
    } finally {
      await json.stop();
    }
  });

  it("calls a tool on the session and reports isError as tool_error", async () => {
    const session = await openBackendSession(backend.url);
    expect(await callMcp({ url: backend.url, sessionId: session.sessionId }, { method: "tools/call", tool: "noop", args: {} }, 2_000)).toMatchObject({
      ok: true,
    });
    expect(await callMcp({ url: backend.url, sessionId: session.sessionId }, { method: "tools/call", tool: "fail", args: {} }, 2_000)).toMatchObject({
      ok: false,
      reason: "tool_error",
    });
  });

  it("maps an unknown session to session_not_found and a hang to timeout, without throwing", async () => {
    expect(await callMcp({ url: backend.url, sessionId: "no-such-session" }, { method: "ping" }, 2_000)).toMatchObject({
      ok: false,
      reason: "session_not_found",
      httpStatus: 404,
    });
    const session = await openBackendSession(backend.url);
    backend.mode = "hang";
    try {
      const started = Date.now();
      const result = await callMcp({ url: backend.url, sessionId: session.sessionId }, { method: "ping" }, 300);
      expect(result).toMatchObject({ ok: false, reason: "timeout" });
      expect(Date.now() - started).toBeLessThan(2_000);
    } finally {
      backend.mode = "ok";
    }
  });

  it("does not leak abort listeners over many calls (one transport and controller per call)", async () => {
    const session = await openBackendSession(backend.url);
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(w.name);
    process.on("warning", onWarning);
    try {
      for (let i = 0; i < 200; i++) expect((await callMcp({ url: backend.url, sessionId: session.sessionId }, { method: "ping" }, 2_000)).ok).toBe(true);
    } finally {
      process.off("warning", onWarning);
    }
    expect(warnings.filter((w) => w === "MaxListenersExceededWarning")).toEqual([]);
  });

  it("reuses one keep-alive connection across calls, for JSON and for SSE answers", async () => {
    const json = await startMcpTestBackend({ jsonResponse: true });
    const pool = createKeepAliveFetch();
    try {
      for (const b of [backend, json]) {
        const session = await openBackendSession(b.url);
        const before = b.connectionCount();
        for (let i = 0; i < 30; i++) {
          const r = await callMcp({ url: b.url, sessionId: session.sessionId, protocolVersion: session.protocolVersion }, { method: "ping" }, 2_000, {
            fetch: pool.fetch,
          });
          expect(r.ok).toBe(true);
        }
        // Reused, not one per call. A connection goes back to the pool a moment after its
        // answer was read (for SSE, when the stream ends just after the reply it carries), so
        // the next call may find it still busy once and open a second one; then both are reused.
        expect(b.connectionCount() - before).toBeLessThanOrEqual(2);
      }
    } finally {
      pool.close();
      await json.stop();
    }
  });
});
