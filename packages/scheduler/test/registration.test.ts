import { Queue } from "bullmq";
import { Redis } from "ioredis";
import { afterEach, describe, expect, inject, it } from "vitest";
import { createKeys, createSessionPublisher, QUEUE_SESSIONS, schedulerId } from "@vmcp-keepalive/shared";
import { createSessionStore } from "../src/internal.js";
import { createLogger, parseConfig } from "@vmcp-keepalive/runtime";
import { captureLines, expectNoLeakedConnections, flushPrefix, testPrefix, waitFor } from "@vmcp-keepalive/testkit";
import { createScheduler, type Scheduler } from "../src/create-scheduler.js";
import { phaseOffset } from "../src/scheduling/phase-offset.js";

const url = inject("redisUrl");
const cleanups: (() => Promise<unknown>)[] = [];
const prefixes = new Set<string>();
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
  // Every connection the test opened under its prefix must be closed by now.
  for (const prefix of prefixes) {
    await expectNoLeakedConnections(url, (n) => n.endsWith(`@${prefix}`));
    await flushPrefix(url, prefix);
  }
  prefixes.clear();
});

async function setup(prefix = testPrefix()) {
  const config = parseConfig({
    redis: { url, prefix },
    keepalive: { interval: "10s", timeout: "1s" },
    registration: { max_message_bytes: 2_048 },
    backends: [
      { id: "pw", url: "http://127.0.0.1:1/mcp", session_ttl: "1m" },
      { id: "search", url: "http://127.0.0.1:1/mcp", stateful: false },
    ],
  });
  const { destination, lines } = captureLines();
  const logger = createLogger({ name: "test", level: "info", destination });
  const scheduler: Scheduler = createScheduler({ config, logger });
  await scheduler.start();
  const redis = new Redis(url, { connectionName: `vmk-test@${prefix}` });
  const publisher = createSessionPublisher({ connection: redis, prefix, replicaId: "r1" });
  const raw = new Queue(QUEUE_SESSIONS, { connection: redis, prefix });
  prefixes.add(prefix);
  cleanups.push(
    async () => redis.quit(),
    () => raw.close(),
    () => publisher.close(),
    () => scheduler.stop(),
  );
  return { config, scheduler, publisher, raw, lines, store: createSessionStore(redis, createKeys(prefix)) };
}

const now = () => new Date().toISOString();

describe("registration consumer", () => {
  it("upserts one jittered job scheduler per stateful pair, and none for a stateless one", async () => {
    const { scheduler, publisher, store } = await setup();
    await publisher.register("s1", {
      sessionTtlMs: 600_000,
      backends: [{ backendId: "pw", backendSessionId: "abc", protocolVersion: "2025-06-18" }, { backendId: "search" }],
    });
    const sched = await waitFor("job scheduler", () => scheduler.keepaliveQueues[0]!.getJobScheduler(schedulerId("s1", "pw")));
    expect(sched).toMatchObject({ key: "ka:s1:pw", every: 10_000, offset: phaseOffset("s1", "pw", 10_000) });
    // Tiny jobs: the template carries neither data nor per-job options (the worker reads the pair
    // from the scheduler id and trims finished jobs by count); the events stream is capped.
    expect(sched?.template?.data ?? {}).toEqual({});
    expect(sched?.template?.opts ?? {}).toEqual({});
    const meta = new Redis(url, { connectionName: "test-meta" });
    expect(await meta.hget(`${scheduler.keepaliveQueues[0]!.opts.prefix}:keepalive:meta`, "opts.maxLenEvents")).toBe("1000");
    meta.disconnect();
    expect(await scheduler.keepaliveQueues[0]!.getJobScheduler(schedulerId("s1", "search"))).toBeUndefined();
    expect(await store.readPair("s1", "pw")).toMatchObject({ backendSessionId: "abc", protocolVersion: "2025-06-18", epoch: 1, status: "active" });
    expect(await store.readPair("s1", "search")).toMatchObject({ status: "off", offReason: "no_backend_session" });
    await publisher.end("s1");
    await waitFor("scheduler removed", async () => (await scheduler.keepaliveQueues[0]!.getJobScheduler(schedulerId("s1", "pw"))) === undefined);
    await waitFor("state removed", async () => (await store.readPair("s1", "pw")) === undefined);
    expect(await scheduler.keepaliveQueues[0]!.getJobSchedulersCount()).toBe(0);
  });

  it("rejects bad messages with a reason naming the problem, and processes every valid message around them", async () => {
    const { scheduler, publisher, raw, lines } = await setup();
    const base = { type: "session.registered", replicaId: "r1", occurredAt: now(), sequence: 1, sessionTtlMs: 60_000 };
    const bad: [string, unknown, RegExp][] = [
      ["missing", { ...base, sessionId: "m1" }, /^invalid_message: backends: expected array, received undefined \(missing\)|backends: expected array/],
      ["mistyped", { ...base, sessionId: "m2", sequence: "one", backends: [{ backendId: "pw", backendSessionId: "x" }] }, /^invalid_message: sequence: expected number, received string$/],
      ["unknown-backend", { ...base, sessionId: "m3", backends: [{ backendId: "nope", backendSessionId: "x" }] }, /^unknown_backend: backend "nope" not in the config \(known: pw, search\)$/],
      ["illegal-id", { ...base, sessionId: "a:b{c}", backends: [{ backendId: "pw", backendSessionId: "x" }] }, /^invalid_message: sessionId: must be 1-128 characters/],
      [
        "too-large",
        { ...base, sessionId: "m5", backends: Array.from({ length: 10 }, (_, i) => ({ backendId: `b${i}`, backendSessionId: "x".repeat(300) })) },
        /^too_large: payload is \d+ bytes, over the 2048-byte limit$/,
      ],
      ["not-json", "{this is not json", /^invalid_json: payload is not valid JSON/],
    ];
    const valid = Array.from({ length: 6 }, (_, i) => `ok${i}`);
    const badJobs: { id?: string | undefined }[] = [];
    for (let i = 0; i < bad.length; i++) {
      await publisher.register(valid[i]!, { sessionTtlMs: 60_000, backends: [{ backendId: "pw", backendSessionId: `bs${i}` }] });
      badJobs.push(await raw.add(bad[i]![0], bad[i]![1]));
    }
    await waitFor("valid schedulers", async () => (await scheduler.keepaliveQueues[0]!.getJobSchedulersCount()) === valid.length, 15_000);
    for (const id of valid) expect(await scheduler.keepaliveQueues[0]!.getJobScheduler(schedulerId(id, "pw"))).toBeDefined();
    for (let i = 0; i < bad.length; i++) {
      const job = await waitFor(`failed ${bad[i]![0]}`, async () => {
        const j = await raw.getJob(badJobs[i]!.id!);
        return (await j?.isFailed()) ? j : undefined;
      });
      expect(job.failedReason).toMatch(bad[i]![2]);
      expect(job.attemptsMade).toBe(1);
    }
    const rejected = lines.filter((l) => l["msg"] === "registration message rejected");
    expect(rejected.map((l) => l["reason"]).sort()).toEqual(["invalid_json", "invalid_message", "invalid_message", "invalid_message", "too_large", "unknown_backend"]);
    const metrics = await scheduler.registry.getSingleMetricAsString("vmk_registration_rejected_total");
    expect(metrics).toContain('vmk_registration_rejected_total{reason="invalid_message"} 3');
    expect(metrics).toContain('vmk_registration_rejected_total{reason="unknown_backend"} 1');
  });

  it("a job written by another producer — data that is not JSON, or nested 10,000 deep — fails once with a named reason; others go on", async () => {
    const { scheduler, publisher, raw, lines } = await setup();
    const redis = new Redis(url, { connectionName: `vmk-test-raw@${raw.opts.prefix}` });
    cleanups.push(async () => redis.quit());
    // What a producer without BullMQ's JS client may store as a job's data, with 5 attempts allowed.
    await raw.pause();
    const notJson = await raw.add("foreign", {}, { attempts: 5 });
    const deep = await raw.add("foreign", {}, { attempts: 5 });
    await redis.hset(`${raw.opts.prefix}:${QUEUE_SESSIONS}:${notJson.id}`, "data", "{this is: not json");
    await redis.hset(`${raw.opts.prefix}:${QUEUE_SESSIONS}:${deep.id}`, "data", `${'{"a":'.repeat(10_000)}1${"}".repeat(10_000)}`);
    await raw.resume();
    await publisher.register("after", { sessionTtlMs: 60_000, backends: [{ backendId: "pw", backendSessionId: "bs" }] });

    // Read straight from Redis: BullMQ's own getJob cannot parse these jobs either.
    const key = (id: string) => `${raw.opts.prefix}:${QUEUE_SESSIONS}:${id}`;
    const failed = (id: string) =>
      waitFor(`job ${id} failed`, async () => ((await redis.zscore(`${raw.opts.prefix}:${QUEUE_SESSIONS}:failed`, id)) === null ? undefined : redis.hmget(key(id), "failedReason", "atm")), 15_000);
    const [reasonA, attemptsA] = await failed(notJson.id!);
    expect(reasonA).toMatch(/^invalid_json: job data is not valid JSON/);
    expect(attemptsA).toBe("1");
    const [reasonB, attemptsB] = await failed(deep.id!);
    expect(reasonB).toBe("invalid_message: payload is nested deeper than 32 levels");
    expect(attemptsB).toBe("1");
    await waitFor("the valid message after them", () => scheduler.keepaliveQueues[0]!.getJobScheduler(schedulerId("after", "pw")), 15_000);
    expect(
      lines
        .filter((l) => l["msg"] === "registration message rejected")
        .map((l) => l["reason"])
        .sort(),
    ).toEqual(["invalid_json", "invalid_message"]);
    const metrics = await scheduler.registry.getSingleMetricAsString("vmk_registration_rejected_total");
    expect(metrics).toContain('vmk_registration_rejected_total{reason="invalid_json"} 1');
    expect(metrics).toContain('vmk_registration_rejected_total{reason="invalid_message"} 1');
    // Nothing cycles back (a stalled job would return to wait, then active): the queue drains.
    await waitFor("the queue drained", async () => {
      const c = await raw.getJobCounts("active", "wait");
      return c["active"] === 0 && c["wait"] === 0;
    });
    expect(await raw.getJobCounts("failed", "completed")).toEqual({ failed: 2, completed: 1 });
  });

  it("a touch naming the backends a session called records their traffic; one naming a backend the session lacks is rejected", async () => {
    const { scheduler, publisher, raw, store } = await setup();
    await publisher.register("t1", { sessionTtlMs: 60_000, backends: [{ backendId: "pw", backendSessionId: "bs-t1" }] });
    await waitFor("registered", () => scheduler.keepaliveQueues[0]!.getJobScheduler(schedulerId("t1", "pw")));
    const at = Date.now() - 1_000;
    await publisher.touch("t1", { at, backendIds: ["pw"] });
    await waitFor("traffic recorded", async () => (await store.readPair("t1", "pw"))?.lastTrafficAt === at);
    const bad = await raw.add("session.touched", { type: "session.touched", sessionId: "t1", occurredAt: now(), sequence: publisher.nextSequence("t1"), backendIds: ["search"] });
    const job = await waitFor("the touch rejected", async () => {
      const j = await raw.getJob(bad.id!);
      return (await j?.isFailed()) ? j : undefined;
    });
    expect(job.failedReason).toBe('unknown_backend: session t1 has no backend "search"');
    expect(job.attemptsMade).toBe(1);
  });

  it("is idempotent across two scheduler processes consuming the same queue", async () => {
    const prefix = testPrefix();
    const a = await setup(prefix);
    const b = await setup(prefix);
    for (let i = 0; i < 40; i++) {
      await a.publisher.register(`s${i}`, { sessionTtlMs: 60_000, backends: [{ backendId: "pw", backendSessionId: `x${i}` }] });
      await b.publisher.register(`s${i}`, { sessionTtlMs: 60_000, backends: [{ backendId: "pw", backendSessionId: `x${i}` }] });
      if (i % 2 === 0) await a.publisher.end(`s${i}`);
    }
    await waitFor(
      "20 schedulers",
      async () => (await a.scheduler.keepaliveQueues[0]!.getJobSchedulersCount()) === 20 && (await a.raw.getWaitingCount()) === 0 && (await a.raw.getActiveCount()) === 0,
      20_000,
    );
    const pairs = await a.store.listPairs();
    expect(pairs.map((p) => p.sessionId).sort()).toEqual(Array.from({ length: 20 }, (_, i) => `s${2 * i + 1}`).sort());
  });
});
