import { afterEach, describe, expect, inject, it } from "vitest";
import { createLogger, parseConfig, UsageError } from "@vmcp-keepalive/runtime";
import { expectNoLeakedConnections, flushPrefix, testPrefix } from "@vmcp-keepalive/testkit";
import { createScheduler, type Scheduler } from "../src/index.js";

const logger = createLogger({ name: "scheduler-http-test", level: "silent" });
const basic = (u: string, p: string) => ({ authorization: `Basic ${Buffer.from(`${u}:${p}`).toString("base64")}` });

describe("scheduler ops HTTP (in process)", () => {
  const redisUrl = inject("redisUrl");
  let scheduler: Scheduler | undefined;
  let prefix = "";
  afterEach(async () => {
    await scheduler?.stop();
    scheduler = undefined;
    await flushPrefix(redisUrl, prefix);
    await expectNoLeakedConnections(redisUrl, (n) => n.endsWith(`@${prefix}`));
  });

  it("serves readiness, metrics and Bull Board behind basic auth; stop() closes the port", async () => {
    prefix = testPrefix("sched-http");
    const config = parseConfig({
      redis: { url: redisUrl, prefix },
      admin: { username: "ops", password: "a-long-enough-secret" },
      backends: [{ id: "b1", url: "http://127.0.0.1:9/mcp" }],
    });
    scheduler = createScheduler({ config, logger, http: { host: "127.0.0.1", port: 0 } });
    expect(scheduler.http).toBeUndefined();
    await scheduler.start();
    const url = scheduler.http!.url;
    expect(await scheduler.readiness()).toEqual({ ready: true, checks: { redis: true, consumer: true } });
    expect((await fetch(`${url}/readyz`)).status).toBe(200);
    const metrics = await (await fetch(`${url}/metrics`)).text();
    for (const name of [
      "vmk_registration_messages_total",
      "vmk_registration_rejected_total",
      "vmk_queue_jobs",
      "vmk_scheduled_pairs",
      "vmk_registered_sessions",
      "vmk_breaker_state",
      "vmk_redis_up",
    ]) {
      expect(metrics).toContain(`# TYPE ${name} `);
    }
    expect(metrics).toContain('vmk_breaker_state{backend="b1",state="closed"} 1');

    expect((await fetch(`${url}/admin/queues`)).status).toBe(401);
    expect((await fetch(`${url}/admin/queues/api/queues`, { headers: basic("ops", "wrong-password-123") })).status).toBe(401);
    expect((await fetch(`${url}/admin/queues/api/queues`, { headers: basic("admin", "a-long-enough-secret") })).status).toBe(401);
    const page = await fetch(`${url}/admin/queues`, { headers: basic("ops", "a-long-enough-secret") });
    expect(page.status).toBe(200);
    expect(await page.text()).toContain("<!DOCTYPE html>");
    const api = await fetch(`${url}/admin/queues/api/queues`, { headers: basic("ops", "a-long-enough-secret") });
    expect(api.status).toBe(200);
    const names = ((await api.json()) as { queues: { name: string }[] }).queues.map((q) => q.name).sort();
    expect(names).toEqual(["keepalive", "vmcp-events", "vmcp-sessions"]);

    await scheduler.stop();
    expect(await scheduler.readiness()).toMatchObject({ ready: false });
    await expect(fetch(`${url}/healthz`)).rejects.toThrow();
  });

  it("starts no HTTP server unless asked (tests and benchmarks embed several)", async () => {
    prefix = testPrefix("sched-nohttp");
    scheduler = createScheduler({ config: parseConfig({ redis: { url: redisUrl, prefix } }), logger });
    await scheduler.start();
    expect(scheduler.http).toBeUndefined();
    expect((await scheduler.readiness()).ready).toBe(true);
  });

  it("refuses an unauthenticated Bull Board beyond loopback, before opening any connection", () => {
    prefix = testPrefix("sched-refuse");
    const config = parseConfig({ redis: { url: redisUrl, prefix } });
    expect(() => createScheduler({ config, logger, http: { host: "0.0.0.0", port: 0 } })).toThrow(UsageError);
    expect(() => createScheduler({ config, logger, http: { host: "0.0.0.0", port: 0 } })).toThrow(/admin\.password: required/);
  });
});
