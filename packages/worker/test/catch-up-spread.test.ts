import { inject, describe, expect, it } from "vitest";
import { createPairScheduler } from "@vmcp-keepalive/scheduler/internal";
import { createKeys } from "@vmcp-keepalive/shared";
import { openBackendSession, sleep, waitFor } from "@vmcp-keepalive/testkit";
import { overdueAfterMs } from "../src/tick/keepalive-job.js";
import { closeAfterEach, createHarness, startBackend, type Harness } from "./helpers.js";

const url = inject("redisUrl");
const cleanups: (() => Promise<unknown>)[] = [];
let h: Harness | undefined;
closeAfterEach(url, () => h, cleanups);

/**
 * After a worker outage the ticks that came due during it are spread over the next
 * interval instead of all firing in the first second back; every pair is still called within one
 * interval of the workers' return.
 */
describe("catch-up after a worker outage", () => {
  it("overdue ticks are put back to their slots or dropped for the next regular tick; no burst; every pair pinged within an interval", async () => {
    const PAIRS = 200;
    const INTERVAL = 6_000;
    const OUTAGE = 4_000;
    const backend = await startBackend(cleanups, { jsonResponse: true });
    h = createHarness(url, { keepalive: { interval: `${INTERVAL}ms`, timeout: "1s", concurrency: 32 }, backends: [{ id: "pw", url: backend.url }] });
    const shared = await Promise.all(Array.from({ length: 10 }, () => openBackendSession(backend.url)));
    // Phased job schedulers, exactly as the scheduler upserts them.
    const scheduler = createPairScheduler([h.queue]);
    for (let i = 0; i < PAIRS; i++) {
      const s = shared[i % shared.length]!;
      await h.register(`c${i}`, [{ backendId: "pw", backendSessionId: s.sessionId, protocolVersion: s.protocolVersion }]);
      await scheduler.upsert(`c${i}`, "pw", INTERVAL);
    }
    const first = await h.startWorker("before");
    await waitFor("every pair pinged", async () => backend.count("ping") >= PAIRS, 30_000, 100);
    await sleep(INTERVAL);
    await first.worker.stop();
    const stoppedAt = Date.now();
    await sleep(OUTAGE);
    const second = await h.startWorker("after");
    const backAt = Date.now();
    await sleep(INTERVAL + 1_500);

    const outage = backAt - stoppedAt;
    const after = backend.calls.filter((c) => c.method === "ping" && c.at >= backAt);
    const perSecond = Array.from({ length: Math.floor(INTERVAL / 1_000) }, (_, s) => after.filter((c) => c.at < backAt + (s + 1) * 1_000 && c.at >= backAt + s * 1_000).length);
    const mean = after.filter((c) => c.at < backAt + INTERVAL).length / (INTERVAL / 1_000);
    const metrics = await second.worker.registry.getSingleMetricAsString("keepalive_catch_up_deferred_total");
    const deferred = Number(/keepalive_catch_up_deferred_total\{[^}]*\} (\d+)/.exec(metrics)?.[1] ?? 0);
    const skipped = await second.worker.registry.getSingleMetricAsString("keepalive_skipped_total");
    const superseded = Number(/reason="superseded"\} (\d+)/.exec(skipped)?.[1] ?? 0);
    // Pairs whose tick fell in the outage more than the overdue threshold before the workers came back.
    const eligible = Math.round((PAIRS * (outage - overdueAfterMs(INTERVAL))) / INTERVAL);
    console.log(
      `outage ${outage} ms: ${eligible} pairs overdue by more than ${overdueAfterMs(INTERVAL)} ms; ${deferred} put back, ${superseded} superseded; ` +
        `pings per second after the return ${perSecond.join(", ")} (mean ${mean.toFixed(1)}, busiest ÷ mean ${(Math.max(...perSecond) / mean).toFixed(2)})`,
    );
    // The overdue ticks were spread, not fired at once.
    expect(deferred + superseded).toBeGreaterThanOrEqual(Math.round(eligible * 0.7));
    expect(deferred).toBeGreaterThan(0);
    expect(superseded).toBeGreaterThan(0);
    // Without the spread the first second carries every overdue tick (about eligible + PAIRS / interval / s).
    expect(perSecond[0]!).toBeLessThan(eligible * 0.6 + PAIRS / (INTERVAL / 1_000));
    // Every pair kept alive within one interval of the return.
    const keys = createKeys(h.prefix);
    const pinged = new Set<string>();
    await waitFor(
      "every pair pinged since the return",
      async () => {
        for (let i = 0; i < PAIRS; i++) {
          const ok = await h!.redis.hget(keys.pair(`c${i}`, "pw"), "okAt");
          if (Number(ok) >= backAt) pinged.add(`c${i}`);
        }
        return pinged.size === PAIRS;
      },
      2_000,
      200,
    );
  }, 90_000);
});
