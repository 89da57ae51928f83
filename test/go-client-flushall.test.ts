import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createKeys, createRedis } from "@vmcp-keepalive/shared";
import { sleep, startEmbeddedRedis, startMcpTestBackend, testPrefix, waitFor } from "@vmcp-keepalive/testkit";
import { buildGoDriver, pairsPresent, pingLog, startGoDriver } from "./helpers/go-driver.js";
import { startSchedulerAndWorker, stopAll, writeConfig } from "./helpers/processes.js";

/*
 * The Go client's soft state on a standalone Redis that forgets everything (FLUSHALL): a Go vMCP
 * registers its sessions again every refresh interval, so each live one is applied and kept
 * alive again within one refresh; sessions it ended stay ended. The TypeScript client's twin is
 * flushall.test.ts.
 *
 * 300 pairs at a 2 s keepalive interval (150 keepalives/s), refreshes every 4 s (75
 * registrations/s on the ingress stream): a load two shared cores carry with room to spare.
 */
const SESSIONS = 300;
const ENDED = 30;
const INTERVAL_MS = 2_000;
const REFRESH_MS = 4_000;

let driverBuild: ReturnType<typeof buildGoDriver>;
beforeAll(() => {
  driverBuild = buildGoDriver();
}, 200_000);
afterAll(() => driverBuild?.remove());

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

describe("Go client soft state", () => {
  it(`after a FLUSHALL, every live session of a Go vMCP (${SESSIONS - ENDED}) is registered and pinged again within one refresh interval; the ${ENDED} it ended stay ended`, async () => {
    // A Redis of its own: FLUSHALL would wipe the other tests' keys on the run's shared one.
    const redisServer = await startEmbeddedRedis();
    cleanups.push(() => redisServer.stop());
    const backend = await startMcpTestBackend({ jsonResponse: true });
    cleanups.push(() => backend.stop());
    const prefix = testPrefix("goflush");
    const config = writeConfig({
      redis: { url: redisServer.url, prefix },
      keepalive: { interval: `${INTERVAL_MS}ms`, timeout: "1s", concurrency: 100 },
      log: { level: "info" },
      backends: [{ id: "b1", url: backend.url }],
    });
    const { scheduler, worker } = await startSchedulerAndWorker(config);
    cleanups.push(async () => expect(await stopAll([scheduler, worker])).toEqual([0, 0]));
    const redis = createRedis(redisServer.url, "client", "vmk-test-go-flush");
    cleanups.push(() => redis.quit());
    const keys = createKeys(prefix);

    const driver = startGoDriver(driverBuild.binary, {
      VMK_E2E_REDIS: redisServer.url,
      VMK_E2E_PREFIX: prefix,
      VMK_E2E_BACKEND: backend.url,
      VMK_E2E_SESSION_COUNT: String(SESSIONS),
      VMK_E2E_SESSION_PREFIX: "f",
      VMK_E2E_CONCURRENCY: "32",
      VMK_E2E_REFRESH_INTERVAL: `${REFRESH_MS}ms`,
    });
    cleanups.push(async () => {
      const code = await driver.stop();
      if (code !== 0) console.log(driver.stderr());
      expect(code).toBe(0);
    });
    const registered = await driver.line("registered", 60_000);
    expect(registered["failed"]).toBe(0);
    const backendSessionOf = registered["sessions"] as Record<string, string>;
    const ids = Object.keys(backendSessionOf);
    expect(ids).toHaveLength(SESSIONS);
    const pings = pingLog(backend);
    await waitFor("every pair pinged", () => ids.every((id) => pings.pingedSince(backendSessionOf[id]!, 0)), 60_000, 250);

    const ended = ids.slice(0, ENDED);
    const live = ids.slice(ENDED);
    await driver.request(`end ${ended.join(" ")}`, "ended");
    const repeat = `${keys.keepaliveQueue(0).prefix}:${keys.keepaliveQueue(0).name}:repeat`;
    await waitFor("the ended sessions' job schedulers removed", async () => (await redis.zcard(repeat)) === live.length, 20_000, 100);
    // A keepalive already under way when its pair went.
    await sleep(1_500);

    await redis.flushall();
    const flushedAt = Date.now();
    const appliedAt = await waitFor(
      "every live pair registered again",
      async () => ((await pairsPresent(redis, keys, live, "b1")).every(Boolean) ? Date.now() : undefined),
      3 * REFRESH_MS + 10_000,
      50,
    );
    const pingedAt = await waitFor(
      "every live pair pinged again",
      () => (live.every((id) => pings.pingedSince(backendSessionOf[id]!, flushedAt)) ? Date.now() : undefined),
      3 * REFRESH_MS + 10_000,
      50,
    );
    // One more interval: no tick of an ended session was left to fire.
    await sleep(INTERVAL_MS);
    const endedPinged = ended.filter((id) => pings.pingedSince(backendSessionOf[id]!, flushedAt)).length;
    const endedPairs = (await pairsPresent(redis, keys, ended, "b1")).filter(Boolean).length;
    const stats = await driver.request("stats", "stats");
    console.log(
      `Go FLUSHALL: all ${live.length} live pairs registered again ${appliedAt - flushedAt} ms and pinged again ${pingedAt - flushedAt} ms after the flush ` +
        `(refresh ${REFRESH_MS} ms ±10 %, interval ${INTERVAL_MS} ms); ended: ${endedPairs} pairs, ${endedPinged} pinged since; driver ${JSON.stringify(stats)}`,
    );
    // A refresh is due within 1.1 × its interval; applying it takes the scheduler well under a
    // second; the pair's first keepalive then comes within one keepalive interval.
    expect(appliedAt - flushedAt).toBeLessThanOrEqual(REFRESH_MS * 1.1 + 1_000);
    expect(pingedAt - flushedAt).toBeLessThanOrEqual(REFRESH_MS * 1.1 + INTERVAL_MS + 1_000);
    expect(await redis.zcard(repeat)).toBe(live.length);
    expect(endedPairs).toBe(0);
    expect(endedPinged).toBe(0);
    expect(stats).toMatchObject({ publishFailures: 0, backgroundErrors: 0 });
    expect(stats["refreshes"]).toBeGreaterThanOrEqual(live.length);
  }, 120_000);
});
