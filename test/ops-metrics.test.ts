import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { createKeys, createSessionPublisher } from "@vmcp-keepalive/shared";
import { flushPrefix, openBackendSession, startMcpTestBackend, testPrefix, waitFor, type McpTestBackend } from "@vmcp-keepalive/testkit";
import { get, isReady, promtoolProblems, sample } from "./helpers/ops.js";
import { httpUrlOf, startProgram, writeConfig, type RunningProcess } from "./helpers/processes.js";

/**
 * What Prometheus and the kubelet read: /metrics of a real scheduler and a real worker under load passes
 * `promtool check metrics` apart from the suffix lint on the five contract names, and the
 * schedule-lag histogram, the skipped counter and the breaker gauge move as expected.
 */
describe("ops /metrics, /healthz, /readyz (real programs)", () => {
  const redisUrl = inject("redisUrl");
  const prefix = testPrefix("ops-metrics");
  const keys = createKeys(prefix);
  const SESSIONS = 30;
  let backend: McpTestBackend;
  let scheduler: RunningProcess;
  let worker: RunningProcess;
  let schedulerUrl: string;
  let workerUrl: string;
  let redis: Redis;

  beforeAll(async () => {
    redis = new Redis(redisUrl, { connectionName: "harness" });
    backend = await startMcpTestBackend({ idleTtlMs: 60_000 });
    const config = writeConfig({
      redis: { url: redisUrl, prefix },
      keepalive: { interval: "2s", timeout: "1s", concurrency: 50 },
      log: { level: "info" },
      backends: [
        { id: "alpha", url: backend.url },
        { id: "beta", url: backend.url },
        // No sessions use it: its breaker hash is written only by this test (no worker probes it).
        { id: "gamma", url: backend.url },
      ],
    });
    scheduler = startProgram("scheduler", ["--config", config]);
    worker = startProgram("worker", ["--config", config]);
    [schedulerUrl, workerUrl] = await Promise.all([httpUrlOf(scheduler), httpUrlOf(worker)]);
    const publisher = createSessionPublisher({ connection: redis, prefix, replicaId: "ops-test" });
    for (let i = 0; i < SESSIONS; i++) {
      const a = await openBackendSession(backend.url);
      const b = await openBackendSession(backend.url);
      await publisher.register(`s${i}`, {
        sessionTtlMs: 600_000,
        backends: [
          { backendId: "alpha", backendSessionId: a.sessionId, protocolVersion: a.protocolVersion },
          { backendId: "beta", backendSessionId: b.sessionId, protocolVersion: b.protocolVersion },
        ],
      });
    }
    await publisher.close();
  });

  afterAll(async () => {
    await Promise.all([scheduler?.stop(), worker?.stop()]);
    await backend?.stop();
    await flushPrefix(redisUrl, prefix);
    redis?.disconnect();
  });

  it("serves /healthz and /readyz on both programs, 404 elsewhere", async () => {
    for (const base of [schedulerUrl, workerUrl]) {
      expect(await get(`${base}/healthz`)).toEqual({ status: 200, body: "ok\n" });
      await waitFor(`${base} ready`, () => isReady(base), 20_000);
      const r = await get(`${base}/readyz`);
      // The scheduler also checks its ingress-stream consumer.
      expect(JSON.parse(r.body)).toEqual({ ready: true, checks: { redis: true, consumer: true, ...(base === schedulerUrl ? { stream: true } : {}) } });
      expect((await get(`${base}/nope`)).status).toBe(404);
    }
  });

  it("passes promtool under load, apart from the contract names' suffix lint", async () => {
    // Load: 60 pairs every 2 s; wait until every pair has been pinged at least twice.
    await waitFor("every pair pinged twice", () => backend.count("ping") >= SESSIONS * 2 * 2, 40_000, 200);
    const w = (await get(`${workerUrl}/metrics`)).body;
    const s = (await get(`${schedulerUrl}/metrics`)).body;
    for (const [name, text] of [
      ["worker", w],
      ["scheduler", s],
    ] as const) {
      const check = promtoolProblems(text);
      expect(check.problems, `${name}: promtool said:\n${check.raw}`).toEqual([]);
      // Process default metrics are there.
      expect(sample(text, "process_cpu_user_seconds_total"), name).toBeGreaterThan(0);
      expect(sample(text, "nodejs_eventloop_lag_seconds"), name).toBeDefined();
    }
    // The five contract metrics are on the worker.
    // Each backend has SESSIONS pairs, each pinged at least once by now (about twice).
    expect(sample(w, "keepalive_attempt_count", { backend: "alpha", method: "ping" })).toBeGreaterThanOrEqual(SESSIONS);
    expect(sample(w, "keepalive_success_count", { backend: "beta", method: "ping" })).toBeGreaterThanOrEqual(SESSIONS);
    expect(sample(w, "keepalive_latency_ms_count", { backend: "alpha", method: "ping" })).toBeGreaterThanOrEqual(SESSIONS);
    expect(w).toContain("# TYPE keepalive_failure_count counter");
    expect(w).toContain("# TYPE keepalive_auto_disabled_total counter");
    // The scheduler's own: registrations, pairs, sessions, queue depths of the three queues.
    expect(sample(s, "vmk_registration_messages_total", { type: "session.registered", status: "applied" })).toBe(SESSIONS);
    expect(sample(s, "vmk_scheduled_pairs")).toBe(SESSIONS * 2);
    expect(sample(s, "vmk_registered_sessions")).toBe(SESSIONS);
    expect(sample(s, "vmk_redis_up")).toBe(1);
    for (const queue of ["vmcp-sessions", "keepalive", "vmcp-events"]) {
      for (const state of ["waiting", "delayed", "active", "failed"]) expect(sample(s, "vmk_queue_jobs", { queue, state }), `${queue} ${state}`).toBeDefined();
    }
    // Each pair scheduler holds exactly one pending (delayed or waiting) job.
    const pending =
      (sample(s, "vmk_queue_jobs", { queue: "keepalive", state: "delayed" }) ?? 0) +
      (sample(s, "vmk_queue_jobs", { queue: "keepalive", state: "waiting" }) ?? 0) +
      (sample(s, "vmk_queue_jobs", { queue: "keepalive", state: "active" }) ?? 0);
    expect(pending).toBeGreaterThanOrEqual(SESSIONS * 2 - 5);
  });

  it("moves the schedule-lag histogram, the skipped counter and the breaker gauge", async () => {
    const before = (await get(`${workerUrl}/metrics`)).body;
    const lagBefore = sample(before, "keepalive_schedule_lag_seconds_count", { backend: "alpha" }) ?? 0;
    const skippedBefore = sample(before, "keepalive_skipped_total", { backend: "alpha", reason: "locked" }) ?? 0;
    expect(lagBefore).toBeGreaterThan(0);

    // Hold one pair's lock (as a vMCP re-initializing would): its ticks are skipped as `locked`.
    await redis.set(keys.pairLock("s0", "alpha"), "held-by-test", "PX", 8_000);
    const after = await waitFor(
      "a locked tick counted",
      async () => {
        const text = (await get(`${workerUrl}/metrics`)).body;
        return (sample(text, "keepalive_skipped_total", { backend: "alpha", reason: "locked" }) ?? 0) > skippedBefore ? text : undefined;
      },
      20_000,
      250,
    );
    await redis.del(keys.pairLock("s0", "alpha"));
    expect(sample(after, "keepalive_schedule_lag_seconds_count", { backend: "alpha" })).toBeGreaterThan(lagBefore);
    // Lag is small on an idle queue: most ticks start within 2.5 s of their scheduled time (a
    // generous bound for a shared 2-core machine; typically a few ms).
    const early = sample(after, "keepalive_schedule_lag_seconds_bucket", { backend: "alpha", le: "2.5" }) ?? 0;
    const total = sample(after, "keepalive_schedule_lag_seconds_count", { backend: "alpha" }) ?? 1;
    expect(early / total).toBeGreaterThan(0.5);

    // Breaker gauge: a state set per configured backend, read from `<prefix>:backend:<id>` field `state`.
    // A scrape may reuse the previous snapshot for a moment: wait for the gauge to show the state.
    const showing = (state: string) =>
      waitFor(
        `gamma ${state} on the gauge`,
        async () => {
          const text = (await get(`${schedulerUrl}/metrics`)).body;
          return sample(text, "vmk_breaker_state", { backend: "gamma", state }) === 1 ? text : undefined;
        },
        10_000,
        100,
      );
    let s = (await get(`${schedulerUrl}/metrics`)).body;
    expect(sample(s, "vmk_breaker_state", { backend: "gamma", state: "closed" })).toBe(1);
    expect(sample(s, "vmk_breaker_state", { backend: "gamma", state: "open" })).toBe(0);
    await redis.hset(keys.backend("gamma"), "state", "open");
    s = await showing("open");
    expect(sample(s, "vmk_breaker_state", { backend: "gamma", state: "closed" })).toBe(0);
    expect(sample(s, "vmk_breaker_state", { backend: "alpha", state: "closed" })).toBe(1);
    await redis.hset(keys.backend("gamma"), "state", "probing");
    s = await showing("probing");
    expect(sample(s, "vmk_breaker_state", { backend: "gamma", state: "open" })).toBe(0);
    await redis.hdel(keys.backend("gamma"), "state");
  });
});
