import { afterEach, describe, expect, inject, it } from "vitest";
import type { Redis } from "ioredis";
import { closeRedis, createKeys, createLocker, createRedis, type Keys } from "@vmcp-keepalive/shared";
import { createSessionStore } from "@vmcp-keepalive/scheduler";
import { createTickStore, type TickStore } from "../src/index.js";
import { expectNoLeakedConnections, flushPrefix, testPrefix } from "@vmcp-keepalive/testkit";

/*
 * The single-node fast path: the pair lock taken inside BEGIN_TICK_LOCKED and released inside
 * FINISH_TICK_RELEASE must behave exactly like the Redlock a vMCP takes on the same resource.
 */
const redisUrl = inject("redisUrl");
const opened: Redis[] = [];
let prefix = "";
afterEach(async () => {
  for (const r of opened.splice(0)) await closeRedis(r);
  await flushPrefix(redisUrl, prefix);
  await expectNoLeakedConnections(redisUrl);
});

async function setup(): Promise<{ redis: Redis; keys: Keys; breaker: TickStore }> {
  prefix = testPrefix("lk");
  const keys = createKeys(prefix);
  const redis = createRedis(redisUrl, "client", `vmk-test-lock@${prefix}`);
  opened.push(redis);
  const m = {
    type: "session.registered" as const,
    v: 1 as const,
    sessionId: "s1",
    occurredAt: new Date().toISOString(),
    sequence: 1,
    replicaId: "r",
    sessionTtlMs: 60_000,
    backends: [],
  };
  await createSessionStore(redis, keys).applyRegistered(m, [{ backendId: "b", backendSessionId: "bs1", protocolVersion: undefined, status: "active", offReason: undefined }], Date.now());
  return { redis, keys, breaker: createTickStore(redis, keys) };
}

const opts = (token: string) => ({ token, probeLeaseMs: 5_000, pingRetryDelayMs: 60_000, fallback: false, lockTtlMs: 5_000 });

describe("pair lock inside the tick scripts", () => {
  it("takes the contract lock resource, excludes a Redlock holder both ways, and releases in FINISH", async () => {
    const { redis, keys, breaker } = await setup();
    const lockKey = `${prefix}:lock:s1:b`;
    const redlock = createLocker([redis]);

    const held = await redlock.tryLock(keys.pairLock("s1", "b"), 5_000);
    expect(held.acquired).toBe(true);
    expect(await breaker.begin("s1", "b", Date.now(), opts("t1"))).toEqual({ kind: "locked" });
    if (held.acquired) await held.lock.release();

    const d = await breaker.begin("s1", "b", Date.now(), opts("t2"));
    expect(d.kind).toBe("call");
    expect(await redis.get(lockKey)).toBe("t2");
    expect(await redis.pttl(lockKey)).toBeGreaterThan(4_000);
    expect(await redlock.tryLock(keys.pairLock("s1", "b"), 1_000)).toEqual({ acquired: false, reason: "locked" });
    if (d.kind !== "call") return;
    const res = await breaker.finish({
      pair: d.pair,
      outcome: { kind: "success" },
      now: Date.now(),
      breakerOp: "reset",
      failureThreshold: 3,
      probeDelayMs: 1_000,
      afterFailures: 3,
      pingRetryDelayMs: 60_000,
      releaseLockToken: "t2",
    });
    expect(res.recorded).toBe(true);
    expect(await redis.exists(lockKey)).toBe(0);
  });

  it("releases in the script when the tick ends there, and never deletes another holder's lock", async () => {
    const { redis, breaker } = await setup();
    const lockKey = `${prefix}:lock:s1:b`;
    // No pair: the lock is not left behind.
    expect(await breaker.begin("gone", "b", Date.now(), opts("t1"))).toEqual({ kind: "no_pair" });
    expect(await redis.exists(`${prefix}:lock:gone:b`)).toBe(0);
    // Breaker open: skipped, lock released.
    await redis.hset(`${prefix}:backend:b`, "state", "open", "probeAt", Date.now() + 60_000);
    expect((await breaker.begin("s1", "b", Date.now(), opts("t2"))).kind).toBe("skip_open");
    expect(await redis.exists(lockKey)).toBe(0);
    await redis.del(`${prefix}:backend:b`);
    // A lock that expired and was taken by someone else is not ours to delete.
    const d = await breaker.begin("s1", "b", Date.now(), { ...opts("t3"), lockTtlMs: 50 });
    expect(d.kind).toBe("call");
    await new Promise((r) => setTimeout(r, 120));
    await redis.set(lockKey, "someone-else", "PX", 5_000);
    if (d.kind !== "call") return;
    await breaker.finish({
      pair: d.pair,
      outcome: { kind: "success" },
      now: Date.now(),
      breakerOp: "reset",
      failureThreshold: 3,
      probeDelayMs: 1_000,
      afterFailures: 3,
      pingRetryDelayMs: 60_000,
      releaseLockToken: "t3",
    });
    await breaker.releaseLock("s1", "b", "t3");
    expect(await redis.get(lockKey)).toBe("someone-else");
  });
});
