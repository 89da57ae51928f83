import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createPairLocker } from "../src/lock/pair-lock.js";
import { createKeys } from "../src/redis/keys.js";
import { startEmbeddedRedis } from "../src/redis/embedded.js";
import { testPrefix } from "../src/testing/harness.js";


describe("pair lock", () => {
  let redis: Redis;
  beforeAll(async () => {
    const { inject } = await import("vitest");
    redis = new Redis(inject("redisUrl"), { connectionName: "test-lock", enableOfflineQueue: false });
    await new Promise((r) => redis.once("ready", r));
  });
  afterAll(() => redis.disconnect());

  it("takes the contract resource, refuses a second holder as `locked`, and frees on release", async () => {
    const keys = createKeys(testPrefix());
    const locker = createPairLocker([redis], keys);
    const first = await locker.tryLock("s1", "pw", 5_000);
    expect(first.acquired).toBe(true);
    expect(await redis.exists(`${keys.prefix}:lock:s1:pw`)).toBe(1);
    expect(await locker.tryLock("s1", "pw", 5_000)).toEqual({ acquired: false, reason: "locked" });
    expect((await locker.tryLock("s1", "other", 5_000)).acquired).toBe(true);
    if (first.acquired) await first.lock.release();
    expect(await redis.exists(`${keys.prefix}:lock:s1:pw`)).toBe(0);
    expect((await locker.tryLock("s1", "pw", 5_000)).acquired).toBe(true);
  });

  it("waits for a held lock with lock(), within its bound", async () => {
    const locker = createPairLocker([redis], createKeys(testPrefix()));
    const held = await locker.tryLock("s1", "pw", 300);
    expect(held.acquired).toBe(true);
    const waited = await locker.lock("s1", "pw", 1_000, 2_000);
    expect(waited.acquired).toBe(true);
    expect((await locker.lock("s1", "pw", 1_000, 100)).acquired).toBe(false);
  });

  it("reports lock_unavailable, not locked, when its Redis is down", async () => {
    const down = await startEmbeddedRedis();
    const client = new Redis(down.url, { connectionName: "test-lock-down", enableOfflineQueue: false, maxRetriesPerRequest: 0, retryStrategy: () => 50 });
    client.on("error", () => {});
    await new Promise((r) => client.once("ready", r));
    await down.stop();
    const locker = createPairLocker([client], createKeys(testPrefix()));
    const result = await locker.tryLock("s1", "pw", 1_000);
    expect(result).toMatchObject({ acquired: false, reason: "lock_unavailable" });
    client.disconnect();
  });
});
