import { Queue } from "bullmq";
import { Redis } from "ioredis";
import { afterEach, describe, expect, inject, it } from "vitest";
import { createKeys, createSessionPublisher, QUEUE_KEEPALIVE, schedulerId } from "@vmcp-keepalive/shared";
import { callToolOnSession, flushPrefix, openBackendSession, sleep, startMcpTestBackend, testPrefix, waitFor, type McpTestBackend } from "@vmcp-keepalive/testkit";
import { startProgram, waitForLog, writeConfig, type RunningProcess } from "./helpers/processes.js";

/**
 * Issue 2, acceptance 2 and 3: the whole path with the real programs as child processes, a real
 * redis-server and a real SDK backend that drops sessions idle for 3 s.
 */
const url = inject("redisUrl");
const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

async function system(opts: { schedulers: number; workers: number; backendDelayMs?: number }) {
  const prefix = testPrefix("e2e");
  const backend: McpTestBackend = await startMcpTestBackend({ idleTtlMs: 3_000, delayMs: opts.backendDelayMs ?? 0 });
  const config = writeConfig({
    redis: { url, prefix },
    keepalive: { interval: "1s", timeout: "800ms", concurrency: 20 },
    log: { level: "info" },
    backends: [{ id: "pw", url: backend.url, stateful: true, session_ttl: "3s" }],
  });
  const procs: RunningProcess[] = [];
  for (let i = 0; i < opts.schedulers; i++) procs.push(startProgram("scheduler", ["--config", config]));
  for (let i = 0; i < opts.workers; i++) procs.push(startProgram("worker", ["--config", config]));
  const redis = new Redis(url, { connectionName: `vmk-e2e@${prefix}` });
  const publisher = createSessionPublisher({ connection: redis, prefix, replicaId: "vmcp-e2e" });
  const queue = new Queue(QUEUE_KEEPALIVE, { connection: redis, prefix });
  cleanups.push(
    () => flushPrefix(url, prefix),
    () => backend.stop(),
    async () => redis.quit(),
    () => queue.close(),
    () => publisher.close(),
    async () => {
      const codes = await Promise.all(procs.map((p) => p.stop()));
      expect(codes, procs.map((p) => p.output().slice(-500)).join("\n")).toEqual(procs.map(() => 0));
    },
  );
  for (const p of procs) await waitForLog(p, /^(scheduler|worker) started$/);
  return { prefix, backend, publisher, queue, redis, procs, keys: createKeys(prefix) };
}

describe("keepalive end to end", () => {
  it("keeps a registered backend session alive past its idle TTL; an unregistered one expires; session.ended stops it", async () => {
    const s = await system({ schedulers: 1, workers: 1 });
    const kept = await openBackendSession(s.backend.url);
    const control = await openBackendSession(s.backend.url);
    await s.publisher.register("vmcp-1", {
      sessionTtlMs: 600_000,
      backends: [{ backendId: "pw", backendSessionId: kept.sessionId, protocolVersion: kept.protocolVersion }],
    });
    await sleep(10_000);
    // The original backend session id still works; the control session is gone (404).
    expect((await callToolOnSession(s.backend.url, kept, "echo", { text: "still here" })).text).toBe("still here");
    await expect(callToolOnSession(s.backend.url, control, "echo", { text: "x" })).rejects.toThrow(/404|Session not found/);
    expect(s.backend.count("ping", kept.sessionId)).toBeGreaterThanOrEqual(7);
    expect(s.backend.count("ping", control.sessionId)).toBe(0);

    // Acceptance 3: session.ended stops keepalive within one interval; scheduler and state gone.
    await s.publisher.end("vmcp-1", "closed by user");
    await waitFor("scheduler removed", async () => (await s.queue.getJobScheduler(schedulerId("vmcp-1", "pw"))) === undefined);
    await sleep(1_200); // one interval for a tick that was already due
    const pingsAfterEnd = s.backend.count("ping", kept.sessionId);
    await sleep(2_500);
    expect(s.backend.count("ping", kept.sessionId)).toBe(pingsAfterEnd);
    expect(await s.redis.exists(s.keys.pair("vmcp-1", "pw"))).toBe(0);
    expect(await s.redis.zscore(s.keys.sessionsByExpiry(0), "vmcp-1")).toBeNull();
    expect(await s.redis.hget(s.keys.session("vmcp-1"), "state")).toBe("ended");
    expect((await s.redis.hkeys(s.keys.session("vmcp-1"))).filter((f) => f.startsWith("b:"))).toEqual([]);
    // The job scheduler's own hash is gone and no future tick of the pair is queued (finished
    // jobs stay as bounded history, removeOnComplete.count).
    expect(await s.redis.exists(`${s.prefix}:${QUEUE_KEEPALIVE}:repeat:ka:vmcp-1:pw`)).toBe(0);
    const pending = await s.queue.getJobs(["delayed", "wait", "prioritized", "active"]);
    expect(pending.filter((j) => j.id?.startsWith("repeat:ka:vmcp-1:"))).toEqual([]);
  });

  it("with 2 schedulers and 2 workers each pair gets about one ping per interval, never two at once", async () => {
    const s = await system({ schedulers: 2, workers: 2, backendDelayMs: 100 });
    const sessions = [];
    for (let i = 0; i < 12; i++) {
      const opened = await openBackendSession(s.backend.url);
      sessions.push(opened);
      await s.publisher.register(`multi-${i}`, {
        sessionTtlMs: 600_000,
        backends: [{ backendId: "pw", backendSessionId: opened.sessionId, protocolVersion: opened.protocolVersion }],
      });
    }
    await waitFor("12 schedulers", async () => (await s.queue.getJobSchedulersCount()) === 12, 15_000);
    await sleep(2_000);
    const start = sessions.map((o) => s.backend.count("ping", o.sessionId));
    await sleep(8_000);
    for (let i = 0; i < sessions.length; i++) {
      const pings = s.backend.count("ping", sessions[i]!.sessionId) - start[i]!;
      // ~8 ticks in 8 s at a 1 s interval; a loaded 2-core machine may delay one or two.
      expect(pings, `pair multi-${i}`).toBeGreaterThanOrEqual(6);
      expect(pings, `pair multi-${i}`).toBeLessThanOrEqual(10);
      expect(s.backend.peakInFlight(sessions[i]!.sessionId), `pair multi-${i} overlapped`).toBe(1);
    }
    // Both workers did work (the queue is shared, not partitioned by process).
    const workers = s.procs.filter((p) => p.name === "worker");
    expect(workers).toHaveLength(2);
    for (const sess of sessions) expect((await callToolOnSession(s.backend.url, sess, "echo", { text: "ok" })).text).toBe("ok");
  });
});
