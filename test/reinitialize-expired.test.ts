import { Queue } from "bullmq";
import type { Redis } from "ioredis";
import { afterEach, describe, expect, inject, it } from "vitest";
import { closeRedis, createKeys, createRedis, createVmcpClient, QUEUE_KEEPALIVE, schedulerId, type VmcpClient } from "@vmcp-keepalive/shared";
import { createSessionStore } from "@vmcp-keepalive/scheduler";
import { expectNoLeakedConnections, flushPrefix, openBackendSession, startMcpTestBackend, testPrefix, waitFor, type McpTestBackend } from "@vmcp-keepalive/testkit";
import { startSchedulerAndWorker, writeConfig, type RunningProcess } from "./helpers/processes.js";

const redisUrl = inject("redisUrl");

// The full loop with real programs: backend session lost → worker marks the pair expired and
// removes its job scheduler → the vMCP re-initializes through the client → the scheduler restores
// the job scheduler → keepalives continue on the new backend session.
describe("re-initializing an expired pair", () => {
  let prefix = "";
  const programs: RunningProcess[] = [];
  let backend: McpTestBackend | undefined;
  let client: VmcpClient | undefined;
  let redis: Redis | undefined;
  let queue: Queue | undefined;
  afterEach(async () => {
    await client?.close();
    for (const p of programs.splice(0)) expect(await p.stop()).toBe(0);
    await queue?.close();
    if (redis) await closeRedis(redis);
    await backend?.stop();
    await flushPrefix(redisUrl, prefix);
    await expectNoLeakedConnections(redisUrl, (n) => n.endsWith(`@${prefix}`));
  });

  it("restores keepalive on the new backend session after a 404", async () => {
    prefix = testPrefix("reinit");
    backend = await startMcpTestBackend();
    const config = writeConfig({
      redis: { url: redisUrl, prefix },
      keepalive: { interval: "1s", timeout: "500ms" },
      log: { level: "info" },
      backends: [{ id: "b1", url: backend.url }],
    });
    const { scheduler, worker } = await startSchedulerAndWorker(config);
    programs.push(scheduler, worker);
    redis = createRedis(redisUrl, "client", `vmk-test@${prefix}`);
    queue = new Queue(QUEUE_KEEPALIVE, { connection: redis, prefix });
    const store = createSessionStore(redis, createKeys(prefix));
    client = createVmcpClient({ redisUrl, prefix, replicaId: "r1", lockTimeoutMs: 2_500 });

    const old = await openBackendSession(backend.url);
    await client.registerSession("s1", {
      sessionTtlMs: 600_000,
      backends: [{ backendId: "b1", backendSessionId: old.sessionId, protocolVersion: old.protocolVersion }],
    });
    await waitFor("a keepalive on the first session", () => backend!.count("ping", old.sessionId) >= 1, 20_000);

    // The backend drops the session (restart, idle TTL...): the next keepalive gets 404.
    const del = await fetch(backend.url, { method: "DELETE", headers: { "mcp-session-id": old.sessionId, "mcp-protocol-version": old.protocolVersion } });
    expect(del.status).toBe(200);
    await waitFor("pair expired", async () => (await store.readPair("s1", "b1"))?.status === "expired", 20_000);
    await waitFor("job scheduler removed", async () => !(await queue!.getJobScheduler(schedulerId("s1", "b1"))), 20_000);

    let fresh = old;
    const result = await client.reinitializeBackend("s1", "b1", async () => {
      fresh = await openBackendSession(backend!.url);
      return { backendSessionId: fresh.sessionId, protocolVersion: fresh.protocolVersion };
    });
    expect(result).toMatchObject({ lock: "held", state: "written", schedulerRestoreRequested: true });
    await waitFor("job scheduler restored", () => queue!.getJobScheduler(schedulerId("s1", "b1")), 20_000);
    await waitFor("keepalives on the new session", () => backend!.count("ping", fresh.sessionId) >= 2, 20_000);
    expect(await store.readPair("s1", "b1")).toMatchObject({ status: "active", backendSessionId: fresh.sessionId, lastOutcome: "success" });
  }, 90_000);
});
