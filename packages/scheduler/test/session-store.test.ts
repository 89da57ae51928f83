import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { createKeys, type SessionRegistered } from "@vmcp-keepalive/shared";
import { flushPrefix, testPrefix } from "@vmcp-keepalive/testkit";
import { createSessionStore, type PairDecision } from "../src/index.js";

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
    expect(await store.applyRegistered(reg("s1", 5), [active("b-1")], 1_000)).toEqual({ status: "applied", removedBackends: [], activeBackends: [] });
    expect(await store.applyRegistered(reg("s1", 5), [active("b-1")], 2_000)).toEqual({ status: "duplicate", removedBackends: [], activeBackends: ["pw"] });
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
    expect(result).toEqual({ status: "applied", removedBackends: ["other"], activeBackends: [] });
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
    expect(await redis.zscore(keys.sessionsByExpiry(0), "s1")).toBeNull();
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
    expect(await store.applyTouched(used, 97_000)).toEqual({ status: "applied", unknownBackends: [] });
    expect((await store.readPair("s1", "pw"))?.lastTrafficAt).toBe(96_000);
    expect(await store.applyTouched({ ...touch(5), backendIds: ["pw", "db"] }, 98_000)).toEqual({ status: "unknown_backends", unknownBackends: ["db"] });
    expect((await store.readSession("s1"))?.sequence).toBe(4);
    expect(Number(await redis.zscore(keys.sessionsByExpiry(0), "s1"))).toBe(100_000);
    await flushPrefix(url, prefix);
  });

  it("works under a hash-tagged prefix", async () => {
    const prefix = `{${testPrefix()}}`;
    const store = createSessionStore(redis, createKeys(prefix));
    await store.applyRegistered(reg("s1", 1), [active("b-1")], 0);
    expect((await store.listPairs()).map((p) => p.sessionId)).toEqual(["s1"]);
    await flushPrefix(url, prefix);
  });
});
