import { afterEach, describe, expect, inject, it } from "vitest";
import { createLogger, parseConfig } from "@vmcp-keepalive/runtime";
import { expectNoLeakedConnections, flushPrefix, testPrefix } from "@vmcp-keepalive/testkit";
import { createWorker, type KeepaliveWorker } from "../src/index.js";

const logger = createLogger({ name: "worker-http-test", level: "silent" });

describe("worker ops HTTP (in process)", () => {
  const redisUrl = inject("redisUrl");
  let worker: KeepaliveWorker | undefined;
  const prefix = testPrefix("worker-http");
  afterEach(async () => {
    await worker?.stop();
    worker = undefined;
    await flushPrefix(redisUrl, prefix);
    await expectNoLeakedConnections(redisUrl, (n) => n.endsWith(`@${prefix}`));
  });

  it("serves /healthz, /readyz and the keepalive metrics on an ephemeral port; stop() closes it", async () => {
    const config = parseConfig({ redis: { url: redisUrl, prefix }, backends: [{ id: "b1", url: "http://127.0.0.1:9/mcp" }] });
    worker = createWorker({ config, logger, http: { host: "127.0.0.1", port: 0 } });
    await worker.start();
    const url = worker.http!.url;
    expect((await fetch(`${url}/healthz`)).status).toBe(200);
    const ready = await fetch(`${url}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ ready: true, checks: { redis: true, consumer: true } });
    const metrics = await (await fetch(`${url}/metrics`)).text();
    for (const name of [
      "keepalive_attempt_count",
      "keepalive_success_count",
      "keepalive_failure_count",
      "keepalive_latency_ms",
      "keepalive_auto_disabled_total",
      "keepalive_skipped_total",
      "keepalive_schedule_lag_seconds",
      "process_cpu_user_seconds_total",
    ]) {
      expect(metrics).toContain(`# TYPE ${name} `);
    }
    // Bull Board lives on the scheduler only.
    expect((await fetch(`${url}/admin/queues`)).status).toBe(404);
    await worker.stop();
    expect((await worker.readiness()).ready).toBe(false);
    await expect(fetch(`${url}/healthz`)).rejects.toThrow();
  });
});
