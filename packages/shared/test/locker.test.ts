import { Redis } from "ioredis";
import Redlock from "redlock";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLocker } from "../src/lock/locker.js";
import { createKeys } from "../src/redis/keys.js";
import { startEmbeddedRedis, testPrefix } from "@vmcp-keepalive/testkit";

describe("locker (the pair lock and every other lock)", () => {
  let redis: Redis;
  beforeAll(async () => {
    const { inject } = await import("vitest");
    redis = new Redis(inject("redisUrl"), { connectionName: "test-lock", enableOfflineQueue: false });
    await new Promise((r) => redis.once("ready", r));
  });
  afterAll(() => redis.disconnect());

  it("takes the contract resource, refuses a second holder as `locked`, and frees on release", async () => {
    const keys = createKeys(testPrefix());
    const locker = createLocker([redis]);
    const first = await locker.tryLock(keys.pairLock("s1", "pw"), 5_000);
    expect(first.acquired).toBe(true);
    expect(await redis.exists(`${keys.prefix}:lock:s1:pw`)).toBe(1);
    expect(await locker.tryLock(keys.pairLock("s1", "pw"), 5_000)).toEqual({ acquired: false, reason: "locked" });
    expect((await locker.tryLock(keys.pairLock("s1", "other"), 5_000)).acquired).toBe(true);
    if (first.acquired) await first.lock.release();
    expect(await redis.exists(`${keys.prefix}:lock:s1:pw`)).toBe(0);
    expect((await locker.tryLock(keys.pairLock("s1", "pw"), 5_000)).acquired).toBe(true);
  });

  it("waits for a held lock with lock(), within its bound", async () => {
    const keys = createKeys(testPrefix());
    const locker = createLocker([redis]);
    const held = await locker.tryLock(keys.pairLock("s1", "pw"), 300);
    expect(held.acquired).toBe(true);
    const waited = await locker.lock(keys.pairLock("s1", "pw"), 1_000, 2_000);
    expect(waited.acquired).toBe(true);
    expect((await locker.lock(keys.pairLock("s1", "pw"), 1_000, 100)).acquired).toBe(false);
  });

  it("on one node, excludes and is excluded by a Redlock on the same resource (a vMCP or worker on another version)", async () => {
    const keys = createKeys(testPrefix());
    const resource = keys.pairLock("s1", "pw");
    const locker = createLocker([redis]);
    const redlock = new Redlock([redis], { retryCount: 0 });
    const theirs = await redlock.acquire([resource], 5_000);
    expect(await locker.tryLock(resource, 5_000)).toEqual({ acquired: false, reason: "locked" });
    await theirs.release();
    const ours = await locker.tryLock(resource, 5_000);
    expect(ours.acquired).toBe(true);
    await expect(redlock.acquire([resource], 5_000)).rejects.toThrow();
    if (ours.acquired) await ours.lock.release();
    await (await redlock.acquire([resource], 5_000)).release();
  });

  it("releases only its own lock: after its TTL ran out and someone else took it, release leaves theirs", async () => {
    const keys = createKeys(testPrefix());
    const resource = keys.pairLock("s1", "pw");
    const locker = createLocker([redis]);
    const first = await locker.tryLock(resource, 50);
    expect(first.acquired).toBe(true);
    await new Promise((r) => setTimeout(r, 120));
    if (first.acquired) expect(first.lock.isValid()).toBe(false);
    const second = await locker.tryLock(resource, 5_000);
    expect(second.acquired).toBe(true);
    if (first.acquired) await first.lock.release();
    expect(await redis.exists(resource)).toBe(1);
    expect(await locker.tryLock(resource, 5_000)).toEqual({ acquired: false, reason: "locked" });
  });

  it("reports lock_unavailable, not locked, when its Redis is down", async () => {
    const down = await startEmbeddedRedis();
    const client = new Redis(down.url, { connectionName: "test-lock-down", enableOfflineQueue: false, maxRetriesPerRequest: 0, retryStrategy: () => 50 });
    client.on("error", () => {});
    await new Promise((r) => client.once("ready", r));
    await down.stop();
    const keys = createKeys(testPrefix());
    const locker = createLocker([client]);
    const result = await locker.tryLock(keys.pairLock("s1", "pw"), 1_000);
    expect(result).toMatchObject({ acquired: false, reason: "lock_unavailable" });
    client.disconnect();
  });
});
