import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { createKeys, type SessionRegistered } from "@vmcp-keepalive/shared";
import { flushPrefix, testPrefix } from "@vmcp-keepalive/testkit";
import { createSessionStore, type PairDecision } from "../src/internal.js";

const url = inject("redisUrl");
let redis: Redis;
beforeAll(() => {
  redis = new Redis(url, { connectionName: "test-state" });
});
afterAll(() => redis.disconnect());

const reg = (sessionId: string, sequence: number, bsid = "b-1", extra: Partial<SessionRegistered> = {}): SessionRegistered => ({
  type: "session.registered",
  v: 1,
  sessionId,
  replicaId: "r1",
  occurredAt: new Date().toISOString(),
  sequence,
  sessionTtlMs: 60_000,
  backends: [{ backendId: "pw", backendSessionId: bsid }],
  ...extra,
});
const active = (backendSessionId: string, backendId = "pw"): PairDecision => ({
  backendId,
  backendSessionId,
  protocolVersion: "2025-06-18",
  status: "active",
  offReason: undefined,
});

describe("state store", () => {
  it("applies a registration once; a replay is a duplicate that changes nothing and lists the active pairs; older sequences are stale", async () => {
    const prefix = testPrefix();
    const store = createSessionStore(redis, createKeys(prefix));
    expect(await store.applyRegistered(reg("s1", 5), [active("b-1")], 1_000)).toEqual({ status: "applied", removedBackends: [], activeBackends: ["pw"], offBackends: {} });
    expect(await store.applyRegistered(reg("s1", 5), [active("b-1")], 2_000)).toEqual({ status: "duplicate", removedBackends: [], activeBackends: ["pw"], offBackends: {} });
    expect((await store.applyRegistered(reg("s1", 4), [active("b-old")], 2_000)).status).toBe("stale");
    const pair = await store.readPair("s1", "pw");
    expect(pair).toMatchObject({ backendSessionId: "b-1", protocolVersion: "2025-06-18", epoch: 1, status: "active", consecutiveFailures: 0 });
    const session = await store.readSession("s1");
    expect(session).toMatchObject({ state: "active", sequence: 5, sessionTtlMs: 60_000, expiresAt: 61_000 });
    await flushPrefix(url, prefix);
  });

  it("bumps the epoch only when the backend session id changes, and drops backends no longer registered", async () => {
    const prefix = testPrefix();
    const store = createSessionStore(redis, createKeys(prefix));
    await store.applyRegistered(reg("s1", 1), [active("b-1"), active("x-1", "other")], 0);
    await store.applyRegistered(reg("s1", 2), [active("b-1"), active("x-1", "other")], 0);
    expect((await store.readPair("s1", "pw"))?.epoch).toBe(1);
    const result = await store.applyRegistered(reg("s1", 3, "b-2"), [active("b-2")], 0);
    expect(result).toEqual({ status: "applied", removedBackends: ["other"], activeBackends: ["pw"], offBackends: {} });
    expect((await store.readPair("s1", "pw"))?.epoch).toBe(2);
    expect(await store.readPair("s1", "other")).toBeUndefined();
    await flushPrefix(url, prefix);
  });

  it("ends a session terminally: pairs deleted, a late registration does not resurrect it", async () => {
    const prefix = testPrefix();
    const keys = createKeys(prefix);
    const store = createSessionStore(redis, keys);
    await store.applyRegistered(reg("s1", 1), [active("b-1")], 0);
    expect(await store.applyEnded({ sessionId: "s1", sequence: 2, reason: "closed" }, 10)).toEqual({ status: "applied", backends: ["pw"] });
    expect(await store.readPair("s1", "pw")).toBeUndefined();
    expect(await redis.get(keys.sessionCount(0))).toBe("0");
    expect((await store.applyRegistered(reg("s1", 9), [active("b-1")], 20)).status).toBe("ended");
    expect((await store.applyTouched({ type: "session.touched", v: 1, sessionId: "s1", occurredAt: new Date().toISOString(), sequence: 10 }, 30)).status).toBe("ended");
    expect(await store.readPair("s1", "pw")).toBeUndefined();
    expect(await redis.pttl(keys.session("s1"))).toBeGreaterThan(0);
    await flushPrefix(url, prefix);
  });

  it("slides the expiry on touch, capped by the maximum lifetime; a touch before registration records nothing", async () => {
    const prefix = testPrefix();
    const keys = createKeys(prefix);
    const store = createSessionStore(redis, keys);
    const touch = (sequence: number) => ({ type: "session.touched" as const, v: 1 as const, sessionId: "s1", occurredAt: new Date().toISOString(), sequence });
    expect((await store.applyTouched(touch(2), 0)).status).toBe("unknown");
    await store.applyRegistered(reg("s1", 1, "b-1", { maxLifetimeMs: 100_000 }), [active("b-1")], 0);
    expect((await store.applyTouched(touch(2), 10_000)).status).toBe("applied");
    expect((await store.readSession("s1"))?.expiresAt).toBe(70_000);
    expect((await store.applyTouched(touch(3), 90_000)).status).toBe("applied");
    expect((await store.readSession("s1"))?.expiresAt).toBe(100_000);
    expect((await store.applyTouched(touch(3), 95_000)).status).toBe("stale");
    // A touch that names the backends it called records their traffic on the pairs; one naming a
    // backend the session did not register is refused, and writes nothing.
    const used = { ...touch(4), occurredAt: new Date(96_000).toISOString(), backendIds: ["pw"] };
    expect(await store.applyTouched(used, 97_000)).toEqual({ status: "applied", unknownBackends: [], revivedBackends: [] });
    expect((await store.readPair("s1", "pw"))?.lastTrafficAt).toBe(96_000);
    expect(await store.applyTouched({ ...touch(5), backendIds: ["pw", "db"] }, 98_000)).toEqual({ status: "unknown_backends", unknownBackends: ["db"], revivedBackends: [] });
    expect((await store.readSession("s1"))?.sequence).toBe(4);
    const found = async (now: number) => {
      const ids: string[] = [];
      for await (const batch of store.expiredSessions(now)) ids.push(...batch);
      return ids;
    };
    expect(await found(99_999)).toEqual([]);
    expect(await found(100_000)).toEqual(["s1"]);
    await flushPrefix(url, prefix);
  });

  it("counts live sessions per shard as they are registered, ended and reaped; finds expired ones by SCAN, not tombstones", async () => {
    const prefix = testPrefix();
    const keys = createKeys(prefix);
    const store = createSessionStore(redis, keys);
    const count = async () => Number((await redis.get(keys.sessionCount(0))) ?? 0);
    await store.applyRegistered(reg("s1", 1), [active("b-1")], 0);
    await store.applyRegistered(reg("s2", 1), [active("b-2")], 0);
    await store.applyRegistered(reg("s1", 2), [active("b-1")], 0);
    await store.applyRegistered(reg("s1", 2), [active("b-1")], 0);
    expect(await count()).toBe(2);
    // Ending a session never registered here leaves a tombstone and the count alone.
    expect((await store.applyEnded({ sessionId: "never", sequence: 1, reason: "closed" }, 10)).status).toBe("applied");
    expect(await store.applyEnded({ sessionId: "s2", sequence: 2, reason: "closed" }, 10)).toEqual({ status: "applied", backends: ["pw"] });
    expect((await store.applyEnded({ sessionId: "s2", sequence: 3, reason: "closed" }, 10)).status).toBe("duplicate");
    expect(await count()).toBe(1);
    // s1 (60 s TTL) is due at 60,000; the tombstones of s2 and "never" are not sessions to reap.
    const due: string[] = [];
    for await (const batch of store.expiredSessions(60_000)) due.push(...batch);
    expect(due).toEqual(["s1"]);
    expect(await store.reapSession("s1", 59_999)).toEqual({ status: "alive" });
    expect(await store.reapSession("s1", 60_000)).toEqual({ status: "applied", backends: ["pw"] });
    expect(await store.reapSession("s1", 60_000)).toEqual({ status: "gone" });
    expect(await count()).toBe(0);
    // Nothing but the expiry's own fields is stored for a live session without a maximum lifetime.
    await store.applyRegistered(reg("s3", 1), [active("b-3")], 0);
    expect(Object.keys(await redis.hgetall(keys.session("s3"))).sort()).toEqual(["b:pw", "expiresAt", "regSeq", "seq", "ttl"]);
    await flushPrefix(url, prefix);
  });

  it("keeps a pair's ids in its key and the session's backends in the session hash: no field at its default, no set key", async () => {
    const prefix = testPrefix();
    const keys = createKeys(prefix);
    const store = createSessionStore(redis, keys);
    const off: PairDecision = { backendId: "st", backendSessionId: undefined, protocolVersion: undefined, status: "off", offReason: "stateless_backend" };
    await store.applyRegistered(reg("s1", 1), [active("b-1"), active("x-1", "other"), off], 0);
    expect(await redis.hgetall(keys.pair("s1", "pw"))).toEqual({ bsid: "b-1", pv: "2025-06-18", epoch: "1", regAt: "0" });
    expect(await redis.hgetall(keys.pair("s1", "st"))).toMatchObject({ status: "off", off: "stateless_backend" });
    const sessionFields = await redis.hkeys(keys.session("s1"));
    expect(sessionFields.filter((f) => f.startsWith("b:"))).toEqual(["b:pw", "b:other", "b:st"]);
    expect(sessionFields).not.toContain("sid");
    expect(await redis.keys(`${prefix}:session:*`)).toEqual([keys.session("s1")]);
    // Decoded, the defaults are back.
    expect(await store.readPair("s1", "pw")).toMatchObject({ sessionId: "s1", backendId: "pw", status: "active", offReason: undefined, consecutiveFailures: 0 });
    // Dropping a backend drops its field; a touch naming it is then refused.
    await store.applyRegistered(reg("s1", 2), [active("b-1")], 0);
    expect((await redis.hkeys(keys.session("s1"))).filter((f) => f.startsWith("b:"))).toEqual(["b:pw"]);
    const touch = { type: "session.touched" as const, v: 1 as const, sessionId: "s1", occurredAt: new Date().toISOString(), sequence: 3 };
    expect(await store.applyTouched({ ...touch, backendIds: ["other"] }, 10)).toEqual({ status: "unknown_backends", unknownBackends: ["other"], revivedBackends: [] });
    expect(await store.applyTouched({ ...touch, backendIds: ["pw"] }, 10)).toEqual({ status: "applied", unknownBackends: [], revivedBackends: [] });
    await flushPrefix(url, prefix);
  });

  it("works under a hash-tagged prefix", async () => {
    const prefix = `{${testPrefix()}}`;
    const store = createSessionStore(redis, createKeys(prefix));
    await store.applyRegistered(reg("s1", 1), [active("b-1")], 0);
    expect((await store.listPairs()).map((p) => p.sessionId)).toEqual(["s1"]);
    await flushPrefix(url, prefix);
  });

  describe("session credentials", () => {
    const sealed = (tag: string, expiresAt?: number) => ({
      v: 1 as const,
      kid: "k1",
      iv: "AAAAAAAAAAAAAAAA",
      tag: `${tag}AAAAAAAAAAAAAAAAAAAAA=`.slice(0, 24),
      data: "c2VhbGVk",
      ...(expiresAt ? { expiresAt } : {}),
    });
    const sessionPair = (credentials?: ReturnType<typeof sealed>): PairDecision => ({ ...active("b-1"), needsCredentials: true, ...(credentials ? { credentials } : {}) });
    const touchWith = (sequence: number, credentials: Record<string, ReturnType<typeof sealed>>) => ({
      type: "session.touched" as const,
      v: 1 as const,
      sessionId: "s1",
      occurredAt: new Date().toISOString(),
      sequence,
      credentials,
    });

    it("stores the envelope as it came; a pair without any is off (no_credentials) until a touch brings some", async () => {
      const prefix = testPrefix();
      const keys = createKeys(prefix);
      const store = createSessionStore(redis, keys);
      expect(await store.applyRegistered(reg("s1", 1), [sessionPair()], 0)).toMatchObject({ activeBackends: [], offBackends: { pw: "no_credentials" } });
      expect(await store.readPair("s1", "pw")).toMatchObject({ status: "off", offReason: "no_credentials", credentials: undefined });

      const first = sealed("A", 1_900_000_000_000);
      expect(await store.applyTouched(touchWith(2, { pw: first }), 10)).toMatchObject({ status: "applied", revivedBackends: ["pw"] });
      expect(await store.readPair("s1", "pw")).toMatchObject({ status: "active", offReason: undefined, credentials: { keyId: "k1", expiresAt: 1_900_000_000_000, sequence: 2, notice: undefined } });
      expect(JSON.parse((await redis.hget(keys.pair("s1", "pw"), "cred")) ?? "null")).toEqual(first);

      // A later registration without credentials keeps the stored ones (and the pair on).
      expect(await store.applyRegistered(reg("s1", 3), [sessionPair()], 20)).toMatchObject({ activeBackends: ["pw"], offBackends: {} });
      // Credentials of an older message do not overwrite newer ones.
      expect(await store.applyRegistered(reg("s1", 4, "b-1", { sequence: 4 }), [sessionPair()], 20)).toMatchObject({ activeBackends: ["pw"] });
      await store.applyTouched(touchWith(6, { pw: sealed("B") }), 30);
      expect((await store.readPair("s1", "pw"))?.credentials).toMatchObject({ sequence: 6, expiresAt: undefined });
      await flushPrefix(url, prefix);
    });

    it("a pair a worker stopped for its credentials comes back only with new ones; an update does not slide the session", async () => {
      const prefix = testPrefix();
      const keys = createKeys(prefix);
      const store = createSessionStore(redis, keys);
      const first = sealed("A");
      await store.applyRegistered(reg("s1", 1), [sessionPair(first)], 0);
      await redis.hset(keys.pair("s1", "pw"), "status", "off", "off", "unauthorized");

      // The same envelope again (a refresh) or none: still off.
      expect(await store.applyRegistered(reg("s1", 2), [sessionPair(first)], 10)).toMatchObject({ activeBackends: [], offBackends: { pw: "unauthorized" } });
      expect(await store.applyTouched(touchWith(3, { pw: first }), 20)).toMatchObject({ revivedBackends: [] });
      expect((await store.readPair("s1", "pw"))?.status).toBe("off");

      // New ones, alone: on again, and the session's expiry is where it was.
      const expiresBefore = (await store.readSession("s1"))?.expiresAt;
      const update = { type: "session.credentials_updated" as const, v: 1 as const, sessionId: "s1", occurredAt: new Date().toISOString(), sequence: 4, backendId: "pw", credentials: sealed("B") };
      expect(await store.applyTouched(update, 5_000)).toMatchObject({ status: "applied", revivedBackends: ["pw"] });
      expect(await store.readPair("s1", "pw")).toMatchObject({ status: "active", credentials: { sequence: 4 } });
      expect((await store.readSession("s1"))?.expiresAt).toBe(expiresBefore);
      // Stale: an update older than what the session applied changes nothing.
      expect((await store.applyTouched({ ...update, sequence: 3, credentials: sealed("C") }, 6_000)).status).toBe("stale");
      // Credentials for a backend the session did not register are refused as a whole.
      expect(await store.applyTouched({ ...update, sequence: 7, backendId: "db" }, 7_000)).toMatchObject({ status: "unknown_backends", unknownBackends: ["db"] });
      await flushPrefix(url, prefix);
    });
  });
});
