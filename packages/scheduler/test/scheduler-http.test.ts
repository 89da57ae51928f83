import { request } from "node:http";
import { afterEach, describe, expect, inject, it } from "vitest";
import { createLogger, parseConfig, UsageError } from "@vmcp-keepalive/runtime";
import { closeRedis, createRedis, createSessionPublisher } from "@vmcp-keepalive/shared";
import { expectNoLeakedConnections, flushPrefix, testPrefix, waitFor } from "@vmcp-keepalive/testkit";
import { createScheduler, type Scheduler } from "../src/index.js";

const logger = createLogger({ name: "scheduler-http-test", level: "silent" });
/** An HTTP request with a chosen Host header (fetch does not let a caller set it). */
function requestWithHost(port: number, method: string, path: string, host: string): Promise<{ status: number }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, method, path, headers: { host } }, (res) => {
      res.resume();
      res.on("end", () => resolve({ status: res.statusCode ?? 0 }));
    });
    req.on("error", reject);
    req.end();
  });
}
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
    expect(await scheduler.readiness()).toEqual({ ready: true, checks: { redis: true, consumer: true, stream: true } });
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

  it("with keepalive shards, Bull Board lists every shard's queue and the gauges and the CLI's pair list cover every shard", async () => {
    prefix = testPrefix("sched-shards");
    const config = parseConfig({
      redis: { url: redisUrl, prefix },
      keepalive: { shards: 4, interval: "1h", timeout: "1s" },
      admin: { username: "ops", password: "a-long-enough-secret" },
      backends: [{ id: "b1", url: "http://127.0.0.1:9/mcp" }],
    });
    scheduler = createScheduler({ config, logger, http: { host: "127.0.0.1", port: 0 } });
    await scheduler.start();
    const url = scheduler.http!.url;
    const keys = scheduler.store.keys;
    const redis = createRedis(redisUrl, "client", `vmk-test@${prefix}`);
    const publisher = createSessionPublisher({ connection: redis, queue: keys.sessionsQueue, replicaId: "r1" });
    const sessions = Array.from({ length: 40 }, (_, i) => `shard-s${i}`);
    expect(new Set(sessions.map((s) => keys.shardOf(s))).size).toBe(4);
    for (const s of sessions) await publisher.register(s, { sessionTtlMs: 600_000, backends: [{ backendId: "b1", backendSessionId: `bs-${s}` }] });
    await publisher.close();
    await closeRedis(redis);
    await waitFor("every pair scheduled", async () => (await Promise.all(scheduler!.keepaliveQueues.map((q) => q.getJobSchedulersCount()))).reduce((a, b) => a + b, 0) === 40);
    // Each pair's job scheduler is in its session's shard queue.
    for (const [shard, q] of scheduler.keepaliveQueues.entries()) {
      const ids = (await q.getJobSchedulers()).map((j) => String(j.key));
      expect(ids.length).toBeGreaterThan(0);
      for (const id of ids) expect(keys.shardOf(id.split(":")[1]!)).toBe(shard);
    }
    const metrics = await (await fetch(`${url}/metrics`)).text();
    expect(metrics).toContain("vmk_scheduled_pairs 40");
    expect(metrics).toContain("vmk_registered_sessions 40");
    for (let n = 0; n < 4; n++) expect(metrics).toContain(`vmk_queue_jobs{queue="keepalive-${n}",state="delayed"}`);
    const api = await fetch(`${url}/admin/queues/api/queues`, { headers: basic("ops", "a-long-enough-secret") });
    const names = ((await api.json()) as { queues: { name: string }[] }).queues.map((q) => q.name).sort();
    expect(names).toEqual(["keepalive-0", "keepalive-1", "keepalive-2", "keepalive-3", "vmcp-events", "vmcp-sessions"]);
    // What `vmcp-keepalive status` lists: every pair of every shard.
    expect((await scheduler.store.listPairs()).map((p) => p.sessionId).sort()).toEqual([...sessions].sort());
  });

  it("starts no HTTP server unless asked (tests and benchmarks embed several)", async () => {
    prefix = testPrefix("sched-nohttp");
    scheduler = createScheduler({ config: parseConfig({ redis: { url: redisUrl, prefix } }), logger });
    await scheduler.start();
    expect(scheduler.http).toBeUndefined();
    expect((await scheduler.readiness()).ready).toBe(true);
  });

  it("without a password, answers Bull Board only to a loopback Host: a rebinding page cannot pause a queue", async () => {
    prefix = testPrefix("sched-host");
    scheduler = createScheduler({ config: parseConfig({ redis: { url: redisUrl, prefix } }), logger, http: { host: "127.0.0.1", port: 0 } });
    await scheduler.start();
    const port = scheduler.http!.port;
    // The request a DNS-rebinding page makes: to 127.0.0.1, but with its own name as Host.
    const attack = await requestWithHost(port, "PUT", "/admin/queues/api/queues/keepalive/pause", "attacker.example");
    expect(attack.status).toBe(403);
    expect(await scheduler.keepaliveQueues[0]!.isPaused()).toBe(false);
    expect((await requestWithHost(port, "GET", "/admin/queues", `attacker.example:${port}`)).status).toBe(403);
    for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, "localhost"]) expect((await requestWithHost(port, "GET", "/admin/queues", host)).status).toBe(200);
    // Metrics and health stay reachable whatever the Host (Prometheus scrapes by address).
    expect((await requestWithHost(port, "GET", "/healthz", "attacker.example")).status).toBe(200);
  });

  it("refuses an unauthenticated Bull Board beyond loopback, before opening any connection", () => {
    prefix = testPrefix("sched-refuse");
    const config = parseConfig({ redis: { url: redisUrl, prefix } });
    expect(() => createScheduler({ config, logger, http: { host: "0.0.0.0", port: 0 } })).toThrow(UsageError);
    expect(() => createScheduler({ config, logger, http: { host: "0.0.0.0", port: 0 } })).toThrow(/admin\.password: required/);
  });
});
