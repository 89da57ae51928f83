import { Queue, QueueEvents } from "bullmq";
import { Redis } from "ioredis";
import { afterEach, describe, expect, inject, it } from "vitest";
import { createKeys, createLocker, KEEPALIVE_JOB_NAME, QUEUE_KEEPALIVE, schedulerId, type SessionRegistered } from "@vmcp-keepalive/shared";
import { createPairScheduler, createSessionStore } from "@vmcp-keepalive/scheduler/internal";
import { createLogger, parseConfig } from "@vmcp-keepalive/runtime";
import { captureLines, expectNoLeakedConnections, flushPrefix, openBackendSession, sleep, startMcpTestBackend, testPrefix, waitFor } from "@vmcp-keepalive/testkit";
import { createTickRunner, createWorker } from "../src/create-worker.js";

const url = inject("redisUrl");
const cleanups: (() => Promise<unknown>)[] = [];
let prefix = "";
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
  await expectNoLeakedConnections(url, (n) => n.endsWith(`@${prefix}`));
  await flushPrefix(url, prefix);
});

/** A worker plus what a scheduler would have written for one registered pair. */
async function setup(everyMs = 1_000) {
  prefix = testPrefix();
  const backend = await startMcpTestBackend({ idleTtlMs: 60_000 });
  const config = parseConfig({
    redis: { url, prefix },
    keepalive: { interval: everyMs, timeout: "800ms", concurrency: 4 },
    backends: [{ id: "pw", url: backend.url }],
  });
  const { destination, lines } = captureLines();
  const logger = createLogger({ name: "test", level: "debug", destination });
  const worker = createWorker({ config, logger });
  const redis = new Redis(url, { connectionName: `vmk-test@${prefix}` });
  const keys = createKeys(prefix);
  const store = createSessionStore(redis, keys);
  const queue = new Queue(QUEUE_KEEPALIVE, { connection: redis, prefix });
  const queueEvents = new QueueEvents(QUEUE_KEEPALIVE, { connection: { url }, prefix });
  cleanups.push(
    async () => redis.quit(),
    () => queue.close(),
    () => queueEvents.close(),
    () => backend.stop(),
    () => worker.stop(),
  );
  const register = async (sessionId: string, backendSessionId: string, protocolVersion?: string) => {
    const message: SessionRegistered = {
      type: "session.registered",
      v: 1,
      sessionId,
      replicaId: "r",
      occurredAt: new Date().toISOString(),
      sequence: 1,
      sessionTtlMs: 600_000,
      backends: [{ backendId: "pw", backendSessionId }],
    };
    await store.applyRegistered(message, [{ backendId: "pw", backendSessionId, protocolVersion, status: "active", offReason: undefined }], Date.now());
    // As the scheduler does: every interval at the pair's phase offset, no job data.
    await createPairScheduler([queue]).upsert(sessionId, "pw", everyMs);
  };
  /** The worker's tick runner on its own, for a test that drives ticks one at a time. */
  const ticks = () => {
    const runner = createTickRunner({ config, logger });
    cleanups.push(() => runner.close());
    return runner;
  };
  return { backend, config, worker, ticks, redis, keys, store, queue, queueEvents, register, lines };
}

describe("keepalive worker", () => {
  it("pings the stored backend session with its protocol version and records the outcome", async () => {
    const t = await setup();
    const session = await openBackendSession(t.backend.url);
    await t.register("s1", session.sessionId, session.protocolVersion);
    await t.worker.start();
    await waitFor("two pings", () => t.backend.count("ping", session.sessionId) >= 2, 10_000);
    const ping = t.backend.calls.find((c) => c.method === "ping")!;
    expect(ping.protocolVersion).toBe(session.protocolVersion);
    expect(String(ping.id)).toMatch(/^vmk-ka-[0-9a-f-]{36}$/);
    const pair = await waitFor("recorded", async () => {
      const p = await t.store.readPair("s1", "pw");
      return p?.lastOutcome === "success" ? p : undefined;
    });
    expect(pair.lastSuccessAt).toBeGreaterThan(0);
    expect(pair.consecutiveFailures).toBe(0);
    const text = await t.worker.registry.getSingleMetricAsString("keepalive_success_count");
    expect(text).toMatch(/keepalive_success_count\{backend="pw",method="ping"\} [1-9]/);
  });

  it("reads the backend session id from Redis, never from the job", async () => {
    const t = await setup();
    const real = await openBackendSession(t.backend.url);
    await t.register("s1", real.sessionId);
    // A job whose data claims another session id (and a URL): neither is used.
    await t.queue.add(KEEPALIVE_JOB_NAME, { sessionId: "s1", backendId: "pw", backendSessionId: "forged", url: "http://127.0.0.1:9/evil" });
    await t.worker.start();
    await waitFor("pings", () => t.backend.count("ping") >= 2, 10_000);
    expect(t.backend.calls.filter((c) => c.method === "ping").every((c) => c.sessionId === real.sessionId)).toBe(true);
  });

  it("a pair that carried traffic within its interval gets no backend call (recent_traffic); once idle, it is pinged again", async () => {
    const t = await setup(1_000);
    const session = await openBackendSession(t.backend.url);
    await t.register("busy", session.sessionId);
    // The vMCP reports that the session called this backend a moment ago.
    const touch = (sequence: number) => t.store.applyTouched({ type: "session.touched", v: 1, sessionId: "busy", occurredAt: new Date().toISOString(), sequence, backendIds: ["pw"] }, Date.now());
    expect((await touch(2)).status).toBe("applied");
    const ticks = t.ticks();
    expect(await ticks.run("busy", "pw")).toEqual({ outcome: "skipped", reason: "recent_traffic" });
    await sleep(400);
    expect((await touch(3)).status).toBe("applied");
    expect(await ticks.run("busy", "pw")).toEqual({ outcome: "skipped", reason: "recent_traffic" });
    expect(t.backend.count("ping", session.sessionId)).toBe(0);
    expect((await t.store.readPair("busy", "pw"))?.lastOutcome).toBe("skipped:recent_traffic");
    // Idle for longer than the window (one 1 s interval): pinged as usual.
    await sleep(1_100);
    expect(await ticks.run("busy", "pw")).toMatchObject({ outcome: "success", method: "ping" });
    expect(t.backend.count("ping", session.sessionId)).toBe(1);
    const skipped = await ticks.registry.getSingleMetricAsString("keepalive_skipped_total");
    expect(skipped).toContain('keepalive_skipped_total{backend="pw",reason="recent_traffic"} 2');
  });

  it("skips a tick whose pair lock is held elsewhere: no ping, outcome skipped (not failed)", async () => {
    const t = await setup();
    const session = await openBackendSession(t.backend.url);
    await t.register("s1", session.sessionId);
    const lockRedis = new Redis(url, { connectionName: `vmk-test-lock@${prefix}` });
    cleanups.push(async () => lockRedis.quit());
    const held = await createLocker([lockRedis]).tryLock(`${prefix}:lock:s1:pw`, 60_000);
    expect(held.acquired).toBe(true);
    const completed: unknown[] = [];
    t.queueEvents.on("completed", ({ returnvalue }) => completed.push(returnvalue));
    const failed: unknown[] = [];
    t.queueEvents.on("failed", (e) => failed.push(e));
    await t.queueEvents.waitUntilReady();
    await t.worker.start();
    await waitFor("two skipped ticks", () => completed.length >= 2, 10_000);
    expect(completed.slice(0, 2)).toEqual([
      { outcome: "skipped", reason: "locked" },
      { outcome: "skipped", reason: "locked" },
    ]);
    expect(failed).toEqual([]);
    expect(t.backend.count("ping")).toBe(0);
    expect((await t.store.readPair("s1", "pw"))?.consecutiveFailures).toBe(0);
    expect(await t.worker.registry.getSingleMetricAsString("keepalive_skipped_total")).toMatch(/keepalive_skipped_total\{backend="pw",reason="locked"\} [2-9]/);
    if (held.acquired) await held.lock.release();
    await waitFor("ping after release", () => t.backend.count("ping") >= 1, 10_000);
  });

  it("turns a failing backend into a completed job with a failure outcome, never a failed job", async () => {
    const t = await setup();
    const session = await openBackendSession(t.backend.url);
    await t.register("s1", session.sessionId);
    t.backend.mode = "http_503";
    const completed: { outcome?: string; reason?: string }[] = [];
    t.queueEvents.on("completed", ({ returnvalue }) => completed.push(returnvalue as never));
    await t.queueEvents.waitUntilReady();
    await t.worker.start();
    await waitFor("a failure outcome", () => completed.length >= 2, 10_000);
    expect(completed[0]).toMatchObject({ outcome: "failure", reason: "http_5xx", method: "ping" });
    expect(await t.queue.getFailedCount()).toBe(0);
    expect(await t.store.readPair("s1", "pw")).toMatchObject({ lastFailureReason: "http_5xx" });
  });

  it("drops a tick for an ended pair and removes its orphaned scheduler", async () => {
    const t = await setup();
    // A job scheduler whose pair is gone (its session ended while the removal was lost).
    await createPairScheduler([t.queue]).upsert("gone", "pw", 1_000);
    await t.worker.start();
    await waitFor("scheduler removed", async () => (await t.queue.getJobScheduler(schedulerId("gone", "pw"))) === undefined, 10_000);
    expect(t.backend.count("ping")).toBe(0);
  });
});
