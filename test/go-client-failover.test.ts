import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createKeys, createRedis, hashSlot, keyLayout, type Keys, type RedisTarget } from "@vmcp-keepalive/shared";
import { startMcpTestBackend, startRedisCluster, startRedisSentinel, testPrefix, waitFor, type LocalRedisCluster, type LocalRedisSentinel } from "@vmcp-keepalive/testkit";
import { buildGoDriver, pairsPresent, pingLog, startGoDriver, type DriverLine } from "./helpers/go-driver.js";
import { startProgram, stopAll, waitForLog, writeConfig } from "./helpers/processes.js";

/*
 * A Go vMCP on a Redis that fails over while it registers: its sessions go through the ingress
 * stream from many goroutines at once while the master that holds the stream is SIGKILLed. The
 * client follows the promotion (Cluster: a slot-map refresh after a connection error; Sentinel:
 * each new connection asks the Sentinels), and soft state sends again whatever did not arrive or
 * was lost with the master — so every session is applied and kept alive within one refresh
 * interval of the failover. Events are read and a backend re-initialized afterwards.
 *
 * Load: keepalives at most 200/s and refreshes at most 200 registrations/s, beside six (Cluster)
 * or five (Sentinel) Redis processes, a scheduler, a worker and the in-process backend on two
 * shared cores.
 */
let driverBuild: ReturnType<typeof buildGoDriver>;
beforeAll(() => {
  driverBuild = buildGoDriver();
}, 200_000);
afterAll(() => driverBuild?.remove());

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

interface FailoverCase {
  readonly label: string;
  readonly sessions: number;
  readonly intervalMs: number;
  readonly refreshMs: number;
  /** Registrations per second: spread over a few seconds so that the kill falls among them. */
  readonly registerRate: number;
  /** The programs' `redis` config section, without the prefix. */
  readonly redisConfig: Record<string, unknown>;
  readonly target: RedisTarget;
  /** How the driver reaches this Redis. */
  readonly driverEnv: Record<string, string>;
  /** SIGKILLs the master holding the ingress stream; resolves once the failover is over. */
  killStreamMaster(keys: Keys): Promise<{ victim: number; killedAt: number; failedOverAt: number }>;
}

/** Registers `sessions` Go sessions, kills the ingress stream's master at a fifth of them, and measures the recovery. */
async function registerThroughFailover(c: FailoverCase) {
  const prefix = testPrefix(c.label);
  const backend = await startMcpTestBackend({ jsonResponse: true });
  cleanups.push(() => backend.stop());
  const config = writeConfig({
    redis: { ...c.redisConfig, prefix },
    keepalive: { interval: `${c.intervalMs}ms`, timeout: `${Math.min(3_000, c.intervalMs / 2)}ms`, concurrency: 200 },
    sessions: { reconcile_interval: "1s", reap_interval: "1h" },
    log: { level: "info" },
    backends: [{ id: "b1", url: backend.url }],
  });
  const programs = [startProgram("scheduler", ["--config", config]), startProgram("worker", ["--config", config])];
  cleanups.push(async () => expect(await stopAll(programs)).toEqual(programs.map(() => 0)));
  for (const p of programs) await waitForLog(p, /^(scheduler|worker) started$/, 30_000);
  const redis = createRedis(c.target, "client", `vmk-test-go-failover@${prefix}`);
  cleanups.push(() => redis.quit());
  const keys = createKeys(prefix, keyLayout(c.target.mode === "cluster"));

  const driver = startGoDriver(driverBuild.binary, {
    ...c.driverEnv,
    VMK_E2E_PREFIX: prefix,
    VMK_E2E_BACKEND: backend.url,
    VMK_E2E_SESSION_COUNT: String(c.sessions),
    VMK_E2E_SESSION_PREFIX: `${c.label}-`,
    VMK_E2E_CONCURRENCY: "32",
    VMK_E2E_REGISTER_RATE: String(c.registerRate),
    VMK_E2E_REFRESH_INTERVAL: `${c.refreshMs}ms`,
  });
  cleanups.push(async () => {
    const code = await driver.stop();
    if (code !== 0) console.log(driver.stderr());
    expect(code).toBe(0);
  });
  const initialized = await driver.line("initialized", 60_000);
  await waitFor("a fifth of the sessions registered", () => driver.lines.some((l) => l.event === "progress" && Number(l["registered"]) >= c.sessions / 5), 30_000, 10);
  const { victim, killedAt, failedOverAt } = await c.killStreamMaster(keys);
  const registered = await driver.line("registered", 60_000);
  const backendSessionOf = registered["sessions"] as Record<string, string>;
  const ids = Object.keys(backendSessionOf);
  expect(ids).toHaveLength(c.sessions);

  const pings = pingLog(backend);
  // Generous deadlines: the bounds are asserted on the times measured.
  const appliedAt = await waitFor("every pair applied", async () => ((await pairsPresent(redis, keys, ids, "b1")).every(Boolean) ? Date.now() : undefined), 60_000, 100);
  const pingedAt = await waitFor("every pair pinged after the failover", () => (ids.every((id) => pings.pingedSince(backendSessionOf[id]!, failedOverAt)) ? Date.now() : undefined), 60_000, 100);

  // Events after the failover: the backend drops one session, the worker's keepalive gets 404
  // and adds backend.session_expired, and the driver re-initializes the backend under the lock.
  const dropped = ids[ids.length - 1]!;
  const del = await fetch(backend.url, { method: "DELETE", headers: { "mcp-session-id": backendSessionOf[dropped]!, "mcp-protocol-version": "2025-06-18" } });
  expect(del.status).toBe(200);
  const droppedAt = Date.now();
  const reinit = await driver.line("reinitialized", 3 * c.intervalMs + 20_000);
  const reinitMs = Date.now() - droppedAt;
  const fresh = String(reinit["new"]);
  await waitFor("keepalives on the re-initialized backend session", () => pings.pingedSince(fresh, droppedAt), 3 * c.intervalMs + 10_000, 100);
  const stats = await driver.request("stats", "stats");
  return { redis, keys, victim, killedAt, failedOverAt, initialized, registered, appliedAt, pingedAt, reinit, reinitMs, dropped, fresh, stats, programs };
}

function report(label: string, c: FailoverCase, r: Awaited<ReturnType<typeof registerThroughFailover>>) {
  const line = (l: DriverLine) => JSON.stringify(Object.fromEntries(Object.entries(l).filter(([k]) => k !== "sessions" && k !== "event")));
  console.log(
    `Go vMCP, ${label}: ${c.sessions} backend sessions opened in ${String(r.initialized["ms"])} ms; registrations ${line(r.registered)}; ` +
      `master ${r.victim} SIGKILLed, failover over ${r.failedOverAt - r.killedAt} ms later, the last failed registration ${Number(r.registered["lastFailureAt"]) - r.failedOverAt} ms after that; every pair applied ${r.appliedAt - r.failedOverAt} ms and pinged ${r.pingedAt - r.failedOverAt} ms after the failover ` +
      `(refresh ${c.refreshMs} ms ±10 %, interval ${c.intervalMs} ms); event to re-initialized ${r.reinitMs} ms after the drop (${line(r.reinit)}); driver at the end ${line(r.stats)}`,
  );
}

/** What every failover case asserts. */
async function expectRecovered(c: FailoverCase, r: Awaited<ReturnType<typeof registerThroughFailover>>) {
  // Some registrations met the dead master (the kill fell among them): the soft state is what
  // brought those back.
  expect(Number(r.registered["failed"])).toBeGreaterThan(0);
  // A refresh of every session falls within 1.1 × the refresh interval of the failover; applying
  // it takes the scheduler well under a second; its pair's first keepalive then comes within one
  // keepalive interval.
  expect(r.appliedAt - r.failedOverAt).toBeLessThanOrEqual(c.refreshMs * 1.1 + 1_500);
  expect(r.pingedAt - r.failedOverAt).toBeLessThanOrEqual(c.refreshMs * 1.1 + c.intervalMs + 1_500);
  expect(r.reinit).toMatchObject({ sessionId: r.dropped, lock: "held", state: "written" });
  expect(r.fresh).not.toBe(r.reinit["old"]);
  expect(await r.redis.hget(r.keys.pair(r.dropped, "b1"), "bsid")).toBe(r.fresh);
  expect(Number(r.stats["eventsHandled"])).toBeGreaterThanOrEqual(1);
  expect(Number(r.stats["refreshes"])).toBeGreaterThanOrEqual(c.sessions);
  // Every message the client sent, before, during and after the failover, was a valid one.
  expect(await r.redis.xlen(r.keys.sessionMessagesRejectedStream)).toBe(0);
  for (const p of r.programs) expect(p.child.exitCode).toBeNull();
}

describe("Go client on a Redis Cluster", () => {
  let cluster: LocalRedisCluster;
  beforeAll(async () => {
    cluster = await startRedisCluster();
  }, 60_000);
  afterAll(async () => {
    await cluster?.stop();
  });

  const c: FailoverCase = {
    label: "gocl",
    sessions: 1_000,
    intervalMs: 5_000,
    refreshMs: 5_000,
    registerRate: 200,
    get redisConfig() {
      return { mode: "cluster", nodes: [...cluster.nodes] };
    },
    get target(): RedisTarget {
      return { mode: "cluster", nodes: [...cluster.nodes] };
    },
    get driverEnv() {
      return { VMK_E2E_CLUSTER_NODES: cluster.nodes.join(",") };
    },
    async killStreamMaster(keys) {
      const slot = hashSlot(keys.sessionMessagesStream);
      const victim = (await cluster.masters()).find((m) => m.slots.some(([from, to]) => slot >= from && slot <= to))!.port;
      expect(Number(await cluster.command(victim, "CLUSTER", "KEYSLOT", keys.sessionMessagesStream))).toBe(slot);
      const killedAt = Date.now();
      await cluster.kill(victim);
      await cluster.waitHealthy(30_000);
      return { victim, killedAt, failedOverAt: Date.now() };
    },
  };

  it("1,000 sessions registered from Go while the ingress stream's master is SIGKILLed: all applied and pinged within one refresh interval of the failover; events read and a backend re-initialized after it", async () => {
    const r = await registerThroughFailover(c);
    report("Redis Cluster", c, r);
    await expectRecovered(c, r);
  }, 180_000);
});

describe("Go client on Redis Sentinel", () => {
  let sentinel: LocalRedisSentinel;
  beforeAll(async () => {
    sentinel = await startRedisSentinel();
  }, 60_000);
  afterAll(async () => {
    await sentinel?.stop();
  });

  const c: FailoverCase = {
    label: "gosnt",
    sessions: 300,
    intervalMs: 2_000,
    refreshMs: 4_000,
    registerRate: 100,
    get redisConfig() {
      return { mode: "sentinel", sentinels: [...sentinel.sentinels], sentinel_name: sentinel.masterName };
    },
    get target(): RedisTarget {
      return { mode: "sentinel", sentinels: [...sentinel.sentinels], name: sentinel.masterName };
    },
    get driverEnv() {
      return { VMK_E2E_SENTINELS: sentinel.sentinels.join(","), VMK_E2E_MASTER_NAME: sentinel.masterName };
    },
    async killStreamMaster() {
      const killedAt = Date.now();
      const victim = await sentinel.killMaster();
      await sentinel.waitFailover(victim, 30_000);
      return { victim, killedAt, failedOverAt: Date.now() };
    },
  };

  it("300 sessions registered from Go while the master is SIGKILLed: all applied and pinged within one refresh interval of the failover; events read and a backend re-initialized after it", async () => {
    const r = await registerThroughFailover(c);
    report("Redis Sentinel", c, r);
    await expectRecovered(c, r);
  }, 180_000);
});
