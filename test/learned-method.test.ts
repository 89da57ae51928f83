import { afterEach, describe, expect, inject, it } from "vitest";
import { Redis } from "ioredis";
import { createKeys } from "@vmcp-keepalive/shared";
import { expectNoLeakedConnections, flushPrefix, openBackendSession, sleep, startMcpTestBackend, testPrefix, waitFor, type McpTestBackend } from "@vmcp-keepalive/testkit";
import { runCli, startProgram, waitForLog, writeConfig, type RunningProcess } from "./helpers/processes.js";

/*
 * The learned keepalive method is shared through Redis, not held per process: worker process A
 * learns that a `tool:noop` backend does not implement ping (-32601) and switches it to the tool;
 * worker process B, started afterwards with no memory of A, reads the switch from Redis and calls
 * only the tool, and does not log the switch again (only the worker whose write made it logs it).
 */

const redisUrl = inject("redisUrl");
const procs: RunningProcess[] = [];
let backend: McpTestBackend | undefined;
let prefix = "";

afterEach(async () => {
  for (const p of procs.splice(0)) await p.stop();
  await backend?.stop();
  backend = undefined;
  if (prefix) await flushPrefix(redisUrl, prefix);
  await expectNoLeakedConnections(redisUrl);
});

describe("learned keepalive method", () => {
  it("a second worker process calls only the tool that a first one learned to use, and does not log the switch again", async () => {
    backend = await startMcpTestBackend({ pingSupported: false });
    const b = backend;
    prefix = testPrefix("learn");
    const config = writeConfig({
      redis: { url: redisUrl, prefix },
      keepalive: { interval: "1s", timeout: "500ms" },
      breaker: { probe_after: "10m" },
      log: { level: "info" },
      backends: [{ id: "noping", url: b.url, keepalive_method: "tool:noop" }],
    });
    const scheduler = startProgram("scheduler", ["--config", config]);
    const workerA = startProgram("worker", ["--config", config]);
    procs.push(scheduler, workerA);
    await waitForLog(scheduler, "scheduler started");
    await waitForLog(workerA, "worker started");

    const s = await openBackendSession(b.url);
    const reg = await runCli(["register", "--config", config, "--session", "vs1", "--protocol-version", s.protocolVersion, "--backend", `noping=${s.sessionId}`]);
    expect(reg.code, reg.stderr).toBe(0);
    const switched = await waitForLog(workerA, /switched from ping to tool noop/, 30_000);
    expect(switched).toMatchObject({ level: "warn", backendId: "noping", tool: "noop", reason: "method_not_found" });

    const redis = new Redis(redisUrl, { connectionName: "harness" });
    try {
      expect(await redis.hget(createKeys(prefix).backend("noping"), "method")).toBe("tool");
    } finally {
      redis.disconnect();
    }
    expect(await workerA.stop()).toBe(0);

    const pingsBefore = b.count("ping", s.sessionId);
    expect(pingsBefore).toBe(1);
    const toolsBefore = b.count("tools/call", s.sessionId);
    const workerB = startProgram("worker", ["--config", config]);
    procs.push(workerB);
    await waitForLog(workerB, "worker started");
    await waitFor("3 tool calls from worker B", () => b.count("tools/call", s.sessionId) >= toolsBefore + 3, 30_000);
    await sleep(200);
    expect(b.count("ping", s.sessionId)).toBe(pingsBefore);
    expect(workerB.logs().filter((l) => /switched/.test(String(l["msg"])))).toHaveLength(0);
  });
});
