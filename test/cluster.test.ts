import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { Queue, type Job } from "bullmq";
import { hashSlot, queueOptions, readBackendState, schedulerId } from "@vmcp-keepalive/shared";
import { freePort, sleep, startMcpTestBackend, startRedisCluster, testPrefix, waitFor, type LocalRedisCluster, type McpTestBackend } from "@vmcp-keepalive/testkit";
import { createFleet, gapsOver, longestGap, type Fleet } from "./helpers/fleet.js";
import { startProgram, stopAll, waitForLog, waitForOutput, writeConfig, type RunningProcess } from "./helpers/processes.js";

/*
 * The programs on a real Redis Cluster (6 redis-server processes: 3 masters, 3 replicas,
 * cluster-node-timeout 1 s), keepalives sharded over 16 queues: pairs and load spread over the
 * masters, the breaker stays one per backend cluster-wide, and a master's failover loses no pair.
 *
 * The interval: here everything shares two cores — six redis-servers, a scheduler, two workers,
 * the MCP backend and this test — so 3,000 pairs run at 8 s (375 keepalives/s), well inside what
 * such a machine sustains on a cluster (docs/benchmarks.md).
 */
const INTERVAL_MS = 8_000;
const PAIRS = 3_000;

let cluster: LocalRedisCluster;
beforeAll(async () => {
  cluster = await startRedisCluster();
}, 60_000);
afterAll(async () => {
  await cluster?.stop();
});

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

/** used_cpu_sys + used_cpu_user of a node, in µs. */
async function cpuMicros(port: number): Promise<number> {
  const info = await cluster.command(port, "INFO", "cpu");
  const get = (k: string) => Number(new RegExp(`${k}:([0-9.]+)`).exec(info)?.[1] ?? NaN);
  return Math.round((get("used_cpu_sys") + get("used_cpu_user")) * 1e6);
}

/** Pair keys held by each master (SCAN of the node itself). */
async function pairKeysPerMaster(pattern: string): Promise<Map<number, number>> {
  const out = new Map<number, number>();
  for (const m of await cluster.masters()) {
    let cursor = "0";
    let n = 0;
    do {
      const reply = await cluster.command(m.port, "SCAN", cursor, "MATCH", pattern, "COUNT", "1000");
      // formatted reply: first line the cursor, then the keys
      const lines = reply.split("\n").filter(Boolean);
      cursor = lines[0]!.trim();
      n += lines.length - 1;
    } while (cursor !== "0");
    out.set(m.port, n);
  }
  return out;
}

interface Running {
  readonly prefix: string;
  /** The in-process backend (`inProcessBackend`), whose answers and calls a test can steer and read. */
  readonly backend: McpTestBackend | undefined;
  readonly fleet: Fleet;
  readonly programs: RunningProcess[];
}

/**
 * The MCP backend is the demo backend program in a process of its own, unless the test needs to
 * steer it (`inProcessBackend`): answering 375 calls/s from this process, next to the okAt
 * sampling of 3,000 pairs, would make its answers late (3 s timeouts) and stretch the gaps the
 * test measures.
 */
async function startFleet(label: string, settings: { workers?: number; pairs?: number; inProcessBackend?: boolean; extra?: Record<string, unknown> } = {}): Promise<Running> {
  const prefix = testPrefix(label);
  const backend = settings.inProcessBackend ? await startMcpTestBackend({ jsonResponse: true }) : undefined;
  const port = backend ? 0 : await freePort();
  const backendProgram = backend ? undefined : startProgram("demoBackend", ["--port", String(port), "--host", "127.0.0.1", "--idle-ttl", "10m"]);
  if (backendProgram) await waitForOutput(backendProgram, /demo backend listening/);
  const backendUrl = backend?.url ?? `http://127.0.0.1:${port}/mcp`;
  const config = writeConfig({
    redis: { mode: "cluster", nodes: [...cluster.nodes], prefix },
    keepalive: { interval: `${INTERVAL_MS}ms`, timeout: "3s", concurrency: 200, shards: 16 },
    sessions: { reconcile_interval: "1s", reap_interval: "1h" },
    log: { level: "info" },
    backends: [{ id: "pw", url: backendUrl }],
    ...settings.extra,
  });
  const programs = [startProgram("scheduler", ["--config", config]), ...Array.from({ length: settings.workers ?? 2 }, () => startProgram("worker", ["--config", config]))];
  const fleet = createFleet({ target: { mode: "cluster", nodes: [...cluster.nodes] }, prefix, shards: 16, sessions: settings.pairs ?? PAIRS, backendIds: ["pw"] });
  cleanups.push(
    async () => {
      await backend?.stop();
      await backendProgram?.stop();
    },
    () => fleet.close(),
    async () => {
      expect(await stopAll(programs)).toEqual(programs.map(() => 0));
    },
  );
  for (const p of programs) await waitForLog(p, /^(scheduler|worker) started$/, 30_000);
  // One backend session per 30 vMCP sessions: the backend is not what this test measures.
  const shared = await Promise.all(Array.from({ length: Math.ceil((settings.pairs ?? PAIRS) / 30) }, () => openSession(backendUrl)));
  await fleet.register((i) => shared[i % shared.length]!);
  return { prefix, backend, fleet, programs };
}

/** An MCP session on the backend (initialize + initialized), over plain fetch. */
async function openSession(url: string): Promise<string> {
  const headers = { "content-type": "application/json", accept: "application/json, text/event-stream" };
  const res = await fetch(url, {
    method: "POST",
    headers,
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "initialize", params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "cluster-test", version: "1" } } }),
  });
  const sessionId = res.headers.get("mcp-session-id");
  await res.text();
  if (!sessionId) throw new Error(`initialize failed: HTTP ${res.status}`);
  const done = await fetch(url, {
    method: "POST",
    headers: { ...headers, "mcp-session-id": sessionId, "mcp-protocol-version": "2025-06-18" },
    body: JSON.stringify({ jsonrpc: "2.0", method: "notifications/initialized" }),
  });
  await done.text();
  return sessionId;
}

describe("Redis Cluster: 3 masters, 16 keepalive shards", () => {
  it(`${PAIRS} pairs at a ${INTERVAL_MS / 1000} s interval: every pair pinged every interval; pair keys and Redis CPU spread evenly over the masters`, async () => {
    const { fleet, prefix, programs } = await startFleet("cl");
    await waitFor("every pair pinged once", async () => (await fleet.okAt()).every((t) => t > 0), 60_000, 500);
    // Let the first round settle (job schedulers' phases), then measure a window of 5 intervals.
    await sleep(INTERVAL_MS);
    const masters = await cluster.masters();
    const cpuBefore = await Promise.all(masters.map((m) => cpuMicros(m.port)));
    const from = Date.now();
    // Sampled once a second: 3,000 pairs a sample.
    const times = await fleet.watch(3 * INTERVAL_MS, 1_000);
    const to = Date.now() - 500;
    const cpuAfter = await Promise.all(masters.map((m) => cpuMicros(m.port)));
    const keepalives = times.reduce((n, list) => n + list.filter((t) => t >= from && t <= to).length, 0);

    const { worst } = longestGap(times, from, to);
    const failures = programs.flatMap((p) => p.logs()).filter((l) => l["msg"] === "keepalive failed").length;
    const perMaster = await pairKeysPerMaster(fleet.keys.pairPattern);
    const shares = masters.map((m) => (perMaster.get(m.port) ?? 0) / PAIRS);
    const cpu = masters.map((m, i) => cpuAfter[i]! - cpuBefore[i]!);
    const meanCpu = cpu.reduce((a, b) => a + b, 0) / cpu.length;
    console.log(
      `cluster: ${keepalives} keepalives in ${to - from} ms (${Math.round((keepalives * 1000) / (to - from))}/s); longest gap ${worst} ms; ${failures} failed calls; pair keys per master ${shares.map((s) => `${(s * 100).toFixed(1)} %`).join(" / ")}; ` +
        `Redis CPU per master ${cpu.map((c) => `${Math.round(c / 1000)} ms`).join(" / ")} (max ÷ mean ${(Math.max(...cpu) / meanCpu).toFixed(2)}), ${Math.round(cpu.reduce((a, b) => a + b, 0) / keepalives)} µs per keepalive over all masters`,
    );
    // Every pair pinged every interval: no gap longer than one interval plus the sampling period and
    // slack. This is a capacity check (375 keepalives/s on two shared cores): on a machine too busy
    // to keep up, ticks start late and the catch-up leaves them to the pair's next tick. So that a
    // failure says which it was, each long gap is printed with the ticks inside it that started late
    // or were superseded, read from the queue's record of them (slot, start, return value).
    const long = gapsOver(times, from, to, INTERVAL_MS + 2_000);
    const finished = new Map<number, Job[]>();
    const finishedOf = async (shard: number) => {
      if (!finished.has(shard)) {
        const queue = new Queue(fleet.keys.keepaliveQueue(shard).name, queueOptions(fleet.redis, fleet.keys.keepaliveQueue(shard)));
        finished.set(shard, await queue.getJobs(["completed"], 0, -1));
        await queue.close();
      }
      return finished.get(shard)!;
    };
    for (const gap of long.slice(0, 10)) {
      const { sessionId } = fleet.pairs[gap.pair]!;
      const idPrefix = `repeat:${schedulerId(sessionId, "pw")}:`;
      const late = (await finishedOf(fleet.keys.shardOf(sessionId)))
        .filter((j) => j.id?.startsWith(idPrefix))
        .map((j) => ({ slot: Number(j.id!.slice(idPrefix.length)), startedAfterMs: (j.processedOn ?? 0) - Number(j.id!.slice(idPrefix.length)), returned: j.returnvalue as unknown }))
        // On time, a tick starts within milliseconds of its slot; a superseded one returns at once.
        .filter((t) => t.slot > gap.from && t.slot < gap.to && (t.startedAfterMs > 100 || JSON.stringify(t.returned).includes("superseded")));
      console.log(`pair ${sessionId}: ${gap.to - gap.from} ms without a keepalive; late ticks inside: ${JSON.stringify(late)}`);
    }
    if (long.length > 0) console.log(`${long.length} gaps longer than ${INTERVAL_MS + 2_000} ms`);
    expect(worst).toBeLessThanOrEqual(INTERVAL_MS + 2_000);
    for (const s of shares) {
      expect(s).toBeGreaterThanOrEqual(0.25);
      expect(s).toBeLessThanOrEqual(0.42);
    }
    expect(Math.max(...cpu) / meanCpu).toBeLessThanOrEqual(1.3);
    // Keys and queues of a shard share one slot: spot-check one pair against its shard's queue.
    const { sessionId } = fleet.pairs[0]!;
    const q = fleet.keys.keepaliveQueue(fleet.keys.shardOf(sessionId));
    expect(hashSlot(`${q.prefix}:${q.name}:repeat`)).toBe(hashSlot(fleet.keys.pair(sessionId, "pw")));
    expect(prefix).toBeTruthy();
    for (const p of programs) expect(p.child.exitCode).toBeNull();
  }, 180_000);

  it("a backend down for pairs on every shard opens its breaker once cluster-wide (one warning), then exactly one probe per window", async () => {
    const PROBE_MS = 2_000;
    const FAILURE_THRESHOLD = 3;
    const {
      fleet,
      backend: steered,
      programs,
    } = await startFleet("clb", {
      pairs: 64,
      inProcessBackend: true,
      extra: { breaker: { failure_threshold: FAILURE_THRESHOLD, min_failure_span: 0, probe_after: `${PROBE_MS}ms` } },
    });
    const backend = steered!;
    const shards = new Set(fleet.pairs.map((p) => fleet.keys.shardOf(p.sessionId)));
    expect(shards.size).toBe(16);
    await waitFor("every pair pinged once", async () => (await fleet.okAt()).every((t) => t > 0), 60_000, 500);
    backend.mode = "http_503";
    const downAt = Date.now();
    const opened = () => programs.flatMap((p) => p.logs()).filter((l) => String(l["msg"]).startsWith("circuit breaker opened"));
    const breaker = () => readBackendState(fleet.redis, fleet.keys, "pw");
    // The breaker's own record in Redis counts the probes: it opens on exactly the threshold's
    // failure (min_failure_span 0; failures that end while it is open are not counted), and each
    // failed probe re-opens it and adds one. Wait (generously: a loaded machine only makes probes
    // late) for three failed probes, read while no probe is in flight so that the backend's calls
    // and the count describe the same moment.
    const seen = await waitFor(
      "three failed probes",
      async () => {
        const before = await breaker();
        if (before.state !== "open" || before.consecutiveFailures - FAILURE_THRESHOLD < 3) return undefined;
        // Calls after the breaker opened; calls already in flight when it opened end within the first second.
        const calls = backend.calls.filter((c) => c.at > before.openedAt! + 1_100).map((c) => c.at);
        const after = await breaker();
        return after.state === "open" && after.consecutiveFailures === before.consecutiveFailures ? { state: before, calls } : undefined;
      },
      90_000,
      100,
    );
    const probes = seen.state.consecutiveFailures - FAILURE_THRESHOLD;
    const gaps = seen.calls.slice(1).map((t, i) => t - seen.calls[i]!);
    console.log(
      `breaker on a cluster: opened ${seen.state.openedAt! - downAt} ms after the backend went down, ${opened().length} "opened" warning(s) over ${programs.length - 1} workers; ` +
        `${probes} failed probes recorded, ${seen.calls.length} calls reached the backend after it opened (probe windows of ${PROBE_MS}-${PROBE_MS * 1.1} ms), gaps ${gaps.join(", ")} ms`,
    );
    expect(opened()).toHaveLength(1);
    // Exactly one probe per window: every call that reached the backend while the breaker was open
    // was a probe the breaker recorded, and no two came within one window.
    expect(seen.calls).toHaveLength(probes);
    for (const gap of gaps) expect(gap).toBeGreaterThanOrEqual(PROBE_MS * 0.9);
  }, 180_000);

  it("SIGKILL of a master under load: its replica takes over; every pair is pinged again within the failover time + two intervals; no process exits; 0 pairs lost", async () => {
    const { fleet, programs } = await startFleet("clk");
    await waitFor("every pair pinged once", async () => (await fleet.okAt()).every((t) => t > 0), 60_000, 500);
    await sleep(INTERVAL_MS);
    const victim = (await cluster.masters())[0]!;
    // Watched until every pair has been pinged after the kill (the bound is asserted on the times
    // seen), with a generous deadline after which a pair not pinged counts as lost.
    let killedAt = Infinity;
    const watching = fleet.watch(2 * INTERVAL_MS + 60_000, 1_000, (seen) => seen.every((list) => list.some((t) => t > killedAt + 200)));
    await sleep(1_000);
    killedAt = Date.now();
    await cluster.kill(victim.port);
    const failoverMs = await cluster.waitHealthy(30_000);
    const times = await watching;
    const firstAfter = times.map((list) => list.find((t) => t > killedAt + 200));
    const lost = firstAfter.filter((t) => t === undefined).length;
    const worst = Math.max(...firstAfter.map((t) => (t ?? Infinity) - killedAt));
    const late = firstAfter.map((t, i) => ({ i, after: (t ?? Infinity) - killedAt })).filter((x) => x.after > failoverMs + 2 * INTERVAL_MS);
    for (const { i, after } of late.slice(0, 5)) {
      const p = fleet.pairs[i]!;
      console.log(`late pair ${p.sessionId} (shard ${fleet.keys.shardOf(p.sessionId)}): first keepalive ${after} ms after the kill; keepalives at ${times[i]!.map((t) => t - killedAt).join(", ")} ms`);
    }
    const repairs = programs[0]!.logs().filter((l) => String(l["msg"]).startsWith("reconcile:")).length;
    const failures = programs.flatMap((p) => p.logs()).filter((l) => l["msg"] === "keepalive failed").length;
    console.log(
      `cluster master SIGKILLed (port ${victim.port}, ${(await pairKeysPerMaster(fleet.keys.pairPattern)).size} masters now): failover ${failoverMs} ms; ` +
        `every pair pinged again within ${worst} ms of the kill (bound: failover + 2 intervals = ${failoverMs + 2 * INTERVAL_MS} ms); ${lost} pairs lost; ${repairs} reconcile repairs; ${failures} failed calls`,
    );
    expect(lost).toBe(0);
    expect(worst).toBeLessThanOrEqual(failoverMs + 2 * INTERVAL_MS + 2_000);
    for (const p of programs) expect(p.child.exitCode).toBeNull();
  }, 240_000);
});
