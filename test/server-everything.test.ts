import { spawn, type ChildProcess } from "node:child_process";
import { createServer, request, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { createRequire } from "node:module";
import { afterEach, describe, expect, inject, it } from "vitest";
import { callToolOnSession, expectNoLeakedConnections, flushPrefix, freePort, openBackendSession, testPrefix, waitFor } from "@vmcp-keepalive/testkit";
import { runCli, startProgram, waitForLog, writeConfig, type RunningProcess } from "./helpers/processes.js";

/*
 * A real MCP server nobody on this project wrote —
 * `@modelcontextprotocol/server-everything` from npm (devDependency of test/), run over
 * Streamable HTTP on a free loopback port. The scheduler and worker programs keep a session
 * alive with ping; afterwards a tool call on the ORIGINAL session id still works.
 *
 * To see that the server received our pings, requests go through a small recording proxy
 * (node:http, bytes forwarded as they are, SSE streamed through). It observes; it does not
 * answer anything itself.
 */

const redisUrl = inject("redisUrl");
const require = createRequire(import.meta.url);
const EVERYTHING = require.resolve("@modelcontextprotocol/server-everything/dist/index.js");

interface Seen {
  method: string;
  sessionId: string | undefined;
  status: number | undefined;
}

const cleanups: (() => Promise<void>)[] = [];
const procs: RunningProcess[] = [];
let prefix = "";

afterEach(async () => {
  for (const p of procs.splice(0)) await p.stop();
  while (cleanups.length) await cleanups.pop()!();
  if (prefix) await flushPrefix(redisUrl, prefix);
  await expectNoLeakedConnections(redisUrl);
});

async function startEverything(): Promise<string> {
  const port = await freePort();
  const child: ChildProcess = spawn(process.execPath, [EVERYTHING, "streamableHttp"], {
    env: { ...process.env, PORT: String(port) },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout?.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr?.on("data", (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  cleanups.push(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
    await exited;
  });
  await waitFor("server-everything to listen", () => /listening on port/.test(out) || child.exitCode !== null, 30_000);
  if (child.exitCode !== null) throw new Error(`server-everything exited: ${out}`);
  return `http://127.0.0.1:${port}/mcp`;
}

/** Forwards every request to `target` and records its JSON-RPC method, session id and status. */
async function recordingProxy(target: string): Promise<{ url: string; seen: Seen[] }> {
  const upstream = new URL(target);
  const seen: Seen[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      let method = req.method ?? "?";
      try {
        const parsed = JSON.parse(body.toString()) as { method?: string };
        if (parsed.method) method = parsed.method;
      } catch {}
      const entry: Seen = { method, sessionId: req.headers["mcp-session-id"] as string | undefined, status: undefined };
      seen.push(entry);
      const up = request({ host: upstream.hostname, port: upstream.port, path: req.url, method: req.method, headers: req.headers }, (ur) => {
        entry.status = ur.statusCode;
        res.writeHead(ur.statusCode ?? 502, ur.headers);
        ur.pipe(res);
      });
      up.on("error", () => res.destroy());
      up.end(body);
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  cleanups.push(() => new Promise<void>((r) => (server.closeAllConnections(), server.close(() => r()))));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`, seen };
}

describe("a third-party MCP server (server-everything from npm)", () => {
  it("keeps its session usable with ping: the server sees our pings, and a tool call on the original session works afterwards", async () => {
    const everything = await startEverything();
    const proxy = await recordingProxy(everything);
    prefix = testPrefix("everything");
    const config = writeConfig({
      redis: { url: redisUrl, prefix },
      keepalive: { interval: "2s", timeout: "1500ms" },
      log: { level: "info" },
      backends: [{ id: "everything", url: proxy.url }],
    });
    const scheduler = startProgram("scheduler", ["--config", config]);
    const worker = startProgram("worker", ["--config", config]);
    procs.push(scheduler, worker);
    await waitForLog(scheduler, "scheduler started");
    await waitForLog(worker, "worker started");

    // The vMCP's side: initialize a session on the backend, then register it.
    const session = await openBackendSession(proxy.url);
    const reg = await runCli(["register", "--config", config, "--session", "vs1", "--protocol-version", session.protocolVersion, "--backend", `everything=${session.sessionId}`]);
    expect(reg.code, reg.stderr).toBe(0);

    // Several intervals of keepalive.
    const pings = () => proxy.seen.filter((s) => s.method === "ping" && s.sessionId === session.sessionId);
    await waitFor("4 pings answered 200 by server-everything", () => pings().filter((p) => p.status === 200).length >= 4, 40_000);
    expect(pings().every((p) => p.status === 200 || p.status === undefined)).toBe(true);
    // Ping only: the keepalive never called a tool or re-initialized.
    expect(proxy.seen.filter((s) => s.method === "initialize")).toHaveLength(1);
    expect(proxy.seen.filter((s) => s.method === "tools/call")).toHaveLength(0);

    // The original session is still usable.
    const echoed = await callToolOnSession(proxy.url, session, "echo", { message: "still here" });
    expect(echoed).toEqual({ isError: false, text: "Echo: still here" });

    const status = await runCli(["status", "--config", config, "--json"]);
    const rows = JSON.parse(status.stdout) as { backendId: string; lastOutcome: string | null; consecutiveFailures: number }[];
    expect(rows).toEqual([expect.objectContaining({ backendId: "everything", lastOutcome: "success", consecutiveFailures: 0 })]);
  });
});
