import { Queue } from "bullmq";
import { afterEach, describe, expect, inject, it } from "vitest";
import { queueOptions, QUEUE_KEEPALIVE } from "@vmcp-keepalive/shared";
import { expectNoLeakedConnections, flushPrefix, openBackendSession, sleep, startMcpTestBackend, testPrefix, waitFor, type McpTestBackend } from "@vmcp-keepalive/testkit";
import { Redis } from "ioredis";
import { runCli, startProgram, waitForLog, writeConfig, type RunningProcess } from "./helpers/processes.js";

/*
 * Keepalive is off where it would be useless or unwanted, end to end with the real programs:
 * `keepalive_method: none`, `stateful: false`, a registration without a backend session id, and a
 * backend whose session_ttl covers the vMCP session's max lifetime each get no backend call and no
 * job scheduler, and `vmcp-keepalive status` says why. A control backend on the same session is
 * kept alive, which shows the worker is running.
 */

const redisUrl = inject("redisUrl");
const procs: RunningProcess[] = [];
const backends: McpTestBackend[] = [];
let prefix = "";

afterEach(async () => {
  for (const p of procs.splice(0)) await p.stop();
  for (const b of backends.splice(0)) await b.stop();
  if (prefix) await flushPrefix(redisUrl, prefix);
  await expectNoLeakedConnections(redisUrl);
});

const keepaliveCalls = (b: McpTestBackend) => b.calls.filter((c) => c.method === "ping" || c.method === "tools/call").length;

describe("keepalive off by default", () => {
  it("calls no backend and schedules nothing for none, stateful:false, no backend session id and a TTL covering the session; status says why", async () => {
    const ids = ["active", "none", "stateless", "nosession", "ttl"] as const;
    for (const name of ids) backends.push(await startMcpTestBackend({ name }));
    const [active, none, stateless, nosession, ttl] = backends as [McpTestBackend, McpTestBackend, McpTestBackend, McpTestBackend, McpTestBackend];
    prefix = testPrefix("off");
    const config = writeConfig({
      redis: { url: redisUrl, prefix },
      keepalive: { interval: "1s", timeout: "500ms" },
      log: { level: "info" },
      backends: [
        { id: "active", url: active.url },
        { id: "none", url: none.url, keepalive_method: "none" },
        { id: "stateless", url: stateless.url, stateful: false },
        { id: "nosession", url: nosession.url },
        { id: "ttl", url: ttl.url, session_ttl: "2h" },
      ],
    });
    const scheduler = startProgram("scheduler", ["--config", config]);
    const worker = startProgram("worker", ["--config", config]);
    procs.push(scheduler, worker);
    await waitForLog(scheduler, "scheduler started");
    await waitForLog(worker, "worker started");

    const sessions = await Promise.all([active, none, stateless, ttl].map((b) => openBackendSession(b.url)));
    const [sa, sn, ss, st] = sessions as [(typeof sessions)[0], (typeof sessions)[0], (typeof sessions)[0], (typeof sessions)[0]];
    const reg = await runCli([
      "register",
      "--config",
      config,
      "--session",
      "vs1",
      "--max-lifetime",
      "1h",
      "--protocol-version",
      sa.protocolVersion,
      "--backend",
      `active=${sa.sessionId}`,
      "--backend",
      `none=${sn.sessionId}`,
      "--backend",
      `stateless=${ss.sessionId}`,
      "--backend",
      "nosession",
      "--backend",
      `ttl=${st.sessionId}`,
    ]);
    expect(reg.code, reg.stderr).toBe(0);

    await waitFor("3 pings on the active backend", () => active.count("ping", sa.sessionId) >= 3, 30_000);
    await sleep(1_000);
    expect([none, stateless, nosession, ttl].map(keepaliveCalls)).toEqual([0, 0, 0, 0]);

    const redis = new Redis(redisUrl, { connectionName: "harness" });
    const queue = new Queue(QUEUE_KEEPALIVE, queueOptions(redis, prefix));
    try {
      const schedulers = await queue.getJobSchedulers();
      expect(schedulers.map((s) => s.key)).toEqual(["ka:vs1:active"]);
    } finally {
      await queue.close();
      redis.disconnect();
    }

    const status = await runCli(["status", "--config", config, "--json"]);
    expect(status.code, status.stderr).toBe(0);
    const rows = JSON.parse(status.stdout) as { backendId: string; status: string; why: string }[];
    const why = Object.fromEntries(rows.map((r) => [r.backendId, r.why]));
    expect(why).toEqual({
      active: "active",
      none: "off: method_none",
      stateless: "off: stateless_backend",
      nosession: "off: no_backend_session",
      ttl: "off: ttl_covers_session",
    });
    const table = await runCli(["status", "--config", config]);
    expect(table.stdout).toMatch(/ttl\s+off: ttl_covers_session/);
  });
});
