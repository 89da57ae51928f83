import { afterEach, describe, expect, inject, it } from "vitest";
import { createLogger, parseConfig } from "@vmcp-keepalive/runtime";
import { createVmcpClient, schedulerId, type VmcpClient } from "@vmcp-keepalive/shared";
import { expectNoLeakedConnections, flushPrefix, sleep, testPrefix, waitFor } from "@vmcp-keepalive/testkit";
import { createScheduler, type Scheduler } from "../src/index.js";

const redisUrl = inject("redisUrl");
const logger = createLogger({ name: "test", level: "silent" });

describe("session reaper", () => {
  let prefix = "";
  const schedulers: Scheduler[] = [];
  const clients: VmcpClient[] = [];
  afterEach(async () => {
    for (const c of clients.splice(0)) await c.close();
    for (const s of schedulers.splice(0)) await s.stop();
    await flushPrefix(redisUrl, prefix);
    await expectNoLeakedConnections(redisUrl, (n) => n.endsWith(`@${prefix}`));
  });

  const setup = (reapInterval: string, count = 1) => {
    prefix = testPrefix("reap");
    const config = parseConfig({
      redis: { url: redisUrl, prefix },
      keepalive: { interval: "1h", timeout: "10s" },
      sessions: { reap_interval: reapInterval },
      backends: [
        { id: "b1", url: "http://127.0.0.1:9/mcp" },
        { id: "b2", url: "http://127.0.0.1:9/mcp" },
      ],
    });
    for (let i = 0; i < count; i++) schedulers.push(createScheduler({ config, logger }));
    // refreshIntervalMs 0: these sessions stand for the orphans of a vMCP that died, which no
    // longer re-registers them (a live client's refreshes would keep them, by design).
    const client = createVmcpClient({ redisUrl, prefix, replicaId: "r1", touchIntervalMs: 200, refreshIntervalMs: 0 });
    clients.push(client);
    return { client, config };
  };

  const register = (client: VmcpClient, sessionId: string, o: { ttl?: number; maxLife?: number } = {}) =>
    client.registerSession(sessionId, {
      sessionTtlMs: o.ttl ?? 1_000,
      ...(o.maxLife === undefined ? {} : { maxLifetimeMs: o.maxLife }),
      backends: [
        { backendId: "b1", backendSessionId: `x-${sessionId}` },
        { backendId: "b2", backendSessionId: `y-${sessionId}` },
      ],
    });

  it("two schedulers reaping the same expired sessions at once end each exactly once", async () => {
    const { client } = setup("1h", 2);
    const [a, b] = schedulers as [Scheduler, Scheduler];
    await a.start();
    await b.start();
    for (let i = 0; i < 200; i++) await register(client, `s${i}`);
    await waitFor("200 sessions registered", async () => (await a.keepaliveQueues[0]!.getJobSchedulersCount()) === 400, 30_000);
    // Every session's 1 s TTL has run out (its expiry as the scheduler wrote it).
    const expiries = await Promise.all(Array.from({ length: 200 }, async (_, i) => (await a.store.readSession(`s${i}`))?.expiresAt ?? 0));
    await sleep(Math.max(0, Math.max(...expiries) + 50 - Date.now()));
    const [endedA, endedB] = await Promise.all([a.reaper.reapOnce(), b.reaper.reapOnce()]);
    expect(endedA + endedB).toBe(200);
    expect(await a.keepaliveQueues[0]!.getJobSchedulersCount()).toBe(0);
    expect(await a.store.listPairs()).toEqual([]);
    const s0 = await a.store.readSession("s0");
    expect(s0).toMatchObject({ state: "ended" });
  }, 60_000);

  it("takes turns: of two schedulers' periodic passes within one interval, one runs and the other skips", async () => {
    setup("1h", 2);
    const [a, b] = schedulers as [Scheduler, Scheduler];
    await a.start();
    await b.start();
    const turns = await Promise.all([a.reaper.passOnce(), b.reaper.passOnce()]);
    expect(turns.filter((t) => t === "skipped")).toHaveLength(1);
    expect(turns.filter((t) => t === 0)).toHaveLength(1);
    // Still within the interval: whoever asks is skipped, the one that ran included.
    expect(await a.reaper.passOnce()).toBe("skipped");
    expect(await b.reaper.passOnce()).toBe("skipped");
  });

  it("keeps a touched session, reaps an idle one, and enforces the maximum lifetime", async () => {
    const { client } = setup("200ms");
    await schedulers[0]!.start();
    const s = schedulers[0]!;
    await register(client, "idle", { ttl: 1_500 });
    await register(client, "busy", { ttl: 1_500 });
    await register(client, "capped", { ttl: 1_500, maxLife: 3_000 });
    await waitFor("3 sessions registered", async () => (await s.keepaliveQueues[0]!.getJobSchedulersCount()) === 6);
    const registeredAt = Date.now();
    const keepBusy = setInterval(() => {
      client.touch("busy");
      client.touch("capped");
    }, 100);
    try {
      await waitFor("idle session reaped", async () => (await s.store.readSession("idle"))?.state === "ended", 10_000);
      await waitFor("capped session reaped at its max lifetime", async () => (await s.store.readSession("capped"))?.state === "ended", 10_000);
      expect(Date.now() - registeredAt).toBeGreaterThanOrEqual(2_500);
      expect((await s.store.readSession("busy"))?.state).toBe("active");
      expect(await s.keepaliveQueues[0]!.getJobScheduler(schedulerId("busy", "b1"))).toBeTruthy();
      expect(await s.keepaliveQueues[0]!.getJobScheduler(schedulerId("idle", "b1"))).toBeFalsy();
      expect(await s.keepaliveQueues[0]!.getJobScheduler(schedulerId("capped", "b2"))).toBeFalsy();
    } finally {
      clearInterval(keepBusy);
    }
    // A late registration of a reaped session does not resurrect it.
    await register(client, "idle", { ttl: 60_000 });
    await sleep(500);
    expect((await s.store.readSession("idle"))?.state).toBe("ended");
    expect(await s.keepaliveQueues[0]!.getJobScheduler(schedulerId("idle", "b1"))).toBeFalsy();
  }, 60_000);
});
