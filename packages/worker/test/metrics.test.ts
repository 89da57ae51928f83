import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { describe, expect, inject, it } from "vitest";
import { FAILURE_REASONS } from "@vmcp-keepalive/shared";
import { LATENCY_BUCKETS_MS } from "../src/internal.js";
import { freePort, openBackendSession, type McpTestBackend, type McpTestBackendOptions } from "@vmcp-keepalive/testkit";
import { closeAfterEach, createHarness, startBackend, type Harness } from "./helpers.js";

/*
 * After a scripted mix of successes, every failure reason, a fallback
 * and a breaker trip, the worker's Registry text has the five contract metrics with exact
 * counts, `backend`/`method`(/`reason`) labels, histogram buckets, and no session id. Ticks are
 * driven one at a time (`run()` of a tick runner) so the counts are exact; every backend is real.
 */

const redisUrl = inject("redisUrl");
let h: Harness | undefined;
const cleanups: (() => Promise<unknown>)[] = [];
closeAfterEach(redisUrl, () => [h, (h = undefined)][0], cleanups);

const backend = (options?: McpTestBackendOptions) => startBackend(cleanups, options);

/** A raw HTTP server: 429 (a rate-limiting proxy) or 200 with garbage (a broken backend). */
async function raw(status: number, body: string): Promise<string> {
  const server: Server = createServer((req, res) => {
    req.resume();
    req.on("end", () => res.writeHead(status, { "content-type": "application/json" }).end(body));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  cleanups.push(() => new Promise<void>((r) => (server.closeAllConnections(), server.close(() => r()))));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`;
}

describe("keepalive metrics", () => {
  it("emits the five metrics with exact counts, labels and buckets after a scripted mix", async () => {
    const good = await backend();
    const slow = await backend({ delayMs: 120 });
    const hang = await backend();
    const e503 = await backend();
    const auth = await backend({ requireHeader: { name: "authorization", value: "Bearer x" } });
    const gone = await backend();
    const noping = await backend({ pingSupported: false });
    const toolfail = await backend();
    const fb = await backend({ pingSupported: false });
    const trip = await backend();
    const refused = `http://127.0.0.1:${await freePort()}/mcp`;
    const e429 = await raw(429, JSON.stringify({ error: "slow down" }));
    const garbage = await raw(200, "{garbage");

    h = createHarness(redisUrl, {
      keepalive: { interval: "1s", timeout: "300ms" },
      breaker: { failure_threshold: 3, probe_after: "60s", min_failure_span: 0 },
      backends: [
        { id: "good", url: good.url },
        { id: "slow", url: slow.url },
        { id: "hang", url: hang.url },
        { id: "refused", url: refused },
        { id: "e503", url: e503.url },
        { id: "auth", url: auth.url },
        { id: "e429", url: e429 },
        { id: "gone", url: gone.url },
        { id: "noping", url: noping.url },
        { id: "toolfail", url: toolfail.url, keepalive_method: "tool:fail", keepalive_tool_every_tick: true },
        { id: "garbage", url: garbage },
        { id: "fb", url: fb.url, keepalive_method: "tool:noop" },
        { id: "trip", url: trip.url },
      ],
    });
    const session = async (id: string, b: McpTestBackend | undefined, backendId: string) => {
      const s = b ? await openBackendSession(b.url, backendId === "auth" ? { authorization: "Bearer x" } : {}) : { sessionId: `bsess-${backendId}`, protocolVersion: "2025-06-18" };
      await h!.register(id, [{ backendId, backendSessionId: s.sessionId, protocolVersion: s.protocolVersion }]);
    };
    const plan: [string, McpTestBackend | undefined][] = [
      ["good", good],
      ["slow", slow],
      ["hang", hang],
      ["refused", undefined],
      ["e503", e503],
      ["auth", auth],
      ["e429", undefined],
      ["gone", undefined],
      ["noping", noping],
      ["toolfail", toolfail],
      ["garbage", undefined],
      ["fb", fb],
      ["trip", trip],
    ];
    for (const [backendId, b] of plan) await session(`sess-${backendId}`, b, backendId);
    hang.mode = "hang";
    e503.mode = "http_503";
    trip.mode = "http_503";

    const { worker } = h.idleWorker();
    const tick = (backendId: string) => worker.run(`sess-${backendId}`, backendId);
    for (let i = 0; i < 3; i++) await tick("good");
    for (let i = 0; i < 2; i++) await tick("slow");
    for (const id of ["hang", "refused", "e503", "auth", "e429", "gone", "noping", "toolfail", "garbage", "fb"]) await tick(id);
    for (let i = 0; i < 3; i++) expect(await tick("trip")).toMatchObject({ outcome: "failure" });
    expect(await tick("trip")).toEqual({ outcome: "skipped", reason: "breaker_open" });

    const text = await worker.registry.metrics();
    const lines = new Set(text.split("\n"));
    const has = (line: string) => expect(lines, line).toContain(line);

    // Types and help exist under the contract names.
    for (const [name, type] of [
      ["keepalive_attempt_count", "counter"],
      ["keepalive_success_count", "counter"],
      ["keepalive_failure_count", "counter"],
      ["keepalive_latency_ms", "histogram"],
      ["keepalive_auto_disabled_total", "counter"],
    ])
      has(`# TYPE ${name} ${type}`);

    // Attempts and successes, per backend and the call actually made.
    has('keepalive_attempt_count{backend="good",method="ping"} 3');
    has('keepalive_success_count{backend="good",method="ping"} 3');
    has('keepalive_attempt_count{backend="slow",method="ping"} 2');
    has('keepalive_success_count{backend="slow",method="ping"} 2');
    has('keepalive_attempt_count{backend="fb",method="ping"} 1');
    has('keepalive_attempt_count{backend="fb",method="tool"} 1');
    has('keepalive_success_count{backend="fb",method="tool"} 1');
    has('keepalive_attempt_count{backend="toolfail",method="tool"} 1');
    has('keepalive_attempt_count{backend="trip",method="ping"} 3');
    expect(text).not.toMatch(/keepalive_success_count\{backend="fb",method="ping"\}/);

    // Every failure reason, once each, with its backend and method.
    const expected: [string, string, string, number][] = [
      ["hang", "ping", "timeout", 1],
      ["refused", "ping", "connection_error", 1],
      ["e503", "ping", "http_5xx", 1],
      ["e429", "ping", "http_4xx", 1],
      ["auth", "ping", "unauthorized", 1],
      ["gone", "ping", "session_not_found", 1],
      ["noping", "ping", "method_not_found", 1],
      ["toolfail", "tool", "tool_error", 1],
      ["garbage", "ping", "protocol_error", 1],
      ["fb", "ping", "method_not_found", 1],
      ["trip", "ping", "http_5xx", 3],
    ];
    for (const [b, m, reason, n] of expected) has(`keepalive_failure_count{backend="${b}",method="${m}",reason="${reason}"} ${n}`);
    expect(new Set(expected.map((e) => e[2]))).toEqual(new Set(FAILURE_REASONS));
    const failureLines = [...lines].filter((l) => l.startsWith("keepalive_failure_count{"));
    expect(failureLines).toHaveLength(expected.length);

    // The breaker trip: one auto-disable, labelled with the reason that tripped it.
    has('keepalive_auto_disabled_total{backend="trip",method="ping",reason="http_5xx"} 1');
    expect([...lines].filter((l) => l.startsWith("keepalive_auto_disabled_total{"))).toHaveLength(1);
    has('keepalive_skipped_total{backend="trip",reason="breaker_open"} 1');

    // Histogram: every bucket present; the 120 ms backend is never under 100 ms; timeouts are ≥ 300 ms.
    const bucket = (b: string, m: string, le: string) => {
      const line = [...lines].find((l) => l.startsWith(`keepalive_latency_ms_bucket{le="${le}",backend="${b}",method="${m}"}`));
      expect(line, `bucket ${b} ${m} ${le}`).toBeDefined();
      return Number(line!.split(" ").pop());
    };
    for (const le of [...LATENCY_BUCKETS_MS.map(String), "+Inf"]) bucket("good", "ping", le);
    expect(bucket("good", "ping", "+Inf")).toBe(3);
    has('keepalive_latency_ms_count{backend="good",method="ping"} 3');
    expect(bucket("slow", "ping", "100")).toBe(0);
    expect(bucket("slow", "ping", "+Inf")).toBe(2);
    expect(bucket("hang", "ping", "250")).toBe(0);
    expect(bucket("hang", "ping", "+Inf")).toBe(1);
    expect(bucket("fb", "tool", "+Inf")).toBe(1);
    expect(bucket("trip", "ping", "+Inf")).toBe(3);
    // Cumulative buckets never decrease.
    const goodBuckets = LATENCY_BUCKETS_MS.map((le) => bucket("good", "ping", String(le)));
    expect([...goodBuckets].sort((a, b) => a - b)).toEqual(goodBuckets);

    // Never a session id (backend or vMCP) in any label.
    expect(text).not.toMatch(/sess-|bsess-/);
    for (const b of [good, slow, noping]) for (const c of b.calls) if (c.sessionId) expect(text).not.toContain(c.sessionId);
  });
});
