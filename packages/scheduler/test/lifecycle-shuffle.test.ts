import { Queue } from "bullmq";
import type { Redis } from "ioredis";
import { afterEach, describe, expect, inject, it } from "vitest";
import { closeRedis, createRedis, QUEUE_SESSIONS, SESSION_MESSAGE_JOB_OPTIONS, SessionMessageSchema, type SessionMessageInput } from "@vmcp-keepalive/shared";
import { createLogger, parseConfig } from "@vmcp-keepalive/runtime";
import { expectNoLeakedConnections, flushPrefix, testPrefix, waitFor } from "@vmcp-keepalive/testkit";
import { createScheduler, type Scheduler } from "../src/index.js";
import { applyMessage } from "../src/internal.js";

/*
 * Registration messages reach the schedulers duplicated (BullMQ redelivers, vMCP replicas retry)
 * and out of order (several replicas, several consumers). Sequences make applying them idempotent
 * and order-free: the Redis state after any mix of duplicates and reorderings equals the state
 * after the clean sequence.
 */
const redisUrl = inject("redisUrl");
const logger = createLogger({ name: "test", level: "silent" });

/** Deterministic PRNG (mulberry32) so a failure can be replayed. */
function rng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

const SESSIONS = 500;
const at = new Date().toISOString();

/**
 * The clean lifecycle of session i: registered (b1, b2), touched, registered again with b1 on a
 * new backend session, b2 dropped and b3 added without a session (off), touched, and for every
 * fourth session ended. Each message's sequence is strictly increasing within the session.
 */
function lifecycle(i: number): SessionMessageInput[] {
  const sessionId = `s${i}`;
  const base = 1_000_000 + i * 100;
  const m: SessionMessageInput[] = [
    {
      type: "session.registered",
      sessionId,
      occurredAt: at,
      sequence: base + 1,
      replicaId: "r1",
      sessionTtlMs: 3_600_000,
      backends: [
        { backendId: "b1", backendSessionId: `a-${i}`, protocolVersion: "2025-06-18" },
        { backendId: "b2", backendSessionId: `c-${i}`, protocolVersion: "2025-06-18" },
      ],
    },
    { type: "session.touched", sessionId, occurredAt: at, sequence: base + 2 },
    {
      type: "session.registered",
      sessionId,
      occurredAt: at,
      sequence: base + 3,
      replicaId: i % 2 ? "r2" : "r1",
      sessionTtlMs: 3_600_000,
      maxLifetimeMs: 7_200_000,
      backends: [{ backendId: "b1", backendSessionId: `a2-${i}`, protocolVersion: "2025-11-25" }, { backendId: "b3" }],
    },
    { type: "session.touched", sessionId, occurredAt: at, sequence: base + 4 },
  ];
  if (i % 4 === 0) m.push({ type: "session.ended", sessionId, occurredAt: at, sequence: base + 5, reason: "closed" });
  return m;
}

// Timestamps (and the seq/epoch counters, whose final value depends on which duplicate or which
// stale message arrived first, e.g. a touch that overtook its registration records nothing) are
// not state a keepalive depends on; neither is a tombstone's `backends` (the backends the session
// had when its end was applied, kept so a redelivered end can complete its removals: an end that
// overtook the registration finds none). Everything else must be identical.
const VOLATILE = new Set(["createdAt", "activeAt", "expiresAt", "endedAt", "regAt", "seq", "epoch", "backends"]);

async function snapshot(redis: Redis, scheduler: Scheduler, prefix: string): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  let cursor = "0";
  const keys: string[] = [];
  do {
    const [next, batch] = await redis.scan(cursor, "MATCH", `${prefix}:*`, "COUNT", 1000);
    cursor = next;
    keys.push(...batch.filter((k) => /:(session|pair):/.test(k) || k === `${prefix}:sessions`));
  } while (cursor !== "0");
  for (const key of keys.sort()) {
    const name = key.slice(prefix.length + 1);
    const type = await redis.type(key);
    if (type === "hash") {
      const h = await redis.hgetall(key);
      for (const f of Object.keys(h)) if (VOLATILE.has(f)) delete h[f];
      out[name] = { ...h, ttl: (await redis.pttl(key)) > 0 ? "expiring" : "none" };
    } else if (type === "set") {
      out[name] = (await redis.smembers(key)).sort();
    } else if (type === "zset") {
      out[name] = (await redis.zrange(key, "0", "-1")).sort();
    } else {
      out[name] = type;
    }
  }
  const schedulers = await scheduler.keepaliveQueues[0]!.getJobSchedulers(0, -1);
  out["<job schedulers>"] = schedulers.map((s) => ({ key: s.key, every: s.every, offset: s.offset, data: s.template?.data })).sort((a, b) => a.key.localeCompare(b.key));
  return out;
}

describe("lifecycle messages: duplicates and reordering", () => {
  const started: Scheduler[] = [];
  const prefixes: string[] = [];
  let redis: Redis | undefined;
  afterEach(async () => {
    for (const s of started.splice(0)) await s.stop();
    if (redis) await closeRedis(redis);
    for (const p of prefixes.splice(0)) {
      await flushPrefix(redisUrl, p);
      await expectNoLeakedConnections(redisUrl, (n) => n.endsWith(`@${p}`));
    }
  });

  const config = (prefix: string) =>
    parseConfig({
      redis: { url: redisUrl, prefix },
      keepalive: { interval: "1h", timeout: "10s" },
      sessions: { reap_interval: "1h" },
      registration: { concurrency: 16 },
      backends: ["b1", "b2", "b3"].map((id) => ({ id, url: `http://127.0.0.1:9/${id}` })),
    });

  it(`${SESSIONS} sessions: duplicated and shuffled messages through 2 schedulers end in the same Redis state as the clean sequence`, async () => {
    const clean = testPrefix("clean");
    const chaos = testPrefix("chaos");
    prefixes.push(clean, chaos);
    redis = createRedis(redisUrl, "client", `vmk-test@${chaos}`);

    // Clean: every message once, in order, applied one after the other.
    const reference = createScheduler({ config: config(clean), logger });
    started.push(reference);
    const deps = { config: config(clean), store: reference.store, scheduler: reference.pairs, log: logger, now: Date.now };
    const all = Array.from({ length: SESSIONS }, (_, i) => lifecycle(i));
    for (const messages of all) for (const m of messages) await applyMessage(deps, SessionMessageSchema.parse(m));

    // Chaos: each message 1-3 times, all shuffled, consumed concurrently by two schedulers.
    const random = rng(4242);
    const jobs = all.flat().flatMap((m) => Array.from({ length: 1 + (random() < 0.5 ? 1 : 0) + (random() < 0.15 ? 1 : 0) }, () => m));
    for (let i = jobs.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [jobs[i], jobs[j]] = [jobs[j]!, jobs[i]!];
    }
    const a = createScheduler({ config: config(chaos), logger });
    const b = createScheduler({ config: config(chaos), logger });
    started.push(a, b);
    const queue = new Queue(QUEUE_SESSIONS, { connection: redis, prefix: chaos });
    try {
      for (let i = 0; i < jobs.length; i += 500) {
        await queue.addBulk(jobs.slice(i, i + 500).map((m) => ({ name: m.type, data: m, opts: SESSION_MESSAGE_JOB_OPTIONS })));
      }
      const startedAt = Date.now();
      await Promise.all([a.start(), b.start()]);
      await waitFor(
        `all ${jobs.length} messages consumed`,
        async () => {
          const c = await queue.getJobCounts("waiting", "active", "delayed", "prioritized", "waiting-children");
          return Object.values(c).every((n) => n === 0);
        },
        50_000,
        200,
      );
      const counts = await queue.getJobCounts("failed");
      expect(counts["failed"]).toBe(0);
      console.log(`lifecycle shuffle: ${all.flat().length} messages, ${jobs.length} jobs after duplication, consumed by 2 schedulers in ${Date.now() - startedAt} ms`);
    } finally {
      await queue.close();
    }

    const expected = await snapshot(redis, reference, clean);
    const actual = await snapshot(redis, a, chaos);
    // Sanity: the reference state is what the lifecycle says (a vacuous comparison would pass anything).
    const schedulers = expected["<job schedulers>"] as { key: string }[];
    expect(schedulers.length).toBe(SESSIONS - SESSIONS / 4);
    expect(schedulers.every((s) => s.key.endsWith(":b1"))).toBe(true);
    expect(expected["session:s0"]).toMatchObject({ state: "ended", ttl: "expiring" });
    expect(expected["pair:s1:b1"]).toMatchObject({ bsid: "a2-1", pv: "2025-11-25" });
    expect(expected["pair:s1:b1"]).not.toHaveProperty("status"); // active: the default, not stored
    expect(expected["pair:s1:b3"]).toMatchObject({ status: "off", off: "no_backend_session" });
    expect(expected["pair:s1:b2"]).toBeUndefined();
    expect(actual).toEqual(expected);
  }, 90_000);
});
