import { afterEach, describe, expect, inject, it } from "vitest";
import { createVmcpClient, type VmcpClient } from "@vmcp-keepalive/shared";
import {
  expectNoLeakedConnections,
  flushPrefix,
  openBackendSession,
  startEmbeddedRedis,
  startMcpTestBackend,
  testPrefix,
  waitFor,
  type EmbeddedRedis,
  type McpTestBackend,
} from "@vmcp-keepalive/testkit";
import { startSchedulerAndWorker, writeConfig, type RunningProcess } from "./helpers/processes.js";

const redisUrl = inject("redisUrl");
const UNAVAILABLE = "pair lock unavailable (no quorum); tick skipped";

// With lock.redis_urls the pair lock is a Redlock quorum over independent redis-server nodes: it
// survives a minority of nodes down, and without a quorum ticks are skipped, never run unlocked.
describe("Redlock quorum over lock.redis_urls", () => {
  let prefix = "";
  const programs: RunningProcess[] = [];
  const nodes: EmbeddedRedis[] = [];
  let backend: McpTestBackend | undefined;
  let client: VmcpClient | undefined;
  afterEach(async () => {
    await client?.close();
    for (const p of programs.splice(0)) expect(await p.stop()).toBe(0);
    for (const n of nodes.splice(0)) await n.stop();
    await backend?.stop();
    await flushPrefix(redisUrl, prefix);
    await expectNoLeakedConnections(redisUrl, (n) => n.endsWith(`@${prefix}`));
  });

  it("keepalives continue with one node down, are skipped as lock_unavailable with two down (nothing crashes), and resume when a node returns", async () => {
    prefix = testPrefix("quorum");
    for (let i = 0; i < 3; i++) nodes.push(await startEmbeddedRedis());
    backend = await startMcpTestBackend();
    const config = writeConfig({
      redis: { url: redisUrl, prefix },
      lock: { redis_urls: nodes.map((n) => n.url) },
      keepalive: { interval: "1s", timeout: "900ms" },
      log: { level: "info" },
      backends: [{ id: "b1", url: backend.url }],
    });
    const { scheduler, worker } = await startSchedulerAndWorker(config);
    programs.push(scheduler, worker);

    client = createVmcpClient({ redisUrl, prefix, replicaId: "r1", lockRedisUrls: nodes.map((n) => n.url) });
    for (let i = 0; i < 3; i++) {
      const s = await openBackendSession(backend.url);
      await client.registerSession(`s${i}`, {
        sessionTtlMs: 600_000,
        backends: [{ backendId: "b1", backendSessionId: s.sessionId, protocolVersion: s.protocolVersion }],
      });
    }
    const pings = () => backend!.count("ping");
    await waitFor("keepalives with 3 lock nodes", () => pings() >= 3, 20_000);

    // One node down: 2 of 3 is still a quorum.
    await nodes[0]!.stop();
    let mark = pings();
    await waitFor("keepalives with 1 of 3 lock nodes down", () => pings() >= mark + 6, 20_000);
    const unavailableWithOneDown = worker.logs().filter((l) => l["msg"] === UNAVAILABLE).length;

    // Two nodes down: no quorum. Ticks are skipped as lock_unavailable; no ping reaches the backend.
    await nodes[1]!.stop();
    const failures = () => worker.logs().filter((l) => l["msg"] === "keepalive failed");
    const before = worker.logs().filter((l) => l["msg"] === UNAVAILABLE).length;
    await waitFor("ticks skipped as lock_unavailable", () => worker.logs().filter((l) => l["msg"] === UNAVAILABLE).length >= before + 6, 20_000);
    mark = pings();
    const failuresMark = failures().length;
    await waitFor("more skipped ticks", () => worker.logs().filter((l) => l["msg"] === UNAVAILABLE).length >= before + 12, 20_000);
    expect(pings()).toBe(mark);
    // A tick skipped for lock_unavailable is not a backend failure.
    expect(failures().length).toBe(failuresMark);
    expect(worker.child.exitCode).toBeNull();
    expect(scheduler.child.exitCode).toBeNull();
    // A re-initialize meanwhile still works and says the lock was unavailable.
    const fresh = await openBackendSession(backend.url);
    const r = await client.reinitializeBackend("s0", "b1", async () => ({ backendSessionId: fresh.sessionId, protocolVersion: fresh.protocolVersion }));
    expect(r).toMatchObject({ lock: "unavailable", state: "written" });

    // A node returns on the same port: quorum again, keepalives resume (also on the new session).
    nodes[1] = await startEmbeddedRedis({ port: nodes[1]!.port });
    mark = pings();
    await waitFor("keepalives resume", () => pings() >= mark + 6, 30_000);
    await waitFor("the re-initialized session is kept alive", () => backend!.count("ping", fresh.sessionId) >= 1, 20_000);
    const skippedLogs = worker.logs().filter((l) => l["msg"] === UNAVAILABLE);
    console.log(
      `lock quorum: lock_unavailable skips with 1 node down: ${unavailableWithOneDown}; with 2 down: ${skippedLogs.length - before}; pings total ${pings()}; backend failures ${JSON.stringify(failures().map((l) => [l["reason"], l["detail"]]))}`,
    );
    expect(unavailableWithOneDown).toBe(0);
    // Backend failures on this loaded machine can only be slow answers, never lock problems.
    expect(
      failures()
        .map((l) => l["reason"])
        .filter((r) => r !== "timeout"),
    ).toEqual([]);
  }, 120_000);
});
