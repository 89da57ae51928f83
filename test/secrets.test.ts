import { Queue } from "bullmq";
import { Redis } from "ioredis";
import { afterAll, describe, expect, inject, it } from "vitest";
import { createSessionPublisher, QUEUE_EVENTS, QUEUE_KEEPALIVE, QUEUE_SESSIONS } from "@vmcp-keepalive/shared";
import { flushPrefix, openBackendSession, startMcpTestBackend, testPrefix, waitFor, type McpTestBackend } from "@vmcp-keepalive/testkit";
import { get } from "./helpers/ops.js";
import { httpUrlOf, runCli, startProgram, writeConfig, type RunningProcess } from "./helpers/processes.js";
import { dumpRedis } from "./helpers/redis-dump.js";

/**
 * A secret planted in a backend header through `${ENV}` reaches the
 * backend (keepalives succeed only with it) and appears nowhere else: not in any log line of the
 * scheduler or worker (at trace level, through successes and failures), not in job data, not in
 * any Redis key or value, not on /metrics, /readyz or the status command.
 */
describe("backend credentials never leak", () => {
  const redisUrl = inject("redisUrl");
  const prefix = testPrefix("ops-secret");
  const SECRET = `planted-${Math.random().toString(36).slice(2)}-s3cr3t`;
  const procs: RunningProcess[] = [];
  let backend: McpTestBackend | undefined;
  const redis = new Redis(redisUrl, { connectionName: "harness" });

  afterAll(async () => {
    await Promise.all(procs.map((p) => p.stop()));
    await backend?.stop();
    await flushPrefix(redisUrl, prefix);
    redis.disconnect();
  });

  it("appears in no log, job, Redis value or endpoint", async () => {
    backend = await startMcpTestBackend({ requireHeader: { name: "authorization", value: `Bearer ${SECRET}` } });
    const env = { VMK_PLANTED_TOKEN: SECRET };
    const config = writeConfig({
      redis: { url: redisUrl, prefix },
      keepalive: { interval: "2s", timeout: "1s" },
      log: { level: "trace" },
      // Independent of the circuit breaker: this test is about failures being logged safely.
      breaker: { failure_threshold: 1000 },
      backends: [{ id: "guarded", url: backend.url, headers: { Authorization: "Bearer ${VMK_PLANTED_TOKEN}", "X-Api-Key": "${VMK_PLANTED_TOKEN}" } }],
    });
    const scheduler = startProgram("scheduler", ["--config", config], env);
    const worker = startProgram("worker", ["--config", config], env);
    procs.push(scheduler, worker);
    const [schedulerUrl, workerUrl] = await Promise.all([httpUrlOf(scheduler), httpUrlOf(worker)]);

    // Sessions are opened with the credential (the backend requires it on every request).
    const sessions = [];
    for (let i = 0; i < 3; i++) {
      sessions.push(await openBackendSession(backend.url, { authorization: `Bearer ${SECRET}` }));
    }
    const publisher = createSessionPublisher({ connection: redis, prefix, replicaId: "secret-test" });
    for (const [i, s] of sessions.entries()) {
      await publisher.register(`s${i}`, {
        sessionTtlMs: 600_000,
        backends: [{ backendId: "guarded", backendSessionId: s.sessionId, protocolVersion: s.protocolVersion }],
      });
    }
    // A rejected message too (its failure reason lands in Redis and the logs).
    await publisher.publish({
      type: "session.registered",
      sessionId: "bad",
      replicaId: "secret-test",
      occurredAt: new Date().toISOString(),
      sequence: 1,
      sessionTtlMs: 60_000,
      backends: [{ backendId: "nope", backendSessionId: "x" }],
    });
    await publisher.close();

    const b = backend;
    // Keepalives succeed: the worker sent the header (the backend answers 401 without it).
    await waitFor("authorized pings", () => b.calls.filter((c) => c.method === "ping" && c.status === undefined).length >= 6, 20_000, 100);
    // Failures too: logged with their detail.
    b.mode = "http_503";
    await waitFor("failed pings", () => b.calls.filter((c) => c.method === "ping" && c.status === 503).length >= 3, 20_000, 100);
    b.mode = "ok";

    const texts: Record<string, string> = {
      schedulerLogs: scheduler.output(),
      workerLogs: worker.output(),
      redis: await dumpRedis(redis),
      schedulerMetrics: (await get(`${schedulerUrl}/metrics`)).body,
      workerMetrics: (await get(`${workerUrl}/metrics`)).body,
      readyz: (await get(`${schedulerUrl}/readyz`)).body + (await get(`${workerUrl}/readyz`)).body,
      status: (await runCli(["status", "--json", "--config", config], env)).stdout,
    };
    // Job data of every queue, read through BullMQ as Bull Board shows it.
    for (const name of [QUEUE_SESSIONS, QUEUE_KEEPALIVE, QUEUE_EVENTS]) {
      const q = new Queue(name, { connection: redis, prefix });
      const jobs = await q.getJobs(["waiting", "delayed", "active", "completed", "failed"], 0, -1);
      texts[`jobs:${name}`] = JSON.stringify(jobs.map((j) => ({ data: j.data, opts: j.opts, returnvalue: j.returnvalue, failedReason: j.failedReason })));
      await q.close();
    }
    // The dump is not empty: it holds the pairs, the job schedulers, finished keepalive jobs and logs.
    expect(texts["redis"]).toContain(`${prefix}:pair:s0:guarded`);
    expect(texts["jobs:keepalive"]).toContain("success");
    // Logs are JSON lines with the ids and the reason as fields.
    const failed = worker.logs().find((l) => l["msg"] === "keepalive failed");
    expect(failed).toMatchObject({ level: "info", backendId: "guarded", reason: "http_5xx" });
    expect(String(failed?.["sessionId"])).toMatch(/^s\d$/);
    const rejected = scheduler.logs().find((l) => l["msg"] === "registration message rejected");
    expect(rejected).toMatchObject({ level: "warn", reason: "unknown_backend" });
    for (const [where, text] of Object.entries(texts)) {
      expect(text.includes(SECRET), `the planted secret appears in ${where}`).toBe(false);
    }
    process.stdout.write(`[secret] searched ${Object.values(texts).reduce((n, t) => n + t.length, 0)} characters in ${Object.keys(texts).length} places\n`);
  });
});
