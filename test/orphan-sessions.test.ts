import { Queue } from "bullmq";
import type { Redis } from "ioredis";
import { afterEach, describe, expect, inject, it } from "vitest";
import { closeRedis, createRedis, createVmcpClient, QUEUE_KEEPALIVE } from "@vmcp-keepalive/shared";
import { expectNoLeakedConnections, flushPrefix, testPrefix, waitFor } from "@vmcp-keepalive/testkit";
import { startProgram, waitForLog, writeConfig, type RunningProcess } from "./helpers/processes.js";

const redisUrl = inject("redisUrl");
const SESSIONS = 100;
const TTL_MS = 4_000;
const REAP_MS = 1_000;

async function countKeys(redis: Redis, pattern: string): Promise<number> {
  let cursor = "0";
  let n = 0;
  do {
    const [next, keys] = await redis.scan(cursor, "MATCH", pattern, "COUNT", 1000);
    cursor = next;
    n += keys.length;
  } while (cursor !== "0");
  return n;
}

// A vMCP replica that dies sends no session.ended: its sessions must still go, by their TTL, with
// nothing left behind but tombstones, however many schedulers reap at once.
describe("orphaned sessions", () => {
  let prefix = "";
  const programs: RunningProcess[] = [];
  let redis: Redis | undefined;
  let queue: Queue | undefined;
  afterEach(async () => {
    for (const p of programs.splice(0)) expect(await p.stop()).toBe(0);
    await queue?.close();
    if (redis) await closeRedis(redis);
    await flushPrefix(redisUrl, prefix);
    await expectNoLeakedConnections(redisUrl, (n) => n.endsWith(`@${prefix}`));
  });

  it(`all job schedulers and state of ${SESSIONS} sessions are gone within TTL + one reaper period, with 2 schedulers running`, async () => {
    prefix = testPrefix("orphans");
    const config = writeConfig({
      redis: { url: redisUrl, prefix },
      keepalive: { interval: "1h", timeout: "5s" },
      sessions: { reap_interval: `${REAP_MS}ms` },
      log: { level: "info" },
      backends: [
        { id: "files", url: "http://127.0.0.1:9/mcp" },
        { id: "browser", url: "http://127.0.0.1:9/mcp" },
      ],
    });
    programs.push(startProgram("scheduler", ["--config", config]), startProgram("scheduler", ["--config", config]));
    for (const p of programs) await waitForLog(p, "scheduler started", 30_000);

    redis = createRedis(redisUrl, "client", `vmk-test@${prefix}`);
    queue = new Queue(QUEUE_KEEPALIVE, { connection: redis, prefix });
    const replica = createVmcpClient({ redisUrl, prefix, replicaId: "doomed-replica" });
    for (let i = 0; i < SESSIONS; i++) {
      const r = await replica.registerSession(`s${i}`, {
        sessionTtlMs: TTL_MS,
        backends: [
          { backendId: "files", backendSessionId: `f-${i}` },
          { backendId: "browser", backendSessionId: `b-${i}` },
        ],
      });
      expect(r.ok).toBe(true);
    }
    // The replica disappears: no session.ended, no more touches.
    await replica.close();
    const lastRegistration = Date.now();
    await waitFor(`${SESSIONS * 2} job schedulers`, async () => (await queue!.getJobSchedulersCount()) === SESSIONS * 2, 30_000, 100);
    expect(await countKeys(redis, `${prefix}:pair:*`)).toBe(SESSIONS * 2);
    const readyAt = Date.now() - lastRegistration;

    await waitFor(
      "every job scheduler and pair gone",
      async () => (await queue!.getJobSchedulersCount()) === 0 && (await countKeys(redis!, `${prefix}:pair:*`)) === 0 && (await redis!.zcard(`${prefix}:sessions`)) === 0,
      TTL_MS + REAP_MS + 30_000,
      100,
    );
    const goneAfter = Date.now() - lastRegistration;
    // Both schedulers reaped (each logs the sessions it ended); together exactly once each.
    const reaped = programs.map((p) => p.logs().filter((l) => l["msg"] === "session expired without session.ended; reaped").length);
    console.log(
      `orphans: schedulers in place ${readyAt} ms after the last registration; all gone ${goneAfter} ms after it (TTL ${TTL_MS} + reap period ${REAP_MS}); reaped per scheduler ${JSON.stringify(reaped)}`,
    );
    expect(reaped.reduce((a, b) => a + b, 0)).toBe(SESSIONS);
    // TTL + one reaper period, plus the time the schedulers took to apply the registrations
    // (each session's TTL starts when its registration is applied) and slack for a loaded machine.
    expect(goneAfter).toBeLessThan(readyAt + TTL_MS + REAP_MS + 3_000);
    // What remains of a session is its tombstone (state=ended, expiring), which blocks a late registration.
    const tomb = await redis.hgetall(`${prefix}:session:s0`);
    expect(tomb).toMatchObject({ state: "ended", endReason: "expired" });
    expect(await redis.pttl(`${prefix}:session:s0`)).toBeGreaterThan(0);
  }, 90_000);
});
