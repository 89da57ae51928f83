import { afterEach, describe, expect, inject, it } from "vitest";
import type { Redis } from "ioredis";
import { closeRedis, createKeys, createLocker, createRedis, readBackendState, type BackendState, type Keys, type SessionRegistered } from "@vmcp-keepalive/shared";
import { createSessionStore, type SessionStore } from "@vmcp-keepalive/scheduler/internal";
import { combinedTickStore, inScriptTickLock, jittered, redlockTickLock, splitTickStore, type FinishInput, type TickStore } from "../src/internal.js";
import { expectNoLeakedConnections, flushPrefix, testPrefix } from "@vmcp-keepalive/testkit";

/*
 * The breaker scripts against a real Redis, with concurrent callers on separate connections (as
 * separate workers are): exactly one transition wins however many race for it.
 */

const redisUrl = inject("redisUrl");
const opened: Redis[] = [];
let prefix = "";

/**
 * Both ways the scripts run: combined (pair and backend in one script, the standalone layout) and
 * split (pair half and backend half, hash-tagged keys over 4 shards: the Redis Cluster way).
 */
const VARIANTS = [
  { name: "combined scripts", split: false, shards: 1 },
  { name: "split scripts, sharded keys", split: true, shards: 4 },
] as const;
type Variant = (typeof VARIANTS)[number];
const storeOf = (v: Variant) => (v.split ? splitTickStore : combinedTickStore);

afterEach(async () => {
  for (const r of opened.splice(0)) await closeRedis(r);
  await flushPrefix(redisUrl, prefix);
  await expectNoLeakedConnections(redisUrl);
});

/** A `session.registered` for the store; its pairs' decisions are passed beside it. */
const registered = (sessionId: string, sequence: number): SessionRegistered => ({
  type: "session.registered",
  v: 1,
  sessionId,
  occurredAt: new Date().toISOString(),
  sequence,
  replicaId: "r",
  sessionTtlMs: 60_000,
  backends: [],
});

/** `n` breakers on `n` connections (n workers) plus a store to register pairs. */
async function setup(v: Variant, n: number, pairs: number): Promise<{ breakers: TickStore[]; store: SessionStore; readBackend: (id: string) => Promise<BackendState> }> {
  prefix = testPrefix("brk");
  const keys = createKeys(prefix, { shards: v.shards });
  const conns = Array.from({ length: n }, (_, i) => createRedis(redisUrl, "client", `vmk-test-breaker-${i}@${prefix}`));
  opened.push(...conns);
  const store = createSessionStore(conns[0]!, keys);
  for (let i = 0; i < pairs; i++) {
    const m = registered(`s${i}`, 1);
    await store.applyRegistered(m, [{ backendId: "b", backendSessionId: `bs${i}`, protocolVersion: "2025-06-18", status: "active", offReason: undefined }], Date.now());
  }
  return { breakers: conns.map((c) => storeOf(v)(c, keys)), store, readBackend: (id) => readBackendState(conns[0]!, keys, id) };
}

/** A begin with the lock held outside the scripts (no `lock`), as under Redlock. */
const begin = (b: TickStore, i: number, now = Date.now()) => b.begin(`s${i}`, "b", now, { probeToken: `tok-${i}`, probeLeaseMs: 5_000, pingRetryDelayMs: 60_000, fallback: false });

function finish(b: TickStore, i: number, epoch: number, over: Partial<FinishInput>): Promise<Awaited<ReturnType<TickStore["finish"]>>> {
  return b.finish({
    pair: { sessionId: `s${i}`, backendId: "b", epoch },
    outcome: { kind: "failure", reason: "http_5xx" },
    now: Date.now(),
    breakerOp: "count",
    failureThreshold: 3,
    // The threshold alone (these cases are about the count and the probe; the span has its own).
    minFailureSpanMs: 0,
    probeDelayMs: 1_000,
    afterFailures: 3,
    pingRetryDelayMs: 60_000,
    ...over,
  });
}

describe.each(VARIANTS)("tick store, $name: breaker, probe, outcome fence", (v) => {
  it("20 concurrent failures from 10 workers: exactly one of them opens the breaker", async () => {
    const { breakers, readBackend } = await setup(v, 10, 20);
    // One clock for all: the failures arrive at Redis in any order, and with the span at 0 ms a
    // later-built record arriving first would otherwise make the run's start later than an earlier one's now.
    const at = Date.now();
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => finish(breakers[i % 10]!, i, 1, { now: at })));
    expect(results.filter((r) => r.breakerTransition === "opened")).toHaveLength(1);
    expect(results.find((r) => r.breakerTransition === "opened")?.breakerFailures).toBe(3);
    const state = await readBackend("b");
    // Failures after the opening are late results: they change nothing.
    expect(state).toMatchObject({ state: "open", consecutiveFailures: 3, openReason: "http_5xx" });
  });

  it("when the probe is due, exactly one of 20 concurrent ticks claims it; the rest skip", async () => {
    const { breakers, readBackend } = await setup(v, 10, 20);
    for (let i = 0; i < 3; i++) await finish(breakers[0]!, i, 1, { probeDelayMs: 0 });
    expect((await readBackend("b")).state).toBe("open");
    const decisions = await Promise.all(Array.from({ length: 20 }, (_, i) => begin(breakers[i % 10]!, i)));
    const probes = decisions.filter((d) => d.kind === "call" && d.probe);
    expect(probes).toHaveLength(1);
    expect(decisions.filter((d) => d.kind === "skip" && d.reason === "breaker_open")).toHaveLength(19);
    expect((await readBackend("b")).state).toBe("probing");
  });

  it("only the probe's own result closes or re-opens; a probe that got 404 hands the probe back", async () => {
    const { breakers, readBackend } = await setup(v, 2, 3);
    const [w1] = breakers as [TickStore, TickStore];
    for (let i = 0; i < 3; i++) await finish(w1, i, 1, { probeDelayMs: 0 });
    const d = await begin(w1, 0);
    expect(d).toMatchObject({ kind: "call", probe: true });
    // A late success from another pair (not the probe) does not close it.
    expect((await finish(w1, 1, 1, { outcome: { kind: "success" }, breakerOp: "reset" })).breakerTransition).toBeUndefined();
    expect((await readBackend("b")).state).toBe("probing");
    // The probe's pair answered 404: no verdict, the probe is due again at once.
    expect((await finish(w1, 0, 1, { outcome: { kind: "failure", reason: "session_not_found" }, breakerOp: "none", probeToken: "tok-0" })).breakerTransition).toBe("released");
    const again = await begin(w1, 2);
    expect(again).toMatchObject({ kind: "call", probe: true });
    // Failure re-opens for another window; success of the next probe closes it.
    expect((await finish(w1, 2, 1, { probeToken: "tok-2", probeDelayMs: 0 })).breakerTransition).toBe("reopened");
    expect(await begin(w1, 1)).toMatchObject({ kind: "call", probe: true });
    const closed = await finish(w1, 1, 1, { outcome: { kind: "success" }, breakerOp: "reset", probeToken: "tok-1" });
    expect(closed).toMatchObject({ breakerTransition: "closed", breakerFailures: 0 });
    expect(await readBackend("b")).toMatchObject({ state: "closed", consecutiveFailures: 0, probeAt: undefined });
  });

  it("min failure span: 1,000 pairs failing for 5 s never open it; failures spanning the minimum do; a success restarts the span", async () => {
    const { breakers, readBackend } = await setup(v, 4, 1_000);
    const t0 = Date.now();
    const span = { minFailureSpanMs: 30_000 };
    // A 5-second blip: every one of 1,000 pairs fails, spread over 5 s, from 4 workers. The first
    // failure goes alone: which of several concurrent ones reaches Redis first is a race, and the
    // run's start is the first to arrive.
    const fail = (i: number) => finish(breakers[i % 4]!, i, 1, { ...span, now: t0 + Math.floor((i * 5_000) / 1_000) });
    const blip = [await fail(0), ...(await Promise.all(Array.from({ length: 999 }, (_, i) => fail(i + 1))))];
    expect(blip.filter((r) => r.breakerTransition === "opened")).toHaveLength(0);
    expect(await readBackend("b")).toMatchObject({ state: "closed", consecutiveFailures: 1_000, failingSince: t0 });
    // A success ends the run: the span starts again at the next failure.
    await finish(breakers[0]!, 0, 1, { ...span, now: t0 + 6_000, outcome: { kind: "success" }, breakerOp: "reset" });
    expect(await readBackend("b")).toMatchObject({ consecutiveFailures: 0, failingSince: undefined });
    expect((await finish(breakers[0]!, 1, 1, { ...span, now: t0 + 31_000 })).breakerTransition).toBeUndefined();
    expect((await finish(breakers[0]!, 2, 1, { ...span, now: t0 + 40_000 })).breakerTransition).toBeUndefined();
    // Still failing 30 s after the run began, past the threshold: it opens, once.
    const opened = await finish(breakers[1]!, 3, 1, { ...span, now: t0 + 61_000 });
    expect(opened).toMatchObject({ breakerTransition: "opened", breakerFailures: 3 });
    expect(await readBackend("b")).toMatchObject({ state: "open", failingSince: undefined });
  });

  it("a probe claim whose lease ran out (its worker died) is taken over", async () => {
    const { breakers } = await setup(v, 1, 2);
    const b = breakers[0]!;
    for (let i = 0; i < 3; i++) await finish(b, i % 2, 1, { probeDelayMs: 0 });
    const t0 = Date.now();
    expect(await begin(b, 0, t0)).toMatchObject({ probe: true });
    expect(await begin(b, 1, t0 + 1_000)).toMatchObject({ kind: "skip", reason: "breaker_open" });
    expect(await begin(b, 1, t0 + 5_001)).toMatchObject({ kind: "call", probe: true });
  });

  it("outcomes are fenced on the pair epoch, breaker accounting is not", async () => {
    const { breakers } = await setup(v, 1, 1);
    const r = await finish(breakers[0]!, 0, 99, {});
    expect(r).toMatchObject({ recorded: false, why: "fenced", breakerFailures: 1 });
  });

  it("records outcomes on the pair, fenced on its epoch; a pair that is gone records nothing", async () => {
    const { breakers, store } = await setup(v, 1, 1);
    const t = breakers[0]!;
    const pair = (await store.readPair("s0", "b"))!;
    const record = (p: typeof pair, outcome: FinishInput["outcome"], now: number, latencyMs?: number) =>
      t.finish({
        pair: p,
        outcome,
        now,
        breakerOp: "none",
        failureThreshold: 3,
        minFailureSpanMs: 0,
        probeDelayMs: 1_000,
        afterFailures: 3,
        pingRetryDelayMs: 60_000,
        ...(latencyMs === undefined ? {} : { latencyMs }),
      });
    expect(await record(pair, { kind: "failure", reason: "timeout" }, 5, 12.4)).toMatchObject({ recorded: true });
    expect(await store.readPair("s0", "b")).toMatchObject({ consecutiveFailures: 1 });
    expect(await record(pair, { kind: "failure", reason: "http_5xx" }, 6)).toMatchObject({ recorded: true });
    expect(await store.readPair("s0", "b")).toMatchObject({
      lastOutcome: "failure:http_5xx",
      lastFailureReason: "http_5xx",
      lastFailureAt: 6,
      consecutiveFailures: 2,
      lastLatencyMs: 12,
    });
    const m = registered("s0", 2);
    await store.applyRegistered(m, [{ backendId: "b", backendSessionId: "bs-new", protocolVersion: "2025-06-18", status: "active", offReason: undefined }], 7);
    expect(await record(pair, { kind: "success" }, 8)).toMatchObject({ recorded: false, why: "fenced" });
    expect(await store.readPair("s0", "b")).toMatchObject({ backendSessionId: "bs-new", epoch: 2, lastOutcome: undefined, consecutiveFailures: 0 });
    await store.applyEnded({ sessionId: "s0", sequence: 3 }, 9);
    expect(await record({ ...pair, epoch: 2 }, { kind: "success" }, 10)).toMatchObject({ recorded: false, why: "gone" });
  });

  it("jitter stays within +10 %", () => {
    expect(jittered(1_000, () => 0)).toBe(1_000);
    expect(jittered(1_000, () => 0.999)).toBe(1_100);
  });
});

/*
 * The pair lock taken inside the begin script and released inside the finish script (one lock
 * node) must behave exactly like the Redlock a vMCP takes on the same resource.
 */
async function setupLocked(v: Variant): Promise<{ redis: Redis; keys: Keys; breaker: TickStore }> {
  prefix = testPrefix("lk");
  const keys = createKeys(prefix, { shards: v.shards });
  const redis = createRedis(redisUrl, "client", `vmk-test-lock@${prefix}`);
  opened.push(redis);
  const m = registered("s1", 1);
  await createSessionStore(redis, keys).applyRegistered(m, [{ backendId: "b", backendSessionId: "bs1", protocolVersion: undefined, status: "active", offReason: undefined }], Date.now());
  return { redis, keys, breaker: storeOf(v)(redis, keys) };
}

/** A finish by the tick whose scripts hold the lock with `token` (a success unless `over` says otherwise). */
const finishWith = (store: TickStore, pair: FinishInput["pair"], token: string, over: Partial<FinishInput> = {}) =>
  store.finish({
    pair,
    outcome: { kind: "success" },
    now: Date.now(),
    breakerOp: "reset",
    failureThreshold: 3,
    minFailureSpanMs: 0,
    probeDelayMs: 1_000,
    afterFailures: 3,
    pingRetryDelayMs: 60_000,
    lock: { token },
    ...over,
  });
const finishSuccess = (store: TickStore, pair: FinishInput["pair"], token: string) => finishWith(store, pair, token);

const opts = (token: string, ttlMs = 5_000) => ({ probeToken: `probe-${token}`, lock: { token, ttlMs }, probeLeaseMs: 5_000, pingRetryDelayMs: 60_000, fallback: false });

describe.each(VARIANTS)("pair lock inside the tick scripts, $name", (v) => {
  it("takes the contract lock resource, excludes a Redlock holder both ways, and releases in FINISH", async () => {
    const { redis, keys, breaker } = await setupLocked(v);
    const lockKey = keys.pairLock("s1", "b");
    // The contract's lock resource: `<shard prefix>:lock:<sessionId>:<backendId>`.
    expect(lockKey).toBe(`${keys.shardPrefix(keys.shardOf("s1"))}:lock:s1:b`);
    const redlock = createLocker([redis]);

    const held = await redlock.tryLock(keys.pairLock("s1", "b"), 5_000);
    expect(held.acquired).toBe(true);
    expect(await breaker.begin("s1", "b", Date.now(), opts("t1"))).toEqual({ kind: "skip", reason: "locked", lock: "none" });
    if (held.acquired) await held.lock.release();

    const d = await breaker.begin("s1", "b", Date.now(), opts("t2"));
    expect(d.kind).toBe("call");
    expect(await redis.get(lockKey)).toBe("t2");
    expect(await redis.pttl(lockKey)).toBeGreaterThan(4_000);
    expect(await redlock.tryLock(keys.pairLock("s1", "b"), 1_000)).toEqual({ acquired: false, reason: "locked" });
    if (d.kind !== "call") return;
    const res = await finishSuccess(breaker, d.pair, "t2");
    expect(res.recorded).toBe(true);
    expect(await redis.exists(lockKey)).toBe(0);
  });

  it("releases in the script when the tick ends there, and never deletes another holder's lock", async () => {
    const { redis, keys, breaker } = await setupLocked(v);
    const lockKey = keys.pairLock("s1", "b");
    // No pair: the lock is not left behind.
    expect(await breaker.begin("gone", "b", Date.now(), opts("t1"))).toEqual({ kind: "skip", reason: "ended", lock: "released" });
    expect(await redis.exists(keys.pairLock("gone", "b"))).toBe(0);
    // Breaker open: skipped, lock released.
    await redis.hset(keys.backend("b"), "state", "open", "probeAt", Date.now() + 60_000);
    expect(await breaker.begin("s1", "b", Date.now(), opts("t2"))).toEqual({ kind: "skip", reason: "breaker_open", lock: "released" });
    expect(await redis.exists(lockKey)).toBe(0);
    expect(await redis.hget(keys.pair("s1", "b"), "last")).toBe("skipped:breaker_open");
    await redis.del(keys.backend("b"));
    // A lock that expired and was taken by someone else is not ours to delete.
    const d = await breaker.begin("s1", "b", Date.now(), opts("t3", 50));
    expect(d.kind).toBe("call");
    await new Promise((r) => setTimeout(r, 120));
    await redis.set(lockKey, "someone-else", "PX", 5_000);
    if (d.kind !== "call") return;
    expect(await finishSuccess(breaker, d.pair, "t3")).toMatchObject({ recorded: true, lock: "none" });
    // Nor by a tick's lock whose token is not the holder's (compare-and-delete).
    const lock = await inScriptTickLock(redis).acquire(lockKey, 5_000);
    if ("skip" in lock) throw new Error("in-script locks are prepared, never refused");
    await lock.release("kept");
    expect(await redis.get(lockKey)).toBe("someone-else");
  });

  it("keeps the lock past a step only while work remains under it: an off pair, a pair recorded as expired", async () => {
    const { redis, keys, breaker } = await setupLocked(v);
    const lockKey = keys.pairLock("s1", "b");
    // An off pair: its job scheduler is still to be removed under the lock.
    await redis.hset(keys.pair("s1", "b"), "status", "off");
    expect(await breaker.begin("s1", "b", Date.now(), opts("t1"))).toEqual({ kind: "skip", reason: "disabled", lock: "kept" });
    expect(await redis.get(lockKey)).toBe("t1");
    await redis.del(lockKey);
    await redis.hdel(keys.pair("s1", "b"), "status");
    // A 404 recorded as expired: the job scheduler is still to be removed under the lock.
    const d = await breaker.begin("s1", "b", Date.now(), opts("t2"));
    if (d.kind !== "call") throw new Error(`expected a call, got ${d.kind}`);
    expect(d.lock).toBe("kept");
    const expired = await finishWith(breaker, d.pair, "t2", { outcome: { kind: "failure", reason: "session_not_found" }, pairStatus: "expired", breakerOp: "none" });
    expect(expired).toMatchObject({ recorded: true, stopped: true, lock: "kept" });
    expect(await redis.get(lockKey)).toBe("t2");
  });

  it("with the lock held outside the scripts (a Redlock quorum), neither takes, keeps nor releases the lock key", async () => {
    const { redis, keys, breaker } = await setupLocked(v);
    const lockKey = keys.pairLock("s1", "b");
    const tick = await redlockTickLock(createLocker([redis])).acquire(lockKey, 5_000);
    if ("skip" in tick) throw new Error(`expected the lock, got ${tick.skip}`);
    // The scripts get no lock and no made-up token: the quorum's value is left as it is.
    expect(tick.script).toBeUndefined();
    const value = await redis.get(lockKey);
    const d = await breaker.begin("s1", "b", Date.now(), { probeToken: "p1", lock: tick.script, probeLeaseMs: 5_000, pingRetryDelayMs: 60_000, fallback: false });
    if (d.kind !== "call") throw new Error(`expected a call, got ${d.kind}`);
    expect(d.lock).toBe("none");
    const expired = await finishWith(breaker, d.pair, "unused", { lock: tick.script, outcome: { kind: "failure", reason: "session_not_found" }, pairStatus: "expired", breakerOp: "none" });
    expect(expired).toMatchObject({ recorded: true, stopped: true, lock: "none" });
    expect(await redis.get(lockKey)).toBe(value);
    // The quorum is held from acquire to release, whatever the scripts answered.
    expect(tick.holds(expired.lock)).toBe(true);
    await tick.release(expired.lock);
    expect(await redis.exists(lockKey)).toBe(0);
  });
});
