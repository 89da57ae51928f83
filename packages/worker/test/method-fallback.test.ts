import { describe, expect, inject, it } from "vitest";
import { openBackendSession, sleep, waitFor, type McpTestBackend, type McpTestBackendOptions } from "@vmcp-keepalive/testkit";
import { closeAfterEach, createHarness, startBackend, logsMatching, type Harness } from "./helpers.js";

/*
 * The keepalive method at worker level (a second worker PROCESS using what one learned is in
 * test/learned-method.test.ts): ping by default; tool:<name> falls back at once on -32601 and
 * after K ping failures while the tool works; ping is retried at the probe window; every-tick
 * calls only the tool. Real Redis, real SDK backends.
 */

const redisUrl = inject("redisUrl");
let h: Harness | undefined;
const cleanups: (() => Promise<unknown>)[] = [];
closeAfterEach(redisUrl, () => [h, (h = undefined)][0], cleanups);

const backend = (options?: McpTestBackendOptions) => startBackend(cleanups, options);

/**
 * The JSON-RPC methods (tools/call → tool:<name>) a backend saw on one session, in order,
 * without the opener's initialize handshake and its standalone GET stream.
 */
const seen = (b: McpTestBackend, sessionId: string) =>
  b.calls
    .filter((c) => c.sessionId === sessionId && c.method !== "initialize" && c.method !== "notifications/initialized" && c.method !== "GET")
    .map((c) => (c.method === "tools/call" ? `tool:${c.tool}` : c.method));

describe("keepalive method", () => {
  it("sends a backend with no keepalive_method ping and never a tool call (queue-driven worker)", async () => {
    const b = await backend();
    h = createHarness(redisUrl, {
      keepalive: { interval: "1s", timeout: "500ms" },
      backends: [{ id: "plain", url: b.url }],
    });
    const s = await openBackendSession(b.url);
    expect(await h.register("s1", [{ backendId: "plain", backendSessionId: s.sessionId, protocolVersion: s.protocolVersion }])).toEqual(["plain"]);
    await h.schedule("s1", "plain");
    await h.startWorker();
    await waitFor("3 pings on the session", () => b.count("ping", s.sessionId) >= 3, 20_000);
    expect(b.count("tools/call")).toBe(0);
    expect(new Set(seen(b, s.sessionId))).toEqual(new Set(["ping"]));
  });

  it("switches a tool:<name> backend whose ping answers -32601 to the tool; the next tick calls only the tool; logged once", async () => {
    const b = await backend({ pingSupported: false });
    h = createHarness(redisUrl, {
      keepalive: { interval: "1s", timeout: "500ms" },
      backends: [{ id: "noping", url: b.url, keepalive_method: "tool:noop" }],
    });
    const s = await openBackendSession(b.url);
    await h.register("s1", [{ backendId: "noping", backendSessionId: s.sessionId, protocolVersion: s.protocolVersion }]);
    const { worker, lines } = h.idleWorker();

    const first = await worker.run("s1", "noping");
    // The ping is answered -32601; the tool is tried at once in the same tick, which keeps the session alive.
    expect(first).toMatchObject({ outcome: "success", method: "tool", calls: ["ping", "tool"] });
    expect((await h.readBackend("noping")).method).toBe("tool");
    expect((await h.readBackend("noping")).methodReason).toBe("method_not_found");

    const second = await worker.run("s1", "noping");
    expect(second).toMatchObject({ outcome: "success", method: "tool", calls: ["tool"] });
    expect(seen(b, s.sessionId)).toEqual(["ping", "tool:noop", "tool:noop"]);
    expect(logsMatching(lines, "switched from ping to tool noop")).toEqual([expect.objectContaining({ level: "warn", reason: "method_not_found" })]);
  });

  it("switches to the tool after K consecutive ping failures while the tool works (not before)", async () => {
    const b = await backend({ pingFailsHttp500: true });
    h = createHarness(redisUrl, {
      keepalive: { interval: "1s", timeout: "500ms" },
      fallback: { after_failures: 3 },
      backends: [{ id: "flaky", url: b.url, keepalive_method: "tool:noop" }],
    });
    const s = await openBackendSession(b.url);
    await h.register("s1", [{ backendId: "flaky", backendSessionId: s.sessionId }]);
    const { worker, lines } = h.idleWorker();

    for (let i = 1; i <= 3; i++) {
      expect(await worker.run("s1", "flaky")).toMatchObject({ outcome: "success", calls: ["ping", "tool"] });
      const state = await h.readBackend("flaky");
      expect(state.method).toBe(i < 3 ? "ping" : "tool");
    }
    expect(await worker.run("s1", "flaky")).toMatchObject({ outcome: "success", calls: ["tool"] });
    expect((await h.readBackend("flaky")).methodReason).toBe("ping_failures");
    expect(logsMatching(lines, "switched from ping to tool")).toEqual([expect.objectContaining({ level: "warn", reason: "ping_failures", tool: "noop" })]);
    // The breaker never counted these ticks: each ended with a working tool.
    expect((await h.readBackend("flaky")).consecutiveFailures).toBe(0);
  });

  it("restarts the count on a ping success between failures; ping failures with a failing tool do not count", async () => {
    const b = await backend({ pingFailsHttp500: true });
    h = createHarness(redisUrl, {
      keepalive: { interval: "1s", timeout: "500ms" },
      fallback: { after_failures: 2 },
      breaker: { failure_threshold: 100 },
      backends: [{ id: "flaky", url: b.url, keepalive_method: "tool:noop" }],
    });
    const s = await openBackendSession(b.url);
    await h.register("s1", [{ backendId: "flaky", backendSessionId: s.sessionId }]);
    const { worker } = h.idleWorker();
    await worker.run("s1", "flaky");
    expect((await h.readBackend("flaky")).pingFailures).toBe(1);
    b.pingFailsHttp500 = false;
    await worker.run("s1", "flaky");
    expect((await h.readBackend("flaky")).pingFailures).toBe(0);
    b.mode = "http_503"; // ping and tool both fail: the backend is down, not ping
    await worker.run("s1", "flaky");
    await worker.run("s1", "flaky");
    expect(await h.readBackend("flaky")).toMatchObject({ method: "ping", pingFailures: 0 });
  });

  it("retries ping at the probe window: still failing stays on the tool, working goes back to ping", async () => {
    const b = await backend({ pingSupported: false });
    h = createHarness(redisUrl, {
      keepalive: { interval: "1s", timeout: "500ms" },
      breaker: { probe_after: "2s" },
      backends: [{ id: "gains", url: b.url, keepalive_method: "tool:noop" }],
    });
    const s = await openBackendSession(b.url);
    await h.register("s1", [{ backendId: "gains", backendSessionId: s.sessionId }]);
    const { worker, lines } = h.idleWorker();
    await worker.run("s1", "gains"); // ping -32601 → tool; ping retry due in 2-2.2 s
    expect(await worker.run("s1", "gains")).toMatchObject({ calls: ["tool"] });

    const retryAt = (await h.readBackend("gains")).pingRetryAt!;
    await sleep(Math.max(0, retryAt - Date.now()) + 50);
    // First window: ping still unsupported → ping, then the tool; stays on the tool.
    expect(await worker.run("s1", "gains")).toMatchObject({ outcome: "success", calls: ["ping", "tool"] });
    expect((await h.readBackend("gains")).method).toBe("tool");
    // Only one retry per window: the next tick goes straight to the tool.
    expect(await worker.run("s1", "gains")).toMatchObject({ calls: ["tool"] });

    b.setPingSupported(true);
    const retry2 = (await h.readBackend("gains")).pingRetryAt!;
    expect(retry2).toBeGreaterThan(retryAt);
    await sleep(Math.max(0, retry2 - Date.now()) + 50);
    expect(await worker.run("s1", "gains")).toMatchObject({ outcome: "success", calls: ["ping"] });
    expect((await h.readBackend("gains")).method).toBe("ping");
    expect(await worker.run("s1", "gains")).toMatchObject({ calls: ["ping"] });
    expect(logsMatching(lines, "switched back to ping")).toHaveLength(1);
  });

  it("calls only the tool with keepalive_tool_every_tick, even when ping works", async () => {
    const b = await backend();
    h = createHarness(redisUrl, {
      keepalive: { interval: "1s", timeout: "500ms" },
      backends: [{ id: "browser", url: b.url, keepalive_method: "tool:echo", keepalive_tool_args: { text: "keepalive" }, keepalive_tool_every_tick: true }],
    });
    const s = await openBackendSession(b.url);
    await h.register("s1", [{ backendId: "browser", backendSessionId: s.sessionId }]);
    await h.schedule("s1", "browser");
    await h.startWorker();
    await waitFor("3 tool calls", () => b.count("tools/call", s.sessionId) >= 3, 20_000);
    expect(b.count("ping")).toBe(0);
    expect(new Set(seen(b, s.sessionId))).toEqual(new Set(["tool:echo"]));
  });
});
