import { Redis } from "ioredis";
import { afterEach, describe, expect, it } from "vitest";
import { createSessionPublisher } from "@vmcp-keepalive/shared";
import { sleep, startEmbeddedRedis, startLatencyProxyProcess, startMcpTestBackend, waitFor } from "@vmcp-keepalive/testkit";
import { startProgram, waitForLog, writeConfig, type RunningProcess } from "./helpers/processes.js";

/*
 * A scheduler SIGKILLed at random moments during registration bursts
 * (5 rounds of 500 sessions), with every reply of Redis to the schedulers delayed 50 ms by a
 * proxy and a second scheduler running. A message whose state write landed before the kill is completed when it is
 * redelivered, and redelivery comes within seconds: every registered pair gets its first ping.
 * The sessions' backend session ids are made up: the backend answers 404, which is still the
 * first ping this measures (the backend records every call by its Mcp-Session-Id).
 */
const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

const percentile = (values: number[], p: number) => [...values].sort((a, b) => a - b)[Math.min(values.length - 1, Math.ceil((p / 100) * values.length) - 1)]!;

describe("a scheduler killed during registration bursts", () => {
  it("loses no registration: every pair is pinged, p99 publish → first ping ≤ 10 s", async () => {
    const redisServer = await startEmbeddedRedis();
    cleanups.push(() => redisServer.stop());
    const proxy = await startLatencyProxyProcess({ port: Number(new URL(redisServer.url).port) }, 50);
    cleanups.push(() => proxy.stop());
    const backend = await startMcpTestBackend();
    cleanups.push(() => backend.stop());
    // The schedulers reach Redis through the proxy; the worker directly (what is measured here is
    // the registration path: a keepalive on a 50 ms Redis is another matter).
    const config = writeConfig({
      redis: { url: proxy.url, prefix: "vmk" },
      keepalive: { interval: "2s", timeout: "1s", concurrency: 200 },
      log: { level: "warn" },
      backends: [{ id: "pw", url: backend.url }],
    });
    const programs: RunningProcess[] = [];
    const start = async (name: "scheduler" | "worker") => {
      const p = startProgram(name, ["--config", config], { LOG_LEVEL: "info", ...(name === "worker" ? { REDIS_URL: redisServer.url } : {}) });
      programs.push(p);
      await waitForLog(p, `${name} started`, 30_000);
      return p;
    };
    cleanups.push(async () => {
      for (const p of programs) await p.stop();
    });
    let victim = await start("scheduler");
    await start("scheduler");
    await start("worker");

    // The vMCP publishes directly (not through the proxy): the bursts arrive fast.
    const redis = new Redis(redisServer.url, { connectionName: "vmk-test-vmcp" });
    const publisher = createSessionPublisher({ connection: redis, prefix: "vmk", replicaId: "vmcp-burst" });
    cleanups.push(
      async () => redis.quit(),
      () => publisher.close(),
    );

    const publishedAt = new Map<string, number>();
    for (let round = 0; round < 5; round++) {
      const killAfterMs = 100 + Math.floor(Math.random() * 1_200);
      const killing = sleep(killAfterMs).then(async () => {
        await victim.kill();
        victim = await start("scheduler");
      });
      for (let i = 0; i < 500; i++) {
        const sessionId = `r${round}-s${i}`;
        publishedAt.set(`bs-${sessionId}`, Date.now());
        await publisher.register(sessionId, { sessionTtlMs: 600_000, backends: [{ backendId: "pw", backendSessionId: `bs-${sessionId}` }] });
      }
      await killing;
      // Bursts, not a flood: the next one comes once this one is applied (or after 15 s).
      await waitFor("the burst applied", async () => (await redis.llen("vmk:vmcp-sessions:wait")) + (await redis.llen("vmk:vmcp-sessions:active")) === 0, 15_000, 100).catch(() => undefined);
      console.log(`round ${round + 1}: 500 sessions published, one scheduler SIGKILLed ${killAfterMs} ms into the burst and restarted`);
    }

    const firstPing = new Map<string, number>();
    const seen = () => {
      for (const c of backend.calls) if (c.method === "ping" && c.sessionId && !firstPing.has(c.sessionId)) firstPing.set(c.sessionId, c.at);
      return firstPing.size;
    };
    await waitFor("a first ping for every registered pair", () => seen() >= publishedAt.size, 60_000, 250).catch(() => undefined);
    const lost = [...publishedAt.keys()].filter((id) => !firstPing.has(id));
    const delays = [...publishedAt].flatMap(([id, at]) => (firstPing.has(id) ? [firstPing.get(id)! - at] : []));
    const p99 = percentile(delays, 99);
    console.log(`scheduler kills: ${publishedAt.size} pairs, lost ${lost.length}, publish → first ping p50 ${percentile(delays, 50)} ms, p99 ${p99} ms, max ${Math.max(...delays)} ms`);
    expect(lost).toEqual([]);
    expect(p99).toBeLessThanOrEqual(10_000);
  }, 240_000);
});
