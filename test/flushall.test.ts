import { afterEach, describe, expect, it } from "vitest";
import { Redis } from "ioredis";
import { createVmcpClient } from "@vmcp-keepalive/shared";
import { openBackendSession, sleep, startEmbeddedRedis, startMcpTestBackend, waitFor, type OpenedSession } from "@vmcp-keepalive/testkit";
import { startProgram, waitForLog, writeConfig, type RunningProcess } from "./helpers/processes.js";

/*
 * Redis forgets everything (FLUSHALL) under load. The vMCP side
 * re-asserts its live sessions (soft state), so each of them is kept alive again within one
 * refresh interval plus one keepalive interval; sessions that ended before the flush stay ended.
 */
const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

describe("Redis loses every key", () => {
  it("1,000 live pairs are pinged again within one refresh + one interval; ended sessions stay ended", async () => {
    const redisServer = await startEmbeddedRedis();
    cleanups.push(() => redisServer.stop());
    const backend = await startMcpTestBackend();
    cleanups.push(() => backend.stop());
    const intervalMs = 2_000;
    const refreshMs = 4_000;
    const config = writeConfig({
      redis: { url: redisServer.url, prefix: "vmk" },
      keepalive: { interval: `${intervalMs}ms`, timeout: "1s", concurrency: 100 },
      log: { level: "info" },
      backends: [{ id: "pw", url: backend.url }],
    });
    const programs: RunningProcess[] = [startProgram("scheduler", ["--config", config]), startProgram("worker", ["--config", config])];
    cleanups.push(async () => {
      for (const p of programs) expect(await p.stop()).toBe(0);
    });
    for (const p of programs) await waitForLog(p, /^(scheduler|worker) started$/);
    const client = createVmcpClient({ redisUrl: redisServer.url, prefix: "vmk", replicaId: "vmcp-1", refreshIntervalMs: refreshMs });
    cleanups.push(() => client.close());

    // 1,100 sessions, one backend session each; 100 of them end before the flush.
    const sessions: { id: string; backend: OpenedSession }[] = [];
    for (let i = 0; i < 1_100; i += 50) {
      const batch = await Promise.all(Array.from({ length: 50 }, () => openBackendSession(backend.url)));
      batch.forEach((b, j) => sessions.push({ id: `f${i + j}`, backend: b }));
    }
    for (const s of sessions) {
      await client.registerSession(s.id, { sessionTtlMs: 600_000, backends: [{ backendId: "pw", backendSessionId: s.backend.sessionId, protocolVersion: s.backend.protocolVersion }] });
    }
    const pingedSince = (s: { backend: OpenedSession }, since: number) =>
      backend.calls.some((c) => c.method === "ping" && c.sessionId === s.backend.sessionId && c.at > since && c.status === undefined);
    await waitFor("every pair pinged", () => sessions.every((s) => pingedSince(s, 0)), 60_000, 250);
    const [ended, live] = [sessions.slice(0, 100), sessions.slice(100)];
    for (const s of ended) await client.endSession(s.id);
    const redis = new Redis(redisServer.url, { connectionName: "vmk-test-flush" });
    cleanups.push(async () => redis.quit());
    await waitFor("the ended sessions' job schedulers removed", async () => (await redis.zcard("vmk:keepalive:repeat")) === live.length, 20_000);

    await redis.flushall();
    const flushedAt = Date.now();
    // A refresh is due within 1.1 x its interval; then the pair's first tick within one interval.
    const deadline = Math.round(refreshMs * 1.1) + intervalMs;
    await waitFor("every live pair pinged after the flush", () => live.every((s) => pingedSince(s, flushedAt)), deadline + 10_000, 100);
    const tookMs = Date.now() - flushedAt;
    // Only the live sessions came back: one job scheduler each, none for an ended one. One more
    // interval shows no tick of an ended session was left to fire.
    expect(await redis.zcard("vmk:keepalive:repeat")).toBe(live.length);
    await sleep(intervalMs);
    const endedPinged = ended.filter((s) => pingedSince(s, flushedAt)).length;
    console.log(`FLUSHALL: all ${live.length} live pairs pinged again ${tookMs} ms after the flush (refresh ${refreshMs} ms, interval ${intervalMs} ms); ended sessions pinged since: ${endedPinged}`);
    // Slack for applying 1,000 registrations and the worker picking up their first ticks.
    expect(tookMs).toBeLessThanOrEqual(deadline + 2_500);
    expect(endedPinged).toBe(0);
    expect(await redis.exists("vmk:session:f0")).toBe(0);
  }, 180_000);
});
