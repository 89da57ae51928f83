import { Queue } from "bullmq";
import { Redis } from "ioredis";
import { afterAll, describe, expect, inject, it } from "vitest";
import { createKeys, createSessionPublisher, QUEUE_KEEPALIVE } from "@vmcp-keepalive/shared";
import { createSessionStore } from "@vmcp-keepalive/scheduler/internal";
import { flushPrefix, openBackendSession, sleep, startMcpTestBackend, testPrefix, waitFor, type McpTestBackend } from "@vmcp-keepalive/testkit";
import { startProgram, waitForLog, writeConfig, type RunningProcess } from "./helpers/processes.js";

/**
 * SIGTERM during 200 in-flight keepalives against a slow backend (a rolling deploy) — the
 * worker exits 0 within the call timeout plus a margin, every in-flight call completes and is
 * recorded, no pair lock is left held, and the next worker picks up every pair on its next tick.
 */
describe("worker shutdown on SIGTERM with 200 keepalives in flight", () => {
  const redisUrl = inject("redisUrl");
  const prefix = testPrefix("ops-shutdown");
  const PAIRS = 200;
  const TIMEOUT_MS = 5_000;
  const INTERVAL_MS = 8_000;
  const BACKEND_DELAY_MS = 2_000;
  const procs: RunningProcess[] = [];
  let backend: McpTestBackend | undefined;
  const redis = new Redis(redisUrl, { connectionName: "harness" });
  const queue = new Queue(QUEUE_KEEPALIVE, { connection: redis, prefix });

  afterAll(async () => {
    await Promise.all(procs.map((p) => p.stop()));
    await backend?.stop();
    await queue.close();
    await flushPrefix(redisUrl, prefix);
    redis.disconnect();
  });

  it("drains in-flight calls, releases every lock, exits 0, and the next worker resumes every pair", async () => {
    backend = await startMcpTestBackend();
    const config = writeConfig({
      redis: { url: redisUrl, prefix },
      // The overdue first ticks all at once (not spread over the next interval): 200 calls in flight.
      keepalive: { interval: INTERVAL_MS, timeout: TIMEOUT_MS, concurrency: 300, catch_up: "at_once" },
      // Independent of the circuit breaker: timeouts on a starved machine must not open it here.
      breaker: { failure_threshold: 1000 },
      backends: [{ id: "slow", url: backend.url }],
    });
    const scheduler = startProgram("scheduler", ["--config", config]);
    procs.push(scheduler);
    await waitForLog(scheduler, "scheduler started");

    const publisher = createSessionPublisher({ connection: redis, prefix, replicaId: "shutdown-test" });
    for (let i = 0; i < PAIRS; i++) {
      const s = await openBackendSession(backend.url);
      await publisher.register(`s${i}`, {
        sessionTtlMs: 600_000,
        backends: [{ backendId: "slow", backendSessionId: s.sessionId, protocolVersion: s.protocolVersion }],
      });
    }
    await publisher.close();
    await waitFor("200 job schedulers", async () => (await queue.getJobSchedulersCount()) === PAIRS, 30_000, 200);
    // No worker yet: once every pair's first tick is due (the next run its job scheduler names),
    // the worker that starts takes all 200 at once and each call hangs on the slow backend for 2 s.
    const lastDue = Math.max(...(await queue.getJobSchedulers(0, -1)).map((j) => j.next ?? Infinity));
    expect(lastDue).toBeLessThan(Infinity);
    await sleep(Math.max(0, lastDue + 500 - Date.now()));
    backend.delayMs = BACKEND_DELAY_MS;
    const first = startProgram("worker", ["--config", config]);
    procs.push(first);
    await waitFor(`${PAIRS} keepalive jobs active`, async () => (await queue.getActiveCount()) >= PAIRS, 20_000, 50);
    const pingsBefore = backend.count("ping");

    const signalledAt = Date.now();
    const code = await first.stop(30_000);
    const exitMs = Date.now() - signalledAt;
    const exitedAt = Date.now();
    expect(code).toBe(0);
    // In-flight calls end within the call timeout; the margin covers closing connections on a busy machine.
    expect(exitMs).toBeLessThan(TIMEOUT_MS + 5_000);
    expect(first.logs().some((l) => l["msg"] === "worker stopped")).toBe(true);
    // Every in-flight call was answered, not cut off.
    expect(backend.count("ping") - pingsBefore).toBeGreaterThanOrEqual(PAIRS);

    // No pair lock left held.
    const locks = await redis.keys(`${prefix}:lock:*`);
    expect(locks).toEqual([]);
    // No job left active (none was abandoned to the stall checker).
    expect(await queue.getActiveCount()).toBe(0);

    const store = createSessionStore(redis, createKeys(prefix));
    const pairs = await store.listPairs();
    expect(pairs).toHaveLength(PAIRS);
    const outcomes: Record<string, number> = {};
    for (const p of pairs) outcomes[p.lastOutcome ?? "none"] = (outcomes[p.lastOutcome ?? "none"] ?? 0) + 1;
    process.stdout.write(`[shutdown] outcomes after drain: ${JSON.stringify(outcomes)}\n`);
    // Every drained call ended and its outcome was recorded: a success (2 s, under the 5 s
    // timeout), or — on a starved machine — a timeout, which still ends within the call timeout.
    expect(pairs.filter((p) => p.lastOutcome === "success" || p.lastOutcome === "failure:timeout")).toHaveLength(PAIRS);
    expect(outcomes["success"] ?? 0).toBeGreaterThan(PAIRS / 2);

    backend.delayMs = 0;
    const next = startProgram("worker", ["--config", config]);
    procs.push(next);
    await waitFor(
      "every pair pinged by the next worker",
      async () => (await store.listPairs()).filter((p) => (p.lastAttemptAt ?? 0) > exitedAt && p.lastOutcome === "success").length === PAIRS,
      INTERVAL_MS * 2 + 10_000,
      250,
    );
    process.stdout.write(`[shutdown] ${PAIRS} in flight; SIGTERM → exit 0 in ${exitMs} ms; next worker resumed all pairs within ${Date.now() - exitedAt} ms\n`);
  });
});
