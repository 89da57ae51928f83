import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { afterAll, describe, expect, it } from "vitest";
import { createSessionPublisher } from "@vmcp-keepalive/shared";
import { openBackendSession, sleep, startEmbeddedRedis, startMcpTestBackend, waitFor, type EmbeddedRedis, type McpTestBackend } from "@vmcp-keepalive/testkit";
import { isReady } from "./helpers/ops.js";
import { httpUrlOf, startProgram, waitForLog, writeConfig, type RunningProcess } from "./helpers/processes.js";

/**
 * Redis (append-only) stopped for 10 s and restarted on the same port
 * with the same data directory. No process exits, /readyz is false during the outage and true
 * after, nothing crashes on an unhandled rejection, and every registered pair is pinged again
 * within two intervals of Redis coming back.
 */
describe("Redis outage of 10 s", () => {
  const INTERVAL_MS = 4_000;
  const SESSIONS = 10;
  const dir = mkdtempSync(join(tmpdir(), "vmk-outage-"));
  let redis: EmbeddedRedis | undefined;
  let backend: McpTestBackend | undefined;
  const procs: RunningProcess[] = [];

  afterAll(async () => {
    await Promise.all(procs.map((p) => p.stop()));
    await backend?.stop();
    await redis?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("keeps every process up, flips /readyz, and resumes every pair on its own", async () => {
    redis = await startEmbeddedRedis({ appendOnly: true, dir });
    const port = redis.port;
    backend = await startMcpTestBackend();
    const config = writeConfig({
      redis: { url: redis.url, prefix: "outage" },
      keepalive: { interval: INTERVAL_MS, timeout: "1s" },
      backends: [{ id: "b", url: backend.url }],
    });
    const scheduler = startProgram("scheduler", ["--config", config]);
    const worker = startProgram("worker", ["--config", config]);
    procs.push(scheduler, worker);
    const urls = await Promise.all([httpUrlOf(scheduler), httpUrlOf(worker)]);
    await waitForLog(scheduler, "scheduler started");

    const conn = new Redis(redis.url, { connectionName: "harness" });
    const publisher = createSessionPublisher({ connection: conn, prefix: "outage", replicaId: "outage-test" });
    const backendSessions: string[] = [];
    for (let i = 0; i < SESSIONS; i++) {
      const s = await openBackendSession(backend.url);
      backendSessions.push(s.sessionId);
      await publisher.register(`s${i}`, {
        sessionTtlMs: 600_000,
        backends: [{ backendId: "b", backendSessionId: s.sessionId, protocolVersion: s.protocolVersion }],
      });
    }
    await publisher.close();
    conn.disconnect();
    const pb = backend;
    await waitFor("every pair pinged once", () => backendSessions.every((sid) => pb.count("ping", sid) >= 1), INTERVAL_MS * 3, 100);
    for (const u of urls) await waitFor(`${u} ready`, () => isReady(u), 10_000);

    // Outage: 10 s without Redis (appendfsync everysec: give it a second to write the AOF).
    await sleep(1_100);
    await redis.stop();
    const downAt = Date.now();
    for (const u of urls) await waitFor(`${u} not ready during the outage`, async () => !(await isReady(u)), 8_000, 100);
    const stillDown = await Promise.all(urls.map((u) => isReady(u)));
    expect(stillDown).toEqual([false, false]);
    await sleep(Math.max(0, 10_000 - (Date.now() - downAt)));
    expect(scheduler.child.exitCode).toBeNull();
    expect(worker.child.exitCode).toBeNull();
    expect(await Promise.all(urls.map((u) => isReady(u)))).toEqual([false, false]);

    redis = await startEmbeddedRedis({ appendOnly: true, dir, port });
    const upAt = Date.now();
    for (const u of urls) await waitFor(`${u} ready after the outage`, () => isReady(u), 20_000, 100);
    const readyMs = Date.now() - upAt;

    // Every registered pair (kept in the AOF) is pinged again within two intervals.
    await waitFor(
      "every pair pinged after Redis came back",
      () => backendSessions.every((sid) => pb.calls.some((c) => c.method === "ping" && c.sessionId === sid && c.at > upAt)),
      INTERVAL_MS * 2 + 2_000,
      100,
    );
    const lastFirstPing = Math.max(...backendSessions.map((sid) => pb.calls.find((c) => c.method === "ping" && c.sessionId === sid && c.at > upAt)!.at)) - upAt;
    expect(lastFirstPing).toBeLessThanOrEqual(INTERVAL_MS * 2);

    expect(scheduler.child.exitCode).toBeNull();
    expect(worker.child.exitCode).toBeNull();
    for (const p of [scheduler, worker]) {
      expect(p.output()).not.toMatch(/unhandled rejection|uncaught/i);
    }
    const errorLines = [scheduler, worker].map((p) => p.logs().filter((l) => l["level"] === "error" || l["level"] === "warn").length);
    process.stdout.write(
      `[outage] ready again ${readyMs} ms after restart; every pair pinged within ${lastFirstPing} ms; warn/error lines during the run: scheduler ${errorLines[0]}, worker ${errorLines[1]}\n`,
    );
    expect(await scheduler.stop()).toBe(0);
    expect(await worker.stop()).toBe(0);
  });
});
