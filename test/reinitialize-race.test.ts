import { afterEach, describe, expect, inject, it } from "vitest";
import type { KeepaliveEventMap } from "@vmcp-keepalive/worker";
import { createBackendClient, createTickLockStrategy, createTickStore, runKeepalive, type KeepaliveDeps, type KeepaliveJobResult } from "@vmcp-keepalive/worker/internal";
import { closeRedis, createRedis, createVmcpClient, type RedisTarget, type VmcpEvent, type VmcpClient } from "@vmcp-keepalive/shared";
import { createLogger, keysOf, parseConfig, redisTargetOf, TypedEmitter } from "@vmcp-keepalive/runtime";
import { createSessionStore } from "@vmcp-keepalive/scheduler/internal";
import { expectNoLeakedConnections, flushPrefix, startMcpTestBackend, startRedisCluster, testPrefix, waitFor, type McpTestBackend } from "@vmcp-keepalive/testkit";
import { createScheduler, type Scheduler } from "@vmcp-keepalive/scheduler";

const redisUrl = inject("redisUrl");
const logger = createLogger({ name: "race", level: "silent" });
const ROUNDS = 1_000;

/** Lets the event loop turn `n` times, so concurrent operations interleave differently each round. */
async function yieldTimes(n: number): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise<void>((r) => setImmediate(r));
}

/**
 * The vMCP's re-initialize: a real MCP `initialize` handshake (initialize, then
 * notifications/initialized) against the SDK backend, over plain fetch: the SDK Client does the
 * same in about twice the time, which would put 1,000 rounds well over a minute.
 */
async function initializeSession(url: string): Promise<{ sessionId: string; protocolVersion: string }> {
  const headers = { "content-type": "application/json", accept: "application/json, text/event-stream" };
  const res = await fetch(url, {
    method: "POST",
    headers,
    body: JSON.stringify({
      jsonrpc: "2.0",
      id: "vmcp-init",
      method: "initialize",
      params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "race-vmcp", version: "1.0.0" } },
    }),
  });
  const sessionId = res.headers.get("mcp-session-id");
  const body = (await res.json()) as { result?: { protocolVersion?: string } };
  const protocolVersion = body.result?.protocolVersion;
  if (!res.ok || !sessionId || !protocolVersion) throw new Error(`initialize failed: HTTP ${res.status}`);
  const done = await fetch(url, {
    method: "POST",
    headers: { ...headers, "mcp-session-id": sessionId, "mcp-protocol-version": protocolVersion },
    body: JSON.stringify({ jsonrpc: "2.0", method: "notifications/initialized" }),
  });
  await done.text();
  return { sessionId, protocolVersion };
}

function withDeadline<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms (deadlock?)`)), ms);
    }),
  ]);
}

/**
 * Where the race runs: the shared redis-server of the test run, and a local Redis Cluster of 3 masters
 * and 3 replicas with 16 keepalive shards — the tick's scripts split into pair and backend halves.
 */
const TOPOLOGIES = [
  { name: "one redis-server", start: async () => ({ redis: { url: redisUrl }, stop: async () => flushPrefix(redisUrl, prefix) }) },
  {
    name: "Redis Cluster (3 masters, 16 shards)",
    start: async () => {
      const cluster = await startRedisCluster();
      return { redis: { mode: "cluster", nodes: [...cluster.nodes] }, stop: () => cluster.stop() };
    },
  },
] as const;
let prefix = "";

// reinitializeBackend and keepalive ticks take the same pair lock: raced on one pair, no ping may
// use a backend session id after the re-initialize that replaced it has returned to the vMCP.
describe.each(TOPOLOGIES)("reinitializeBackend racing keepalive ticks on $name", (topology) => {
  let backend: McpTestBackend | undefined;
  let scheduler: Scheduler | undefined;
  let client: VmcpClient | undefined;
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    await client?.close();
    await scheduler?.stop();
    for (const c of cleanups.splice(0)) await c();
    await backend?.stop();
    await expectNoLeakedConnections(redisUrl, (n) => n.endsWith(`@${prefix}`));
  });

  it(`${ROUNDS} rounds: no ping uses a session id after the re-initialize that replaced it returned; no deadlock; every re-initialize completes`, async () => {
    prefix = testPrefix("race");
    backend = await startMcpTestBackend({ jsonResponse: true });
    const redisSetting = await topology.start();
    cleanups.push(redisSetting.stop);
    const config = parseConfig({
      redis: { ...redisSetting.redis, prefix },
      keepalive: { interval: "1h", timeout: "3s" },
      sessions: { reap_interval: "1h" },
      backends: [{ id: "b1", url: backend.url }],
    });
    scheduler = createScheduler({ config, logger });
    await scheduler.start();
    const target: RedisTarget = redisTargetOf(config)!;
    client = createVmcpClient({ redis: target, prefix, replicaId: "vmcp-1", lockTimeoutMs: config.keepalive.timeoutMs + 2_000 });

    // The worker side, wired from the real pieces a worker uses (ticks driven directly).
    const redis = createRedis(target, "client", `vmk-race-worker@${prefix}`);
    cleanups.unshift(() => closeRedis(redis));
    const keys = keysOf(config);
    expect(keys.tagged).toBe(target.mode === "cluster");
    const events = new TypedEmitter<KeepaliveEventMap>();
    const store = createSessionStore(redis, keys);
    const published: VmcpEvent[] = [];
    const backendClient = createBackendClient({ maxResponseBytes: 65_536 });
    cleanups.unshift(() => backendClient.close());
    const deps: KeepaliveDeps = {
      config,
      keys,
      // The worker's default: the pair lock taken inside the tick's begin script.
      lock: createTickLockStrategy(redis, []),
      store: createTickStore(redis, keys),
      events,
      log: logger,
      now: Date.now,
      removeScheduler: (s, b) => scheduler!.pairs.remove(s, b),
      publishEvent: async (e) => void published.push(e),
      backend: backendClient,
    };

    const first = await initializeSession(backend.url);
    await client.registerSession("s1", {
      sessionTtlMs: 3_600_000,
      backends: [{ backendId: "b1", backendSessionId: first.sessionId, protocolVersion: first.protocolVersion }],
    });
    await waitFor("pair registered", async () => (await store.readPair("s1", "b1"))?.backendSessionId === first.sessionId);

    const replacedAt = new Map<string, number>();
    const outcomes = new Map<string, number>();
    const count = (r: KeepaliveJobResult) => {
      const k = r.reason ? `${r.outcome}:${r.reason}` : r.outcome;
      outcomes.set(k, (outcomes.get(k) ?? 0) + 1);
    };
    let current = first.sessionId;
    let completed = 0;
    const locks = new Map<string, number>();
    const started = Date.now();

    for (let round = 0; round < ROUNDS; round++) {
      const old = current;
      const tick = async (delay: number) => {
        await yieldTimes(delay);
        count(await runKeepalive(deps, "s1", "b1"));
      };
      const reinit = async (delay: number) => {
        await yieldTimes(delay);
        const result = await client!.reinitializeBackend("s1", "b1", async () => {
          const s = await initializeSession(backend!.url);
          return { backendSessionId: s.sessionId, protocolVersion: s.protocolVersion };
        });
        // The moment the re-initialize returned to the vMCP: no ping may use `old` after it.
        replacedAt.set(old, Date.now());
        current = result.value.backendSessionId;
        expect(result.state).toBe("written");
        locks.set(result.lock, (locks.get(result.lock) ?? 0) + 1);
        completed++;
      };
      await withDeadline(Promise.all([tick(round % 3), reinit((round * 7) % 5), tick((round * 5) % 4)]), 20_000, `round ${round}`);
    }
    const elapsed = Date.now() - started;

    const pings = backend.calls.filter((c) => c.method === "ping");
    const late = pings.filter((c) => c.sessionId !== undefined && replacedAt.has(c.sessionId) && c.at > replacedAt.get(c.sessionId)!);
    console.log(
      `re-initialize race: ${ROUNDS} rounds in ${elapsed} ms; ${pings.length} pings; ticks ${JSON.stringify(Object.fromEntries(outcomes))}; re-initialize locks ${JSON.stringify(Object.fromEntries(locks))}; late pings ${late.length}`,
    );
    expect(late).toEqual([]);
    expect(completed).toBe(ROUNDS);
    expect(locks.get("held")).toBe(ROUNDS);
    // The race really happened both ways: ticks that pinged and ticks that found the lock taken.
    expect(outcomes.get("success") ?? 0).toBeGreaterThan(ROUNDS / 10);
    expect(outcomes.get("skipped:locked") ?? 0).toBeGreaterThan(0);
    // No keepalive failed: every ping went to a live session id it read under the lock.
    expect([...outcomes.keys()].filter((k) => k.startsWith("failure"))).toEqual([]);
    expect((await store.readPair("s1", "b1"))?.backendSessionId).toBe(current);
  }, 120_000);
});
