import { afterEach, describe, expect, inject, it } from "vitest";
import { createLogger, parseConfig } from "@vmcp-keepalive/runtime";
import { createScheduler, type Scheduler } from "@vmcp-keepalive/scheduler";
import { closeRedis, createRedis, createVmcpClient, schedulerId, type VmcpClient } from "@vmcp-keepalive/shared";
import { expectNoLeakedConnections, flushPrefix, testPrefix, waitFor } from "@vmcp-keepalive/testkit";
import { recordOutcome } from "./helpers/worker-writes.js";

const redisUrl = inject("redisUrl");

/** The scheduler's side of a re-initialize: a pair whose session expired gets its job scheduler back. */
describe("re-initialize reconciliation", () => {
  let prefix = "";
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const fn of cleanups.splice(0).reverse()) await fn();
    await flushPrefix(redisUrl, prefix);
    await expectNoLeakedConnections(redisUrl, (n) => n.endsWith(`@${prefix}`));
  });

  it("restores the job scheduler of an expired pair after reinitializeBackend (session.backend_reinitialized)", async () => {
    prefix = testPrefix("restore");
    const config = parseConfig({
      redis: { url: redisUrl, prefix },
      keepalive: { interval: "1h", timeout: "10s" },
      backends: [
        { id: "b1", url: "http://127.0.0.1:9/mcp" },
        { id: "b2", url: "http://127.0.0.1:9/mcp" },
      ],
    });
    const redis = createRedis(redisUrl, "client", `vmk-test-restore@${prefix}`);
    const s: Scheduler = createScheduler({ config, logger: createLogger({ name: "test", level: "silent" }) });
    const client: VmcpClient = createVmcpClient({ redisUrl, prefix, replicaId: "r1" });
    cleanups.push(
      () => closeRedis(redis),
      () => s.stop(),
      () => client.close(),
    );
    await s.start();
    await client.registerSession("s1", {
      sessionTtlMs: 60_000,
      backends: [
        { backendId: "b1", backendSessionId: "x-s1" },
        { backendId: "b2", backendSessionId: "y-s1" },
      ],
    });
    await waitFor("registered", async () => (await s.keepaliveQueues[0]!.getJobSchedulersCount()) === 2);
    // What a worker does on 404: record `expired` (fenced) and remove the pair's job scheduler.
    const pair = (await s.store.readPair("s1", "b1"))!;
    expect((await recordOutcome(redis, s.store.keys, pair, { kind: "failure", reason: "session_not_found" }, Date.now(), { status: "expired" })).written).toBe(true);
    await s.pairs.remove("s1", "b1");
    const before = await s.keepaliveQueues[0]!.getJobScheduler(schedulerId("s1", "b2"));

    const result = await client.reinitializeBackend("s1", "b1", async () => ({ backendSessionId: "fresh", protocolVersion: "2025-06-18" }));
    expect(result).toMatchObject({ lock: "held", state: "written", schedulerRestoreRequested: true });
    await waitFor("job scheduler restored", () => s.keepaliveQueues[0]!.getJobScheduler(schedulerId("s1", "b1")));
    expect(await s.store.readPair("s1", "b1")).toMatchObject({ status: "active", backendSessionId: "fresh" });
    // The other pair's scheduler is untouched.
    expect(await s.keepaliveQueues[0]!.getJobScheduler(schedulerId("s1", "b2"))).toEqual(before);
  });
});
