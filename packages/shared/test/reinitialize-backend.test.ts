import { afterEach, beforeEach, describe, expect, inject, it } from "vitest";
import { expectNoLeakedConnections, flushPrefix, startEmbeddedRedis, testPrefix } from "@vmcp-keepalive/testkit";
import type { PublishResult } from "../src/client/publish-guard.js";
import { createReinitializeBackend, type ReinitializeBackendOptions, type ReinitializedPair } from "../src/client/reinitialize-backend.js";
import { createLocker } from "../src/lock/locker.js";
import { SILENT_LOGGER } from "../src/logger.js";
import { closeRedis, createRedis, type RedisConnection } from "../src/redis/connection.js";
import { createKeys, type Keys } from "../src/redis/keys.js";
import { PAIR_FIELDS } from "../src/state/pair-state.js";
import { reinitializePair } from "../src/state/reinitialize-pair.js";

const redisUrl = inject("redisUrl");

describe("reinitializeBackend under the pair lock", () => {
  let prefix: string;
  let keys: Keys;
  let redis: RedisConnection;
  let stored: ReinitializedPair[];
  let restores: string[];

  const reinitializer = (o: Partial<ReinitializeBackendOptions> = {}) =>
    createReinitializeBackend({
      locker: createLocker([redis]),
      pairLock: (s, b) => keys.pairLock(s, b),
      store: (pair) => reinitializePair(redis, keys, pair, Date.now()),
      onNewSession: (pair) => void stored.push(pair),
      requestRestore: async (sessionId, backendId): Promise<PublishResult> => {
        restores.push(`${sessionId}/${backendId}`);
        return { ok: true };
      },
      lockTimeoutMs: 1_000,
      lockTtlMs: 5_000,
      log: SILENT_LOGGER,
      ...o,
    });
  const pair = (status: "active" | "expired" | "off", epoch = 3) => redis.hset(keys.pair("s1", "b1"), PAIR_FIELDS.backendSessionId, "old", PAIR_FIELDS.epoch, epoch, PAIR_FIELDS.status, status);
  const storedSession = () => redis.hget(keys.pair("s1", "b1"), PAIR_FIELDS.backendSessionId);
  const lockIsFree = async () => {
    const probe = await createLocker([redis]).tryLock(keys.pairLock("s1", "b1"), 1_000);
    if (probe.acquired) await probe.lock.release();
    return probe.acquired;
  };

  beforeEach(() => {
    prefix = testPrefix("reinit");
    keys = createKeys(prefix);
    redis = createRedis(redisUrl, "client", `vmk-test@${prefix}`);
    stored = [];
    restores = [];
  });
  afterEach(async () => {
    await closeRedis(redis);
    await flushPrefix(redisUrl, prefix);
    await expectNoLeakedConnections(redisUrl, (n) => n.endsWith(`@${prefix}`));
  });

  it("stores the new backend session under the lock, bumps the epoch and releases the lock", async () => {
    await pair("active");
    let lockedDuringCallback = false;
    const result = await reinitializer()("s1", "b1", async () => {
      lockedDuringCallback = !(await lockIsFree());
      return { backendSessionId: "new", protocolVersion: "2025-11-25" };
    });
    expect(lockedDuringCallback).toBe(true);
    expect(result).toEqual({ value: { backendSessionId: "new", protocolVersion: "2025-11-25" }, lock: "held", state: "written", epoch: 4, schedulerRestoreRequested: false });
    expect(stored).toEqual([{ sessionId: "s1", backendId: "b1", backendSessionId: "new", protocolVersion: "2025-11-25" }]);
    expect(await storedSession()).toBe("new");
    expect(await lockIsFree()).toBe(true);
  });

  it("asks the scheduler to restore a pair only when it had expired, and says whether the request went out", async () => {
    await pair("expired");
    expect(await reinitializer()("s1", "b1", async () => ({ backendSessionId: "new" }))).toMatchObject({ state: "written", schedulerRestoreRequested: true });
    expect(restores).toEqual(["s1/b1"]);
    expect(await reinitializer()("s1", "b1", async () => ({ backendSessionId: "newer" }))).toMatchObject({ schedulerRestoreRequested: false });
    await pair("expired");
    const failing = reinitializer({ requestRestore: async () => ({ ok: false, reason: "publish_failed", error: new Error("down") }) });
    expect(await failing("s1", "b1", async () => ({ backendSessionId: "newest" }))).toMatchObject({ state: "written", schedulerRestoreRequested: false });
  });

  it("waits for a busy lock up to lockTimeoutMs, then goes ahead without it and says so", async () => {
    await pair("active");
    const held = await createLocker([redis]).tryLock(keys.pairLock("s1", "b1"), 10_000);
    expect(held.acquired).toBe(true);
    const started = Date.now();
    const result = await reinitializer({ lockTimeoutMs: 400 })("s1", "b1", async () => ({ backendSessionId: "new" }));
    const waited = Date.now() - started;
    expect(waited).toBeGreaterThanOrEqual(350);
    expect(waited).toBeLessThan(2_000);
    expect(result).toMatchObject({ lock: "busy", state: "written" });
    if (held.acquired) await held.lock.release();
  });

  it("does not wait for a lock whose Redis is down: goes ahead at once and reports it unavailable", async () => {
    await pair("active");
    const down = await startEmbeddedRedis();
    const lockRedis = createRedis(down.url, "client", `vmk-test-lock@${prefix}`, { enableOfflineQueue: false, maxRetriesPerRequest: 0 });
    try {
      await down.stop();
      const started = Date.now();
      const result = await reinitializer({ locker: createLocker([lockRedis]), lockTimeoutMs: 5_000 })("s1", "b1", async () => ({ backendSessionId: "new" }));
      expect(Date.now() - started).toBeLessThan(1_000);
      expect(result).toMatchObject({ lock: "unavailable", state: "written" });
    } finally {
      await closeRedis(lockRedis);
    }
  });

  it("re-throws the callback's own error after releasing the lock; stores nothing for an unknown pair or an invalid result", async () => {
    const reinitialize = reinitializer();
    await expect(reinitialize("s1", "b1", async () => Promise.reject(new Error("backend refused initialize")))).rejects.toThrow("backend refused initialize");
    expect(await lockIsFree()).toBe(true);
    expect(await reinitialize("s1", "b1", async () => ({ backendSessionId: "new" }))).toMatchObject({ lock: "held", state: "unknown_pair" });
    expect(await redis.exists(keys.pair("s1", "b1"))).toBe(0);
    await pair("active");
    expect(await reinitialize("s1", "b1", async () => ({ backendSessionId: "has space" }))).toMatchObject({ state: "invalid_result" });
    expect(await reinitialize("s1", "b1", async () => ({ backendSessionId: "ok", protocolVersion: "latest" }))).toMatchObject({ state: "invalid_result" });
    expect(await storedSession()).toBe("old");
    expect(stored.map((p) => p.backendSessionId)).toEqual(["new"]);
  });
});
