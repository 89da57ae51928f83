import { Queue } from "bullmq";
import type { Redis } from "ioredis";
import { afterEach, describe, expect, inject, it } from "vitest";
import { closeRedis, createKeys, createRedis, KEEPALIVE_JOB_NAME, queueOptions, QUEUE_KEEPALIVE, schedulerId } from "@vmcp-keepalive/shared";
import { createLogger, parseConfig } from "@vmcp-keepalive/runtime";
import { createSessionStore } from "@vmcp-keepalive/scheduler/internal";
import { KEEPALIVE_ID_PREFIX } from "../src/internal.js";
import { expectNoLeakedConnections, flushPrefix, openBackendSession, startMcpTestBackend, testPrefix, waitFor, type McpTestBackend } from "@vmcp-keepalive/testkit";
import { createWorker, type KeepaliveWorker } from "../src/index.js";

const url = inject("redisUrl");

/**
 * Job-scheduler jobs carry no data (the scheduler's template is empty, to keep Redis memory per
 * pair small — docs/benchmarks.md): the worker must take the pair from the job's scheduler id.
 */
describe("keepalive jobs without data", () => {
  const cleanups: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    for (const c of cleanups.reverse()) await c();
    cleanups.length = 0;
  });

  it("pings the pair named by the scheduler id ka:<sessionId>:<backendId>, with the lock fast path", async () => {
    const prefix = testPrefix("sjob");
    const backend: McpTestBackend = await startMcpTestBackend({ jsonResponse: true });
    cleanups.push(
      () => flushPrefix(url, prefix),
      () => backend.stop(),
    );
    const session = await openBackendSession(backend.url);
    const config = parseConfig({
      redis: { url, prefix },
      keepalive: { interval: "5s", timeout: "1s", concurrency: 4 },
      backends: [{ id: "b1", url: backend.url, interval: "1s" }],
    });
    const redis: Redis = createRedis(url, "client", `vmk-test@${prefix}`);
    const queue = new Queue(QUEUE_KEEPALIVE, queueOptions(redis, prefix));
    cleanups.push(
      () => closeRedis(redis),
      () => queue.close(),
    );

    const store = createSessionStore(redis, createKeys(prefix));
    await store.applyRegistered(
      {
        type: "session.registered",
        v: 1,
        sessionId: "s1",
        replicaId: "r1",
        occurredAt: new Date().toISOString(),
        sequence: 1,
        sessionTtlMs: 60_000,
        backends: [{ backendId: "b1", backendSessionId: session.sessionId, protocolVersion: session.protocolVersion }],
      },
      [{ backendId: "b1", backendSessionId: session.sessionId, protocolVersion: session.protocolVersion, status: "active", offReason: undefined }],
      Date.now(),
    );
    // Exactly what the scheduler's pair-scheduler upserts: no data, no job options.
    await queue.upsertJobScheduler(schedulerId("s1", "b1"), { every: 1_000, offset: 1 }, { name: KEEPALIVE_JOB_NAME });

    const worker: KeepaliveWorker = createWorker({ config, logger: createLogger({ name: "test", level: "silent" }) });
    cleanups.push(() => worker.stop());
    await worker.start();

    await waitFor("two keepalive pings on the registered backend session", () => backend.count("ping", session.sessionId) >= 2, 15_000);
    const pings = backend.calls.filter((c) => c.method === "ping");
    expect(pings.every((c) => c.sessionId === session.sessionId && String(c.id).startsWith(KEEPALIVE_ID_PREFIX))).toBe(true);
    await waitFor("the outcome recorded on the pair", async () => (await store.readPair("s1", "b1"))?.lastOutcome === "success", 5_000);
    await worker.stop();
    // Every tick released its lock (the fast path's token-checked delete).
    expect(await redis.exists(createKeys(prefix).pairLock("s1", "b1"))).toBe(0);
    await expectNoLeakedConnections(url, (n) => n.startsWith("vmk-worker") && n.endsWith(`@${prefix}`));
  });
});
