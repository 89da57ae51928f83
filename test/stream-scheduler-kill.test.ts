import { Redis } from "ioredis";
import { afterEach, describe, expect, inject, it } from "vitest";
import { createKeys, createSessionPublisher, STREAM_SCHEDULER_GROUP } from "@vmcp-keepalive/shared";
import { flushPrefix, startLatencyProxyProcess, testPrefix, waitFor } from "@vmcp-keepalive/testkit";
import { startProgram, waitForLog, writeConfig, type RunningProcess } from "./helpers/processes.js";

/*
 * The ingress stream with two real scheduler processes, one SIGKILLed half-way through 1,000
 * registrations. The schedulers reach Redis through a proxy that delays every reply by 50 ms, so
 * that the victim dies with entries delivered to it and not yet acknowledged: the survivor must
 * claim them (XAUTOCLAIM after streams.claim_idle, default 5 s) and apply every one.
 */
const redisUrl = inject("redisUrl");
const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

describe("a scheduler killed while it reads the ingress stream", () => {
  it("loses none of 1,000 registrations: the survivor takes over the victim's pending entries within 10 s", async () => {
    const prefix = testPrefix("skill");
    const keys = createKeys(prefix);
    const proxy = await startLatencyProxyProcess({ port: Number(new URL(redisUrl).port) }, 50);
    cleanups.push(() => proxy.stop());
    const config = writeConfig({
      redis: { url: proxy.url, prefix },
      keepalive: { interval: "1m", timeout: "1s" },
      log: { level: "warn" },
      backends: [{ id: "pw", url: "http://127.0.0.1:1/mcp" }],
    });
    const programs: RunningProcess[] = [];
    cleanups.push(async () => {
      for (const p of programs) await p.stop();
      await flushPrefix(redisUrl, prefix);
    });
    const start = async () => {
      const p = startProgram("scheduler", ["--config", config], { LOG_LEVEL: "info" });
      programs.push(p);
      return String((await waitForLog(p, "scheduler started", 30_000))["instanceId"]);
    };
    const victimId = await start();
    await start();
    const victim = programs[0]!;

    const redis = new Redis(redisUrl, { connectionName: `vmk-test@${prefix}` });
    const publisher = createSessionPublisher({ connection: redis, queue: keys.sessionsQueue, replicaId: "vmcp-go", transport: "stream" });
    cleanups.push(
      async () => redis.quit(),
      () => publisher.close(),
    );
    const register = (i: number) => publisher.register(`k${i}`, { sessionTtlMs: 600_000, backends: [{ backendId: "pw", backendSessionId: `bs-k${i}` }] });

    for (let i = 0; i < 500; i++) await register(i);
    // The victim has taken entries it has not acknowledged yet.
    const victimPending = async () => ((await redis.xpending(keys.sessionMessagesStream, STREAM_SCHEDULER_GROUP, "-", "+", 1_000, victimId)) as unknown[]).length;
    await waitFor("the victim holding entries", async () => (await victimPending()) > 0, 10_000, 10);
    await victim.kill();
    const killedAt = Date.now();
    const held = await victimPending();
    for (let i = 500; i < 1_000; i++) await register(i);

    await waitFor("the victim's entries taken over", async () => (await victimPending()) === 0, 15_000, 100);
    const takeoverMs = Date.now() - killedAt;
    await waitFor("all 1,000 sessions registered", async () => Number(await redis.get(keys.sessionCount(0))) === 1_000, 20_000, 100);
    await waitFor("the ingress stream empty", async () => (await redis.xlen(keys.sessionMessagesStream)) === 0, 10_000);
    console.log(`victim SIGKILLed holding ${held} unacknowledged entries; the survivor took them over ${takeoverMs} ms later; 1,000 of 1,000 sessions registered`);
    expect(held).toBeGreaterThan(0);
    expect(takeoverMs).toBeLessThanOrEqual(10_000);
    expect(await redis.xlen(keys.sessionMessagesRejectedStream)).toBe(0);
    // Every session has its pair (the registration was applied whole, not just its session hash).
    let pairs = 0;
    for (let i = 0; i < 1_000; i++) pairs += await redis.exists(keys.pair(`k${i}`, "pw"));
    expect(pairs).toBe(1_000);
  }, 90_000);
});
