import { spawn, type ChildProcess } from "node:child_process";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, inject, it } from "vitest";
import { flushPrefix, freePort, testPrefix, waitFor } from "@vmcp-keepalive/testkit";
import { get, sample } from "./helpers/ops.js";
import { httpUrlOf, startProgram, writeConfig, type RunningProcess } from "./helpers/processes.js";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");

/**
 * The demo programs docker-compose runs (demo backend, demo vMCP) work together with a real
 * scheduler and worker: sessions get registered, kept alive, churned, and SIGTERM ends them all.
 */
describe("demo backend + demo vMCP programs", () => {
  const redisUrl = inject("redisUrl");
  const prefix = testPrefix("ops-demo");
  const children: ChildProcess[] = [];
  const procs: RunningProcess[] = [];
  const run = (bin: string, args: string[], env: NodeJS.ProcessEnv = {}) => {
    const child = spawn(process.execPath, [join(ROOT, "packages/demo/bin", bin), ...args], {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, ...env },
    });
    let out = "";
    child.stdout?.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr?.on("data", (d: Buffer) => (out += d.toString()));
    children.push(child);
    const exit = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
    return { child, output: () => out, exit };
  };

  afterAll(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
    await Promise.all(procs.map((p) => p.stop()));
    await flushPrefix(redisUrl, prefix);
  });

  it("registers, keeps alive and churns sessions; SIGTERM ends them", async () => {
    const port = await freePort();
    const backend = run("vmcp-keepalive-demo-backend.js", ["--port", String(port), "--idle-ttl", "30s"]);
    const backendUrl = `http://127.0.0.1:${port}/mcp`;
    await waitFor("demo backend listening", () => backend.output().includes("demo backend listening"), 20_000);
    const config = writeConfig({
      redis: { url: redisUrl, prefix },
      keepalive: { interval: "2s", timeout: "1s" },
      backends: [{ id: "demo-stateful", url: backendUrl, session_ttl: "30s" }],
    });
    const scheduler = startProgram("scheduler", ["--config", config]);
    const worker = startProgram("worker", ["--config", config]);
    procs.push(scheduler, worker);
    const [schedulerUrl, workerUrl] = await Promise.all([httpUrlOf(scheduler), httpUrlOf(worker)]);

    const vmcp = run("vmcp-keepalive-demo-vmcp.js", ["--backend-url", backendUrl, "--sessions", "4", "--churn-every", "2s", "--touch-every", "1s", "--prefix", prefix], { REDIS_URL: redisUrl });
    const metric = async (url: string, name: string, labels: Record<string, string> = {}) => sample((await get(`${url}/metrics`)).body, name, labels) ?? 0;
    await waitFor("4 sessions registered", async () => (await metric(schedulerUrl, "vmk_registered_sessions")) === 4, 30_000, 250);
    await waitFor("keepalives succeed", async () => (await metric(workerUrl, "keepalive_success_count", { backend: "demo-stateful", method: "ping" })) >= 4, 30_000, 250);
    await waitFor("a churned session ended", async () => (await metric(schedulerUrl, "vmk_registration_messages_total", { type: "session.ended", status: "applied" })) >= 1, 30_000, 250);
    await waitFor("touches applied", async () => (await metric(schedulerUrl, "vmk_registration_messages_total", { type: "session.touched", status: "applied" })) >= 4, 30_000, 250);

    vmcp.child.kill("SIGTERM");
    expect(await vmcp.exit).toBe(0);
    await waitFor("every session ended after SIGTERM", async () => (await metric(schedulerUrl, "vmk_registered_sessions")) === 0, 30_000, 250);
    backend.child.kill("SIGTERM");
    expect(await backend.exit).toBe(0);
  });
});
