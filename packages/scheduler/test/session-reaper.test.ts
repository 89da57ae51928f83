import { afterEach, describe, expect, inject, it } from "vitest";
import { createLogger, createVmcpClient, parseConfig, schedulerId, type VmcpClient } from "@vmcp-keepalive/shared";
import { expectNoLeakedConnections, flushPrefix, sleep, testPrefix, waitFor } from "@vmcp-keepalive/shared/testing";
import { createScheduler, type Scheduler } from "../src/index.js";

const redisUrl = inject("redisUrl");
const logger = createLogger({ name: "test", level: "silent" });

describe("session reaper and re-initialize reconciliation", () => {
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
      backends: [{ id: "b1", url: "http://127.0.0.1:9/mcp" }, { id: "b2", url: "http://127.0.0.1:9/mcp" }],
    });
    for (let i = 0; i < count; i++) schedulers.push(createScheduler({ config, logger }));
    const client = createVmcpClient({ redisUrl, prefix, replicaId: "r1", touchIntervalMs: 200 });
    clients.push(client);
    return { client, config };
  };

  const register = (client: VmcpClient, sessionId: string, o: { ttl?: number; maxLife?: number } = {}) =>
    client.registerSession(sessionId, {
      sessionTtlMs: o.ttl ?? 1_000,
      ...(o.maxLife === undefined ? {} : { maxLifetimeMs: o.maxLife }),
      backends: [{ backendId: "b1", backendSessionId: `x-${sessionId}` }, { backendId: "b2", backendSessionId: `y-${sessionId}` }],
    });

  it("two schedulers reaping the same expired sessions at once end each exactly once", async () => {
    const { client } = setup("1h", 2);
    const [a, b] = schedulers as [Scheduler, Scheduler];
    await a.start();
    await b.start();
    for (let i = 0; i < 200; i++) await register(client, `s${i}`);
    await waitFor("200 sessions registered", async () => (await a.keepaliveQueue.getJobSchedulersCount()) === 400, 30_000);
    await sleep(1_200); // every session's 1 s TTL passes
    const [endedA, endedB] = await Promise.all([a.reaper.reapOnce(), b.reaper.reapOnce()]);
    expect(endedA + endedB).toBe(200);
    expect(await a.keepaliveQueue.getJobSchedulersCount()).toBe(0);
    expect(await a.store.listPairs()).toEqual([]);
    const s0 = await a.store.readSession("s0");
    expect(s0).toMatchObject({ state: "ended" });
  }, 60_000);

  it("keeps a touched session, reaps an idle one, and enforces the maximum lifetime", async () => {
    const { client } = setup("200ms");
    await schedulers[0]!.start();
    const s = schedulers[0]!;
    await register(client, "idle", { ttl: 1_500 });
    await register(client, "busy", { ttl: 1_500 });
    await register(client, "capped", { ttl: 1_500, maxLife: 3_000 });
    await waitFor("3 sessions registered", async () => (await s.keepaliveQueue.getJobSchedulersCount()) === 6);
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
      expect(await s.keepaliveQueue.getJobScheduler(schedulerId("busy", "b1"))).toBeTruthy();
      expect(await s.keepaliveQueue.getJobScheduler(schedulerId("idle", "b1"))).toBeFalsy();
      expect(await s.keepaliveQueue.getJobScheduler(schedulerId("capped", "b2"))).toBeFalsy();
    } finally {
      clearInterval(keepBusy);
    }
    // A late registration of a reaped session does not resurrect it.
    await register(client, "idle", { ttl: 60_000 });
    await sleep(500);
    expect((await s.store.readSession("idle"))?.state).toBe("ended");
    expect(await s.keepaliveQueue.getJobScheduler(schedulerId("idle", "b1"))).toBeFalsy();
  }, 60_000);

  it("restores the job scheduler of an expired pair after reinitializeBackend (session.backend_reinitialized)", async () => {
    const { client } = setup("1h");
    const s = schedulers[0]!;
    await s.start();
    await register(client, "s1", { ttl: 60_000 });
    await waitFor("registered", async () => (await s.keepaliveQueue.getJobSchedulersCount()) === 2);
    // What a worker does on 404: record `expired` (fenced) and remove the pair's job scheduler.
    const pair = (await s.store.readPair("s1", "b1"))!;
    expect((await s.store.recordOutcome(pair, { kind: "failure", reason: "session_not_found" }, Date.now(), { status: "expired" })).written).toBe(true);
    await s.pairs.remove("s1", "b1");
    const before = await s.keepaliveQueue.getJobScheduler(schedulerId("s1", "b2"));

    const result = await client.reinitializeBackend("s1", "b1", async () => ({ backendSessionId: "fresh", protocolVersion: "2025-06-18" }));
    expect(result).toMatchObject({ lock: "held", state: "written", schedulerRestoreRequested: true });
    await waitFor("job scheduler restored", () => s.keepaliveQueue.getJobScheduler(schedulerId("s1", "b1")));
    expect(await s.store.readPair("s1", "b1")).toMatchObject({ status: "active", backendSessionId: "fresh" });
    // The other pair's scheduler is untouched.
    expect(await s.keepaliveQueue.getJobScheduler(schedulerId("s1", "b2"))).toEqual(before);
  });
});
