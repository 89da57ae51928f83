import { Queue } from "bullmq";
import type { Redis } from "ioredis";
import { afterEach, beforeEach, describe, expect, inject, it } from "vitest";
import { createSessionStore, type SessionStore } from "@vmcp-keepalive/scheduler/internal";
import { closeRedis, createKeys, createLocker, createRedis, createVmcpClient, createVmcpEventPublisher, QUEUE_SESSIONS, type VmcpClient, type VmcpEvent } from "@vmcp-keepalive/shared";
import { expectNoLeakedConnections, flushPrefix, freePort, sleep, startEmbeddedRedis, testPrefix, waitFor } from "@vmcp-keepalive/testkit";
import { recordOutcome } from "./helpers/worker-writes.js";

const redisUrl = inject("redisUrl");

describe("createVmcpClient", () => {
  let prefix: string;
  let redis: Redis;
  let store: SessionStore;
  let queue: Queue;
  const clients: VmcpClient[] = [];
  const client = (o: Partial<Parameters<typeof createVmcpClient>[0]> = {}) => {
    const c = createVmcpClient({ redisUrl, prefix, replicaId: "replica-a", touchIntervalMs: 400, lockTimeoutMs: 1_000, ...o });
    clients.push(c);
    return c;
  };
  const messages = async () => {
    const jobs = await queue.getJobs(["waiting", "delayed", "prioritized", "active", "completed", "failed"]);
    return jobs.map((j) => j.data as { type: string; sessionId: string; sequence: number; backendId?: string }).sort((a, b) => a.sequence - b.sequence);
  };
  const register = (sessionId: string, backendSessionId = "bs-1", status: "active" | "off" = "active") =>
    store.applyRegistered(
      {
        type: "session.registered",
        v: 1,
        sessionId,
        replicaId: "replica-a",
        occurredAt: new Date().toISOString(),
        sequence: Date.now() * 1000,
        sessionTtlMs: 60_000,
        backends: [{ backendId: "b1", backendSessionId }],
      },
      [{ backendId: "b1", backendSessionId, protocolVersion: "2025-06-18", status, offReason: status === "off" ? "method_none" : undefined }],
      Date.now(),
    );

  beforeEach(() => {
    prefix = testPrefix("client");
    redis = createRedis(redisUrl, "client", `vmk-test@${prefix}`);
    store = createSessionStore(redis, createKeys(prefix));
    queue = new Queue(QUEUE_SESSIONS, { connection: redis, prefix });
  });

  afterEach(async () => {
    for (const c of clients.splice(0)) await c.close();
    await queue.close();
    await closeRedis(redis);
    await flushPrefix(redisUrl, prefix);
    await expectNoLeakedConnections(redisUrl, (n) => n.endsWith(`@${prefix}`));
  });

  it("publishes register and end, validated, with increasing sequences", async () => {
    const c = client();
    expect(await c.registerSession("s1", { sessionTtlMs: 60_000, backends: [{ backendId: "b1", backendSessionId: "x", protocolVersion: "2025-06-18" }] })).toEqual({ ok: true });
    expect(await c.endSession("s1", "closed")).toEqual({ ok: true });
    const m = await messages();
    expect(m.map((x) => x.type)).toEqual(["session.registered", "session.ended"]);
    expect(m[1]!.sequence).toBeGreaterThan(m[0]!.sequence);
  });

  it("works on a caller-owned connection and leaves it open on close", async () => {
    const c = createVmcpClient({ connection: redis, prefix, replicaId: "replica-c" });
    const seen: VmcpEvent[] = [];
    c.onEvent((e) => void seen.push(e));
    expect((await c.registerSession("s1", { sessionTtlMs: 60_000, backends: [{ backendId: "b1" }] })).ok).toBe(true);
    const publisher = createVmcpEventPublisher(redis, prefix);
    await publisher.publish({ type: "backend.breaker_closed", v: 1, occurredAt: new Date().toISOString(), backendId: "b1" });
    await publisher.close();
    await waitFor("event on the duplicated connection", () => seen.length === 1, 15_000);
    await c.close();
    expect(redis.status).toBe("ready");
    expect(await redis.ping()).toBe("PONG");
  });

  it("debounces touch: one message at once, one trailing message per interval, none when idle", async () => {
    const c = client({ touchIntervalMs: 600 });
    for (let i = 0; i < 50; i++) c.touch("s1");
    await waitFor("leading touch", async () => (await messages()).length === 1);
    for (let i = 0; i < 50; i++) c.touch("s1");
    // The 100 touches of one interval cost exactly two messages: the leading and the trailing one.
    await waitFor("trailing touch", async () => (await messages()).length === 2, 5_000);
    await sleep(1_500);
    expect((await messages()).length).toBe(2);
    // Another session is debounced on its own.
    c.touch("s2");
    await waitFor("touch of s2", async () => (await messages()).filter((x) => x.sessionId === "s2").length === 1);
    expect((await messages()).every((x) => x.type === "session.touched")).toBe(true);
  });

  it("touch reports the backends a session called: the leading touch at once, the others folded into the trailing one", async () => {
    const c = client({ touchIntervalMs: 600 });
    const before = Date.now();
    c.touch("s1", { backendIds: ["b1"] });
    await waitFor("leading touch", async () => (await messages()).length === 1);
    await sleep(100);
    const secondUse = Date.now();
    c.touch("s1", { backendIds: ["b2"] });
    c.touch("s1");
    c.touch("s1", { backendIds: ["b2", "b3"] });
    await waitFor("trailing touch", async () => (await messages()).length === 2, 5_000);
    const [lead, trail] = (await queue.getJobs(["waiting", "active", "completed"]))
      .map((j) => j.data as { sequence: number; occurredAt: string; backendIds?: string[] })
      .sort((a, b) => a.sequence - b.sequence);
    expect(lead!.backendIds).toEqual(["b1"]);
    expect(Date.parse(lead!.occurredAt)).toBeGreaterThanOrEqual(before);
    expect(trail!.backendIds).toEqual(["b2", "b3"]);
    // The trailing touch says when its backends were first used, not when it was sent.
    expect(Date.parse(trail!.occurredAt)).toBeGreaterThanOrEqual(secondUse);
    expect(Date.parse(trail!.occurredAt)).toBeLessThan(secondUse + 50);
  });

  it("sends a pending trailing touch on close and drops it on endSession", async () => {
    const c = client({ touchIntervalMs: 60_000 });
    c.touch("s1");
    c.touch("s1");
    c.touch("s2");
    c.touch("s2");
    await waitFor("leading touches", async () => (await messages()).length === 2);
    await c.endSession("s2");
    await c.close();
    const m = await messages();
    expect(m.filter((x) => x.sessionId === "s1").map((x) => x.type)).toEqual(["session.touched", "session.touched"]);
    expect(m.filter((x) => x.sessionId === "s2").map((x) => x.type)).toEqual(["session.touched", "session.ended"]);
  });

  it("never throws a publishing problem at the vMCP: a dead Redis gives a typed result", async () => {
    const dead = await startEmbeddedRedis();
    const c = client({ redisUrl: dead.url, prefix });
    expect(await c.registerSession("s1", { sessionTtlMs: 60_000, backends: [{ backendId: "b1" }] })).toEqual({ ok: true });
    await dead.stop();
    const result = await c.registerSession("s1", { sessionTtlMs: 60_000, backends: [{ backendId: "b1" }] });
    expect(result.ok).toBe(false);
    expect(() => c.touch("s1")).not.toThrow();
    const ended = await c.endSession("s1");
    expect(ended.ok).toBe(false);
  }, 40_000);

  it("delivers each vmcp-events event to exactly one replica", async () => {
    const seen: { replica: string; event: VmcpEvent }[] = [];
    const a = client({ replicaId: "replica-a" });
    const b = client({ replicaId: "replica-b" });
    a.onEvent((event) => void seen.push({ replica: "a", event }));
    b.onEvent((event) => void seen.push({ replica: "b", event }));
    const publisher = createVmcpEventPublisher(redis, prefix);
    try {
      for (let i = 0; i < 20; i++) {
        await publisher.publish({
          type: "backend.session_expired",
          v: 1,
          occurredAt: new Date().toISOString(),
          sessionId: `s${i}`,
          backendId: "b1",
          backendSessionId: `old-${i}`,
        });
      }
      await waitFor("20 events", () => seen.length >= 20, 15_000);
      await sleep(500);
      expect(seen.length).toBe(20);
      expect(new Set(seen.map((s) => (s.event as { sessionId: string }).sessionId)).size).toBe(20);
    } finally {
      await publisher.close();
    }
  });

  it("a handler that throws gets the event again (BullMQ retry)", async () => {
    let calls = 0;
    const c = client();
    c.onEvent(() => {
      calls++;
      if (calls === 1) throw new Error("vMCP store busy");
    });
    const publisher = createVmcpEventPublisher(redis, prefix);
    try {
      await publisher.publish({ type: "backend.breaker_closed", v: 1, occurredAt: new Date().toISOString(), backendId: "b1" });
      await waitFor("retried event", () => calls >= 2, 15_000);
    } finally {
      await publisher.close();
    }
  });

  it("re-registers every live session each refresh interval, with the backend session a re-initialize stored; never an ended one", async () => {
    await register("s1", "old");
    const c = client({ refreshIntervalMs: 300 });
    await c.registerSession("s1", { sessionTtlMs: 60_000, backends: [{ backendId: "b1", backendSessionId: "old" }] });
    await c.registerSession("s2", { sessionTtlMs: 60_000, backends: [{ backendId: "b1", backendSessionId: "other" }] });
    await c.reinitializeBackend("s1", "b1", async () => ({ backendSessionId: "new", protocolVersion: "2025-11-25" }));
    const refreshes = async (sessionId: string) =>
      (await queue.getJobs(["waiting", "active", "completed"]))
        .map((j) => j.data as { type: string; sessionId: string; sequence: number; backends?: { backendSessionId?: string; protocolVersion?: string }[] })
        .filter((m) => m.type === "session.registered" && m.sessionId === sessionId)
        .sort((a, b) => a.sequence - b.sequence);
    await waitFor("two refreshes of s1", async () => (await refreshes("s1")).length >= 3, 5_000);
    const last = (await refreshes("s1")).at(-1)!;
    expect(last.backends).toEqual([{ backendId: "b1", backendSessionId: "new", protocolVersion: "2025-11-25" }]);
    await c.endSession("s2");
    const afterEnd = (await refreshes("s2")).length;
    await sleep(1_000);
    expect((await refreshes("s2")).length).toBe(afterEnd);
  });

  describe("reinitializeBackend", () => {
    it("stores the new backend session under the lock and bumps the epoch", async () => {
      await register("s1", "old");
      const before = (await store.readPair("s1", "b1"))!;
      await recordOutcome(redis, createKeys(prefix), before, { kind: "failure", reason: "timeout" }, Date.now());
      const c = client();
      const result = await c.reinitializeBackend("s1", "b1", async () => ({ backendSessionId: "new", protocolVersion: "2025-11-25", extra: 7 }));
      expect(result).toMatchObject({ lock: "held", state: "written", epoch: before.epoch + 1, schedulerRestoreRequested: false, value: { extra: 7 } });
      const after = (await store.readPair("s1", "b1"))!;
      expect(after).toMatchObject({
        backendSessionId: "new",
        protocolVersion: "2025-11-25",
        epoch: before.epoch + 1,
        status: "active",
        consecutiveFailures: 0,
      });
      expect(after.lastFailureReason).toBeUndefined();
      // The lock was released: a worker can take it at once.
      const locker = createLocker([redis]);
      const lock = await locker.tryLock(`${prefix}:lock:s1:b1`, 1_000);
      expect(lock.acquired).toBe(true);
      if (lock.acquired) await lock.lock.release();
    });

    it("fences out a worker write that read the old epoch (every outcome write is conditional on it)", async () => {
      await register("s1", "old");
      const readByWorker = (await store.readPair("s1", "b1"))!;
      await client().reinitializeBackend("s1", "b1", async () => ({ backendSessionId: "new" }));
      const fresh = (await store.readPair("s1", "b1"))!;
      for (const outcome of [{ kind: "success" }, { kind: "failure", reason: "session_not_found" }] as const) {
        const rec = await recordOutcome(redis, createKeys(prefix), readByWorker, outcome, Date.now(), { latencyMs: 5, status: "expired" });
        expect(rec).toEqual({ written: false, why: "fenced" });
      }
      expect(await store.readPair("s1", "b1")).toEqual(fresh);
    });

    it("brings an expired pair back to active and asks the scheduler to restore its job scheduler", async () => {
      await register("s1", "old");
      const pair = (await store.readPair("s1", "b1"))!;
      await recordOutcome(redis, createKeys(prefix), pair, { kind: "failure", reason: "session_not_found" }, Date.now(), { status: "expired" });
      const result = await client().reinitializeBackend("s1", "b1", async () => ({ backendSessionId: "new" }));
      expect(result).toMatchObject({ state: "written", schedulerRestoreRequested: true });
      expect((await store.readPair("s1", "b1"))!.status).toBe("active");
      expect((await messages()).map((m) => [m.type, m.backendId])).toEqual([["session.backend_reinitialized", "b1"]]);
    });

    it("leaves an off pair off (policy is the scheduler's) and stores nothing for an unknown pair", async () => {
      await register("s1", "old", "off");
      const c = client();
      expect((await c.reinitializeBackend("s1", "b1", async () => ({ backendSessionId: "new" }))).state).toBe("written");
      expect((await store.readPair("s1", "b1"))!.status).toBe("off");
      const unknown = await c.reinitializeBackend("nope", "b1", async () => ({ backendSessionId: "new" }));
      expect(unknown).toMatchObject({ state: "unknown_pair", lock: "held", value: { backendSessionId: "new" } });
      expect(await store.readPair("nope", "b1")).toBeUndefined();
    });

    it("stores nothing when the callback returns an invalid backend session", async () => {
      await register("s1", "old");
      const c = client();
      const r = await c.reinitializeBackend("s1", "b1", async () => ({ backendSessionId: "has space", protocolVersion: "2025-06-18" }));
      expect(r).toMatchObject({ lock: "held", state: "invalid_result" });
      const r2 = await c.reinitializeBackend("s1", "b1", async () => ({ backendSessionId: "ok", protocolVersion: "latest" }));
      expect(r2.state).toBe("invalid_result");
      expect((await store.readPair("s1", "b1"))!.backendSessionId).toBe("old");
    });

    it("re-throws the callback's own error after releasing the lock, storing nothing", async () => {
      await register("s1", "old");
      const c = client();
      await expect(c.reinitializeBackend("s1", "b1", async () => Promise.reject(new Error("backend refused initialize")))).rejects.toThrow("backend refused initialize");
      expect((await store.readPair("s1", "b1"))!.backendSessionId).toBe("old");
      const lock = await createLocker([redis]).tryLock(`${prefix}:lock:s1:b1`, 1_000);
      expect(lock.acquired).toBe(true);
      if (lock.acquired) await lock.lock.release();
    });

    it("waits for a busy lock (bounded), then goes ahead without it and says so", async () => {
      await register("s1", "old");
      const locker = createLocker([redis]);
      const held = await locker.tryLock(`${prefix}:lock:s1:b1`, 600);
      expect(held.acquired).toBe(true);
      const c = client({ lockTimeoutMs: 2_000 });
      // Held for 600 ms < 2 s bound: the re-initialize waits and gets it.
      const started = Date.now();
      const r1 = await c.reinitializeBackend("s1", "b1", async () => ({ backendSessionId: "new-1" }));
      expect(r1.lock).toBe("held");
      expect(Date.now() - started).toBeGreaterThanOrEqual(400);
      // Held beyond the bound: proceeds without it after ~lockTimeoutMs.
      const long = await locker.tryLock(`${prefix}:lock:s1:b1`, 10_000);
      expect(long.acquired).toBe(true);
      const c2 = client({ lockTimeoutMs: 500 });
      const r2 = await c2.reinitializeBackend("s1", "b1", async () => ({ backendSessionId: "new-2" }));
      expect(r2).toMatchObject({ lock: "busy", state: "written" });
      expect((await store.readPair("s1", "b1"))!.backendSessionId).toBe("new-2");
      if (long.acquired) await long.lock.release();
    });

    it("with the lock quorum gone, still re-initializes and reports lock unavailable", async () => {
      await register("s1", "old");
      const ports = [await freePort(), await freePort(), await freePort()];
      const c = client({ lockRedisUrls: ports.map((p) => `redis://127.0.0.1:${p}`), lockTimeoutMs: 10_000 });
      const started = Date.now();
      const result = await c.reinitializeBackend("s1", "b1", async () => ({ backendSessionId: "new" }));
      // No quorum is answered at once, not after lockTimeoutMs: waiting would only delay the user.
      expect(Date.now() - started).toBeLessThan(3_000);
      expect(result).toMatchObject({ lock: "unavailable", state: "written" });
      expect((await store.readPair("s1", "b1"))!.backendSessionId).toBe("new");
    });
  });
});
