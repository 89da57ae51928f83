import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { describe, expect, inject, it } from "vitest";
import { freePort, openBackendSession, sleep, startMcpTestBackend, waitFor, type McpTestBackend } from "@vmcp-keepalive/testkit";
import { closeAfterEach, createHarness, type Harness } from "./helpers.js";

/*
 * Isolation: nothing a backend does throws out of the job handler or crashes the
 * process. One queue-driven worker serves a healthy backend next to backends that hang, reset
 * connections, answer 503, answer garbage, refuse connections and lost their sessions; every job
 * completes (none failed), and the healthy backend keeps getting its pings throughout.
 */

const redisUrl = inject("redisUrl");
let h: Harness | undefined;
const cleanups: (() => Promise<unknown>)[] = [];
closeAfterEach(redisUrl, () => [h, (h = undefined)][0], cleanups);

describe("isolation", () => {
  it("misbehaving backends never fail a job or stop the worker", async () => {
    const backends: Record<string, McpTestBackend> = {};
    for (const id of ["healthy", "hang", "reset", "e503", "gone"]) {
      backends[id] = await startMcpTestBackend({ name: id });
      const b = backends[id];
      cleanups.push(() => b.stop());
    }
    const garbage: Server = createServer((req, res) => {
      req.resume();
      req.on("end", () => res.writeHead(200, { "content-type": "text/event-stream" }).end("data: {not json\n\n"));
    });
    await new Promise<void>((r) => garbage.listen(0, "127.0.0.1", () => r()));
    cleanups.push(() => new Promise<void>((r) => (garbage.closeAllConnections(), garbage.close(() => r()))));
    const garbageUrl = `http://127.0.0.1:${(garbage.address() as AddressInfo).port}/mcp`;
    const refusedUrl = `http://127.0.0.1:${await freePort()}/mcp`;

    h = createHarness(redisUrl, {
      keepalive: { interval: "1s", timeout: "400ms", concurrency: 8 },
      breaker: { failure_threshold: 1_000 },
      backends: [...Object.entries(backends).map(([id, b]) => ({ id, url: b.url })), { id: "garbage", url: garbageUrl }, { id: "refused", url: refusedUrl }],
    });
    const healthy = await openBackendSession(backends["healthy"]!.url);
    const pairs: { backendId: string; backendSessionId: string }[] = [{ backendId: "healthy", backendSessionId: healthy.sessionId }];
    for (const id of ["hang", "reset", "e503"]) pairs.push({ backendId: id, backendSessionId: (await openBackendSession(backends[id]!.url)).sessionId });
    pairs.push({ backendId: "gone", backendSessionId: "expired-long-ago" }, { backendId: "garbage", backendSessionId: "x" }, { backendId: "refused", backendSessionId: "y" });
    await h.register("s1", pairs);
    for (const p of pairs) await h.schedule("s1", p.backendId);
    backends["hang"]!.mode = "hang";
    backends["reset"]!.mode = "reset";
    backends["e503"]!.mode = "http_503";

    const { worker } = await h.startWorker();
    const outcomes: string[] = [];
    worker.events.on("failure", (e) => outcomes.push(`${e.backendId}:${e.reason}`));
    await sleep(4_000);
    await waitFor(
      "a failure from each broken backend",
      () => ["hang:timeout", "reset:connection_error", "e503:http_5xx", "gone:session_not_found", "refused:connection_error"].every((o) => outcomes.includes(o)),
      20_000,
    );
    // The SSE stream with a bad event never yields an answer: a timeout or a protocol error, never a throw.
    await waitFor("a garbage failure", () => outcomes.some((o) => o.startsWith("garbage:")), 20_000);
    const before = backends["healthy"]!.count("ping", healthy.sessionId);
    await waitFor("the healthy backend still pinged", () => backends["healthy"]!.count("ping", healthy.sessionId) >= before + 2, 20_000);
    expect(await h.queue.getFailedCount()).toBe(0);
    expect(await h.queue.getCompletedCount()).toBeGreaterThan(10);
  });
});
