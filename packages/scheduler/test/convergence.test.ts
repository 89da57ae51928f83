import { Queue } from "bullmq";
import { Redis } from "ioredis";
import { afterEach, describe, expect, inject, it } from "vitest";
import { createKeys, createSessionPublisher, QUEUE_KEEPALIVE, schedulerId, type SessionRegistered } from "@vmcp-keepalive/shared";
import { createLogger, parseConfig, type Logger } from "@vmcp-keepalive/runtime";
import { captureLines, expectNoLeakedConnections, flushPrefix, testPrefix, waitFor } from "@vmcp-keepalive/testkit";
import { createScheduler, type Scheduler } from "../src/index.js";
import { createSessionStore, decidePair } from "../src/internal.js";

/*
 * Convergence: a redelivered message completes what its first delivery started, and
 * the reconciler repairs pairs and job schedulers that went out of step, both ways, from any
 * number of schedulers at once.
 */
const url = inject("redisUrl");
const cleanups: (() => Promise<unknown>)[] = [];
let prefix = "";
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
  await flushPrefix(url, prefix);
  await expectNoLeakedConnections(url, (n) => n.endsWith(`@${prefix}`));
});

function setup(reconcileInterval = "1h") {
  prefix = testPrefix("conv");
  const config = parseConfig({
    redis: { url, prefix },
    keepalive: { interval: "1h", timeout: "1s" },
    sessions: { reconcile_interval: reconcileInterval },
    backends: [
      { id: "pw", url: "http://127.0.0.1:1/mcp" },
      { id: "db", url: "http://127.0.0.1:1/mcp" },
    ],
  });
  const redis = new Redis(url, { connectionName: `vmk-test@${prefix}` });
  const queue = new Queue(QUEUE_KEEPALIVE, { connection: redis, prefix });
  const publisher = createSessionPublisher({ connection: redis, prefix, replicaId: "r1" });
  cleanups.push(
    async () => redis.quit(),
    () => queue.close(),
    () => publisher.close(),
  );
  const store = createSessionStore(redis, createKeys(prefix));
  const start = async (logger: Logger = createLogger({ name: "test", level: "silent" })): Promise<Scheduler> => {
    const s = createScheduler({ config, logger });
    cleanups.push(() => s.stop());
    await s.start();
    return s;
  };
  return { config, redis, queue, publisher, store, start };
}

const registered = (sessionId: string, sequence: number): SessionRegistered => ({
  type: "session.registered",
  v: 1,
  sessionId,
  occurredAt: new Date().toISOString(),
  sequence,
  replicaId: "r1",
  sessionTtlMs: 600_000,
  backends: [
    { backendId: "pw", backendSessionId: `pw-${sessionId}` },
    { backendId: "db", backendSessionId: `db-${sessionId}` },
  ],
});

describe("redelivery completes the work", () => {
  it("a session.registered whose state write landed but whose upserts did not gets its job schedulers when redelivered", async () => {
    const t = setup();
    const message = registered("s1", 1_000);
    // The first delivery: the state script ran, then the process died before the upserts.
    await t.store.applyRegistered(
      message,
      message.backends.map((b) =>
        decidePair(
          t.config.backends.find((c) => c.id === b.backendId)!,
          b,
          message,
        ),
      ),
      Date.now(),
    );
    expect(await t.queue.getJobSchedulersCount()).toBe(0);
    // BullMQ redelivers the same message to a scheduler.
    const s = await t.start();
    await t.publisher.publish(message);
    await waitFor("job schedulers of the redelivered message", async () => (await t.queue.getJobSchedulersCount()) === 2);
    expect(await s.keepaliveQueues[0]!.getJobScheduler(schedulerId("s1", "pw"))).toBeTruthy();
    // Applying it again changes nothing more: same state, same schedulers.
    const before = await t.store.readPair("s1", "pw");
    await t.publisher.publish(message);
    await t.publisher.publish(registered("s1", 999)); // an older one stays stale
    await waitFor("the queue drained", async () => (await s.registry.getSingleMetricAsString("vmk_registration_messages_total")).includes('status="stale"} 1'));
    expect(await t.store.readPair("s1", "pw")).toEqual(before);
    expect(await t.queue.getJobSchedulersCount()).toBe(2);
  });

  it("a session.ended whose state write landed but whose removals did not removes the job schedulers when redelivered", async () => {
    const t = setup();
    const s = await t.start();
    await t.publisher.register("s2", { sessionTtlMs: 600_000, backends: registered("s2", 1).backends });
    await waitFor("registered", async () => (await t.queue.getJobSchedulersCount()) === 2);
    const end = { type: "session.ended" as const, v: 1 as const, sessionId: "s2", occurredAt: new Date().toISOString(), sequence: t.publisher.nextSequence("s2") };
    await t.store.applyEnded(end, Date.now()); // the first delivery, cut short after its state write
    expect(await t.queue.getJobSchedulersCount()).toBe(2);
    await t.publisher.publish(end);
    await waitFor("job schedulers removed by the redelivery", async () => (await t.queue.getJobSchedulersCount()) === 0);
    expect(await s.store.readSession("s2")).toMatchObject({ state: "ended" });
  });
});

describe("reconciler", () => {
  it("puts back a job scheduler deleted by hand within one interval, and removes one whose pair is gone", async () => {
    const t = setup("1s");
    const { destination, lines } = captureLines();
    const s = await t.start(createLogger({ name: "test", level: "info", destination }));
    await t.publisher.register("s3", { sessionTtlMs: 600_000, backends: registered("s3", 1).backends });
    await waitFor("registered", async () => (await t.queue.getJobSchedulersCount()) === 2);
    await t.queue.removeJobScheduler(schedulerId("s3", "pw"));
    await t.redis.del(`${prefix}:pair:s3:db`);
    const deletedAt = Date.now();
    await waitFor("repaired", async () => Boolean(await t.queue.getJobScheduler(schedulerId("s3", "pw"))) && !(await t.queue.getJobScheduler(schedulerId("s3", "db"))), 20_000);
    // One pass repaired both, within one reconcile interval (1 s ± 10 % jitter) and a second
    // of slack: timed by the pass's own log line, not by how soon this test looked. The line
    // comes when the pass has looked at every job scheduler, a moment after the repairs.
    await waitFor("the pass's log line", async () => lines.some((l) => l["msg"] === "reconcile pass repaired job schedulers"), 5_000);
    const pass = lines.find((l) => l["msg"] === "reconcile pass repaired job schedulers");
    expect(pass).toMatchObject({ scheduler_added: 1, scheduler_removed: 1, next_job_restored: 0 });
    expect(Date.parse(String(pass!["time"])) - deletedAt).toBeLessThanOrEqual(1_100 + 1_000);
    expect(lines.filter((l) => String(l["msg"]).startsWith("reconcile:")).map((l) => [l["msg"], l["backendId"]])).toEqual([
      ["reconcile: active pair had no job scheduler; added", "pw"],
      ["reconcile: job scheduler without an active pair; removed", "db"],
    ]);
    const metrics = await s.registry.getSingleMetricAsString("vmk_reconciled_total");
    expect(metrics).toContain('vmk_reconciled_total{kind="scheduler_added"} 1');
    expect(metrics).toContain('vmk_reconciled_total{kind="scheduler_removed"} 1');
  });

  it("restores the next job of a job scheduler that lost it or is stuck long past it (a failover lost the writes), and leaves intact ones alone", async () => {
    const t = setup();
    const s = await t.start();
    await t.publisher.register("s4", { sessionTtlMs: 600_000, backends: registered("s4", 1).backends });
    await waitFor("registered", async () => (await t.queue.getJobSchedulersCount()) === 2);
    expect(await s.reconciler.reconcileOnce()).toEqual({ scheduler_added: 0, scheduler_removed: 0, next_job_restored: 0 });
    // What a lost write leaves: the scheduler still names its next run, but that run's job is gone.
    const next = await t.redis.zscore(`${prefix}:${QUEUE_KEEPALIVE}:repeat`, schedulerId("s4", "pw"));
    const jobId = `repeat:${schedulerId("s4", "pw")}:${next}`;
    expect(await t.queue.getJob(jobId)).toBeDefined();
    await t.redis.zrem(`${prefix}:${QUEUE_KEEPALIVE}:delayed`, jobId);
    await t.redis.del(`${prefix}:${QUEUE_KEEPALIVE}:${jobId}`);
    expect(await s.reconciler.reconcileOnce()).toEqual({ scheduler_added: 0, scheduler_removed: 0, next_job_restored: 1 });
    const restored = await t.redis.zscore(`${prefix}:${QUEUE_KEEPALIVE}:repeat`, schedulerId("s4", "pw"));
    expect(await t.queue.getJob(`repeat:${schedulerId("s4", "pw")}:${restored}`)).toBeDefined();
    expect(await t.queue.getJobCounts("delayed")).toEqual({ delayed: 2 });
    expect(await s.reconciler.reconcileOnce()).toEqual({ scheduler_added: 0, scheduler_removed: 0, next_job_restored: 0 });

    // A scheduler stuck on an iteration long past (its job there, but the writes that moved it on lost).
    const old = Date.now() - 3 * 3_600_000;
    const stuckId = `repeat:${schedulerId("s4", "db")}:${old}`;
    await t.redis.zadd(`${prefix}:${QUEUE_KEEPALIVE}:repeat`, old, schedulerId("s4", "db"));
    await t.redis.hset(`${prefix}:${QUEUE_KEEPALIVE}:${stuckId}`, "name", "keepalive", "timestamp", old);
    expect(await s.reconciler.reconcileOnce()).toEqual({ scheduler_added: 0, scheduler_removed: 0, next_job_restored: 1 });
    expect(Number(await t.redis.zscore(`${prefix}:${QUEUE_KEEPALIVE}:repeat`, schedulerId("s4", "db")))).toBeGreaterThan(Date.now());
    expect(await s.reconciler.reconcileOnce()).toEqual({ scheduler_added: 0, scheduler_removed: 0, next_job_restored: 0 });
  });

  it("two schedulers reconciling 200 broken pairs at once: each repaired exactly once, no duplicates, no errors", async () => {
    const t = setup();
    const a = await t.start();
    const b = await t.start();
    for (let i = 0; i < 100; i++) await t.publisher.register(`r${i}`, { sessionTtlMs: 600_000, backends: registered(`r${i}`, 1).backends });
    await waitFor("registered", async () => (await t.queue.getJobSchedulersCount()) === 200, 20_000);
    // 100 job schedulers lost (their pairs stay active); 100 pairs lost (their job schedulers stay).
    for (let i = 0; i < 100; i++) {
      await t.queue.removeJobScheduler(schedulerId(`r${i}`, "pw"));
      await t.redis.del(`${prefix}:pair:r${i}:db`);
    }
    const [ra, rb] = await Promise.all([a.reconciler.reconcileOnce(), b.reconciler.reconcileOnce()]);
    expect(ra.scheduler_added + rb.scheduler_added).toBe(100);
    expect(ra.scheduler_removed + rb.scheduler_removed).toBe(100);
    const ids = (await t.queue.getJobSchedulers(0, -1)).map((j) => j.key).sort();
    expect(ids).toEqual(Array.from({ length: 100 }, (_, i) => schedulerId(`r${i}`, "pw")).sort());
    // A second pass finds nothing left to do.
    expect(await a.reconciler.reconcileOnce()).toEqual({ scheduler_added: 0, scheduler_removed: 0, next_job_restored: 0 });
  });
});
