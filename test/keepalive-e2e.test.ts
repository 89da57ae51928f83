import { Queue, type Job } from "bullmq";
import { Redis } from "ioredis";
import { afterEach, describe, expect, inject, it } from "vitest";
import { createKeys, createSessionPublisher, QUEUE_KEEPALIVE, schedulerId } from "@vmcp-keepalive/shared";
import { callToolOnSession, flushPrefix, openBackendSession, sleep, startMcpTestBackend, testPrefix, waitFor, type McpTestBackend, type OpenedSession } from "@vmcp-keepalive/testkit";
import { get, sample } from "./helpers/ops.js";
import { httpUrlOf, startProgram, waitForLog, writeConfig, type RunningProcess } from "./helpers/processes.js";

/**
 * The whole keepalive path with the real programs as child processes, a real redis-server and a
 * real SDK backend that drops sessions idle for 3 s: a registered backend session outlives that
 * idle TTL, session.ended stops its keepalives, and several schedulers and workers share the work
 * without ever calling one pair twice at once.
 */
const INTERVAL_MS = 1_000;
const IDLE_TTL_MS = 3_000;
const url = inject("redisUrl");
const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

async function system(opts: { schedulers: number; workers: number; backendDelayMs?: number }) {
  const prefix = testPrefix("e2e");
  const backend: McpTestBackend = await startMcpTestBackend({ idleTtlMs: IDLE_TTL_MS, delayMs: opts.backendDelayMs ?? 0 });
  const config = writeConfig({
    redis: { url, prefix },
    keepalive: { interval: `${INTERVAL_MS}ms`, timeout: "800ms", concurrency: 20 },
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
  const workerUrls = await Promise.all(procs.filter((p) => p.name === "worker").map((p) => httpUrlOf(p)));
  return { prefix, backend, publisher, queue, redis, procs, workerUrls, keys: createKeys(prefix) };
}

/** A finished keepalive tick of one pair, as the queue keeps it (bounded history of completed jobs). */
interface Tick {
  /** The tick's slot on the pair's schedule: the job id of a job scheduler's iteration ends with it. */
  readonly scheduledAt: number;
  readonly outcome: string;
  readonly finishedOn: number;
}

/** The completed ticks of the pair `sessionId`×`backendId`, in schedule order. */
async function ticksOf(queue: Queue, sessionId: string, backendId: string): Promise<Tick[]> {
  const prefix = `repeat:${schedulerId(sessionId, backendId)}:`;
  const jobs: Job[] = await queue.getJobs(["completed"], 0, -1);
  return jobs
    .filter((j) => j.id?.startsWith(prefix))
    .map((j) => ({ scheduledAt: Number(j.id!.slice(prefix.length)), outcome: String((j.returnvalue as { outcome?: string } | null)?.outcome), finishedOn: j.finishedOn ?? 0 }))
    .sort((a, b) => a.scheduledAt - b.scheduledAt);
}

describe("keepalive end to end", () => {
  it("keeps a registered backend session alive past its idle TTL; an unregistered one expires; session.ended stops it", async () => {
    const s = await system({ schedulers: 1, workers: 1 });
    const kept = await openBackendSession(s.backend.url);
    const control = await openBackendSession(s.backend.url);
    const openedAt = Date.now();
    await s.publisher.register("vmcp-1", {
      sessionTtlMs: 600_000,
      backends: [{ backendId: "pw", backendSessionId: kept.sessionId, protocolVersion: kept.protocolVersion }],
    });
    // Seven keepalives, and both sessions opened more than two idle TTLs ago: the control session
    // has been idle past its TTL, the kept one has not (a loaded machine only makes this later).
    await waitFor("seven keepalives on the registered session", () => s.backend.count("ping", kept.sessionId) >= 7, 60_000, 100);
    await sleep(Math.max(0, openedAt + 2 * IDLE_TTL_MS - Date.now()));
    // The original backend session id still works; the control session is gone (404).
    expect((await callToolOnSession(s.backend.url, kept, "echo", { text: "still here" })).text).toBe("still here");
    await expect(callToolOnSession(s.backend.url, control, "echo", { text: "x" })).rejects.toThrow(/404|Session not found/);
    expect(s.backend.count("ping", kept.sessionId)).toBeGreaterThanOrEqual(7);
    expect(s.backend.count("ping", control.sessionId)).toBe(0);
    expect(await s.redis.hmget(s.keys.pair("vmcp-1", "pw"), "status", "last", "fails")).toEqual([null, "success", null]);

    // session.ended stops keepalive: once the pair has no job scheduler and no job left in the
    // queue (none delayed, waiting or running), nothing can call the backend for it.
    await s.publisher.end("vmcp-1", "closed by user");
    const pendingOfPair = async () => (await s.queue.getJobs(["delayed", "wait", "prioritized", "active"])).filter((j) => j.id?.startsWith("repeat:ka:vmcp-1:"));
    await waitFor(
      "no job scheduler and no job of the pair left",
      async () => (await s.queue.getJobScheduler(schedulerId("vmcp-1", "pw"))) === undefined && (await pendingOfPair()).length === 0,
      20_000,
    );
    const pingsAfterEnd = s.backend.count("ping", kept.sessionId);
    // Two and a half intervals in which a job scheduler that survived would have fired.
    await sleep(2.5 * INTERVAL_MS);
    expect(s.backend.count("ping", kept.sessionId)).toBe(pingsAfterEnd);
    expect(await pendingOfPair()).toEqual([]);
    expect(await s.redis.exists(s.keys.pair("vmcp-1", "pw"))).toBe(0);
    expect(await s.redis.get(s.keys.sessionCount(0))).toBe("0");
    expect(await s.redis.hget(s.keys.session("vmcp-1"), "state")).toBe("ended");
    expect((await s.redis.hkeys(s.keys.session("vmcp-1"))).filter((f) => f.startsWith("b:"))).toEqual([]);
    // The job scheduler's own hash is gone (finished jobs stay as bounded history, removeOnComplete.count).
    expect(await s.redis.exists(`${s.prefix}:${QUEUE_KEEPALIVE}:repeat:ka:vmcp-1:pw`)).toBe(0);
  });

  it("with 2 schedulers and 2 workers: one tick per interval, one ping per tick, never two at once, and both workers ping", async () => {
    const s = await system({ schedulers: 2, workers: 2, backendDelayMs: 100 });
    const sessions: OpenedSession[] = [];
    for (let i = 0; i < 12; i++) {
      const opened = await openBackendSession(s.backend.url);
      sessions.push(opened);
      await s.publisher.register(`multi-${i}`, {
        sessionTtlMs: 600_000,
        backends: [{ backendId: "pw", backendSessionId: opened.sessionId, protocolVersion: opened.protocolVersion }],
      });
    }
    await waitFor("12 schedulers", async () => (await s.queue.getJobSchedulersCount()) === 12, 15_000);
    // The rate is read from the ticks the queue finished, not counted over a fixed sleep: a loaded
    // machine makes ticks late, never more frequent, so wait (generously) for 8 ticks of every pair.
    const ticks = await waitFor(
      "8 finished ticks of every pair",
      async () => {
        const all = await Promise.all(sessions.map((_, i) => ticksOf(s.queue, `multi-${i}`, "pw")));
        return all.every((t) => t.length >= 8) ? all : undefined;
      },
      90_000,
      250,
    );
    let successfulTicks = 0;
    for (let i = 0; i < sessions.length; i++) {
      const pair = `pair multi-${i}`;
      const list = ticks[i]!;
      // One tick per interval: every tick sits on its own slot of the pair's schedule, one or
      // more whole intervals after the previous one (BullMQ skips a slot only when a tick started
      // more than an interval late).
      const gaps = list.slice(1).map((t, k) => t.scheduledAt - list[k]!.scheduledAt);
      for (const gap of gaps) {
        expect(gap, `${pair} slots`).toBeGreaterThan(0);
        expect(gap % INTERVAL_MS, `${pair} slots`).toBe(0);
      }
      // About one per interval: at least 3 of every 4 slots between the first and the last tick
      // brought a successful keepalive.
      const slots = (list.at(-1)!.scheduledAt - list[0]!.scheduledAt) / INTERVAL_MS + 1;
      const ok = list.filter((t) => t.outcome === "success");
      expect(ok.length, `${pair}: ${ok.length} successful ticks over ${slots} slots`).toBeGreaterThanOrEqual(0.75 * slots);
      successfulTicks += ok.length;
      // One ping per successful tick and none besides: the backend saw exactly as many pings on the
      // session as ticks succeeded, up to the end of the last finished one.
      const lastFinished = Math.max(...list.map((t) => t.finishedOn));
      expect(
        s.backend.calls.filter((c) => c.method === "ping" && c.sessionId === sessions[i]!.sessionId && c.at <= lastFinished),
        pair,
      ).toHaveLength(ok.length);
      expect(s.backend.peakInFlight(sessions[i]!.sessionId), `${pair} overlapped`).toBe(1);
    }
    // Each worker ran keepalives (the queue is shared, not partitioned by process), and together
    // they account for every successful tick.
    const attempts = await Promise.all(s.workerUrls.map(async (u) => sample((await get(`${u}/metrics`)).body, "keepalive_attempt_count", { backend: "pw", method: "ping" }) ?? 0));
    console.log(`2 schedulers, 2 workers: ${successfulTicks} successful ticks over 12 pairs; keepalive_attempt_count per worker ${attempts.join(" / ")}`);
    expect(attempts).toHaveLength(2);
    for (const [w, n] of attempts.entries()) expect(n, `worker ${w} keepalive_attempt_count`).toBeGreaterThan(0);
    expect(attempts[0]! + attempts[1]!).toBeGreaterThanOrEqual(successfulTicks);
    for (const sess of sessions) expect((await callToolOnSession(s.backend.url, sess, "echo", { text: "ok" })).text).toBe("ok");
  });
});
