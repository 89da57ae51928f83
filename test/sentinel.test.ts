import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { sleep, startMcpTestBackend, startRedisSentinel, testPrefix, waitFor, type LocalRedisSentinel } from "@vmcp-keepalive/testkit";
import { createFleet } from "./helpers/fleet.js";
import { startProgram, stopAll, waitForLog, writeConfig } from "./helpers/processes.js";

/*
 * The programs on Redis Sentinel (1 master, 1 replica, 3 sentinels; down-after 1 s), the master
 * SIGKILLed under load: the programs follow the promotion on their own and no pair is lost.
 */
const INTERVAL_MS = 4_000;
const PAIRS = 2_000;

let sentinel: LocalRedisSentinel;
beforeAll(async () => {
  sentinel = await startRedisSentinel();
}, 60_000);
afterAll(async () => {
  await sentinel?.stop();
});

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

describe("Redis Sentinel", () => {
  it(`SIGKILL of the master under load (${PAIRS} pairs, ${INTERVAL_MS / 1000} s interval): the replica is promoted; every pair pinged again within the failover time + two intervals; no process exits; 0 pairs lost`, async () => {
    const prefix = testPrefix("snt");
    const backend = await startMcpTestBackend({ jsonResponse: true });
    const redis = { mode: "sentinel", sentinels: [...sentinel.sentinels], sentinel_name: sentinel.masterName, prefix };
    const config = writeConfig({
      redis,
      keepalive: { interval: `${INTERVAL_MS}ms`, timeout: "1s", concurrency: 200 },
      sessions: { reconcile_interval: "1s", reap_interval: "1h" },
      log: { level: "info" },
      backends: [{ id: "pw", url: backend.url }],
    });
    const programs = [startProgram("scheduler", ["--config", config]), startProgram("worker", ["--config", config]), startProgram("worker", ["--config", config])];
    const fleet = createFleet({ target: { mode: "sentinel", sentinels: [...sentinel.sentinels], name: sentinel.masterName }, prefix, sessions: PAIRS, backendIds: ["pw"] });
    cleanups.push(
      () => backend.stop(),
      () => fleet.close(),
      async () => {
        expect(await stopAll(programs)).toEqual(programs.map(() => 0));
      },
    );
    for (const p of programs) await waitForLog(p, /^(scheduler|worker) started$/, 30_000);
    const res = await fetch(backend.url, {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json, text/event-stream" },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "initialize", params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "sentinel-test", version: "1" } } }),
    });
    const backendSession = res.headers.get("mcp-session-id")!;
    await res.text();
    await fleet.register(() => backendSession);
    await waitFor("every pair pinged once", async () => (await fleet.okAt()).every((t) => t > 0), 30_000, 250);
    await sleep(INTERVAL_MS);

    // Watched until every pair has been pinged after the kill (the bound is asserted on the times
    // seen), with a generous deadline after which a pair not pinged counts as lost.
    let killedAt = Infinity;
    const watching = fleet.watch(2 * INTERVAL_MS + 60_000, 1_000, (seen) => seen.every((list) => list.some((t) => t > killedAt + 200)));
    await sleep(1_000);
    killedAt = Date.now();
    const oldPort = await sentinel.killMaster();
    const failoverMs = await sentinel.waitFailover(oldPort, 30_000);
    const times = await watching;
    const firstAfter = times.map((list) => list.find((t) => t > killedAt + 200));
    const lost = firstAfter.filter((t) => t === undefined).length;
    const worst = Math.max(...firstAfter.map((t) => (t ?? Infinity) - killedAt));
    const repairs = programs[0]!.logs().filter((l) => String(l["msg"]).startsWith("reconcile:")).length;
    console.log(
      `sentinel master SIGKILLed: failover ${failoverMs} ms; every pair pinged again within ${worst} ms of the kill (bound: failover + 2 intervals = ${failoverMs + 2 * INTERVAL_MS} ms); ${lost} pairs lost; ${repairs} reconcile repairs`,
    );
    expect((await sentinel.master()).port).not.toBe(oldPort);
    expect(lost).toBe(0);
    expect(worst).toBeLessThanOrEqual(failoverMs + 2 * INTERVAL_MS + 2_000);
    for (const p of programs) expect(p.child.exitCode).toBeNull();
  }, 240_000);
});
